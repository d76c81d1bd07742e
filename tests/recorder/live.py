"""Live capture for real: a network namespace with a veth pair, and the recorder running in it
(the fixtures ``netns`` and ``loop_pcap`` are in conftest.py; tests start ``Recorder`` themselves).

These tests run for real as root (CI runs as root): ``ip netns add``, a veth pair whose ends
are ``tx`` (tcpreplay sends here) and ``rx`` (the recorder captures here), IPv6 off so the kernel
adds no neighbour discovery packets of its own. Traffic only ever goes onto this pair, and every
replayed address is in 127.0.0.0/8.
"""

from __future__ import annotations

import collections
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

_counter = itertools.count()


def need_live() -> None:
    if os.geteuid() != 0:
        pytest.skip("live capture tests need root (network namespaces, raw sockets)")
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make test installs iproute2 and tcpreplay)")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Netns:
    def __init__(self) -> None:
        n = f"{os.getpid() % 100000}x{next(_counter)}"
        self.name = f"wtt{n}"
        self.tx, self.rx = f"wtx{n}", f"wrx{n}"
        self.recorders: list = []

    def up(self) -> None:
        sh("ip", "netns", "add", self.name)
        self.exec("ip", "link", "add", self.tx, "type", "veth", "peer", "name", self.rx)
        for dev in ("lo", self.tx, self.rx):
            subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                            f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True, timeout=30)
            self.exec("ip", "link", "set", dev, "up")

    def exec(self, *args: str) -> None:
        sh("ip", "netns", "exec", self.name, *args)

    def replay(self, pcap: Path, *, pps: int | None = None, topspeed: bool = False) -> str:
        rate = ["--topspeed"] if topspeed else ["--pps", str(pps or 5000)]
        r = subprocess.run(["ip", "netns", "exec", self.name, "tcpreplay", "-q", *rate, "-i", self.tx, str(pcap)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


class Recorder:
    """``wiretrail-recorder run`` in the namespace, with a real sd_notify socket to wait on."""

    def __init__(self, ns: Netns, tmp: Path, *args: str, out: Path | None = None, db: Path | None = None,
                 wrap: tuple[str, ...] = (), env: dict | None = None) -> None:
        self.ns = ns
        self.out = out or tmp / "out"
        self.db = db or tmp / "wiretrail.db"
        self.log = tmp / f"recorder-{next(_counter)}.log"
        self.sock_path = tmp / f"notify-{next(_counter)}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.sock_path))
        self.messages: list[str] = []
        env = {**os.environ, "NOTIFY_SOCKET": str(self.sock_path), "PYTHONUNBUFFERED": "1", **(env or {})}
        cmd = ["ip", "netns", "exec", ns.name, *wrap, sys.executable, "-m", "recorder.cli", "run",
               "--interface", ns.rx, "--output-dir", str(self.out), "--db", str(self.db), "--sensor", "test",
               "--stats-interval", "1s", *args]
        self.logfile = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        ns.recorders.append(self)

    def kill(self) -> None:
        """End the recorder's whole session (its writer process included), whatever state it is in."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def wait_for(self, message: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            if any(m.startswith(message) for m in self.messages):
                return
            try:
                self.messages.extend(self.notify.recv(4096).decode().splitlines())
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"recorder exited {self.proc.returncode}: {self.text()}") from None
        raise AssertionError(f"no {message} from the recorder in {timeout}s: {self.text()}")

    def ready(self) -> Recorder:
        self.wait_for("READY=1")
        return self

    def text(self) -> str:
        if not self.logfile.closed:
            self.logfile.flush()
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        # the recorder is the python process under `ip netns exec` (which execs, same pid)
        os.kill(self.proc.pid, sig)
        code = self.proc.wait(timeout=timeout)
        self.logfile.close()
        self.notify.close()
        return code


def index_rows(db: Path) -> list[tuple]:
    """The packet index of a database, by file path and bucket."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT c.path, p.bucket, p.first_ts_ns, p.last_ts_ns, p.packets, p.keys, p.directory, "
                            "p.ranges FROM packet_index p JOIN captures c ON c.id = p.capture_id "
                            "ORDER BY c.path, p.bucket").fetchall()


def records(paths: list[Path], expr: str, tmp: Path) -> list[bytes]:
    """The packets tcpdump's filter ``expr`` keeps of the files ``paths``, in order."""
    import dpkt

    out: list[bytes] = []
    for p in paths:
        subprocess.run(["tcpdump", "-r", str(p), "-w", str(tmp), expr], check=True, capture_output=True)
        with open(tmp, "rb") as f:
            out.extend(bytes(b) for _, b in dpkt.pcap.Reader(f))
    return out


# the flow columns live and ingested flows are compared on
FLOW_COLUMNS = "uid, proto, orig_p, resp_p, conn_state, history, orig_pkts, resp_pkts, orig_bytes, resp_bytes"


def packets(paths) -> collections.Counter:
    """Every packet of the files ``paths``, counted (a multiset: sent and kept compare exactly)."""
    from recorder.core.capio.pcapio import read_batches

    c: collections.Counter = collections.Counter()
    for p in paths:
        for b in read_batches(str(p)):
            for i in range(len(b)):
                c[b.packet(i)] += 1
    return c


def sealed(out: Path) -> list[Path]:
    """The sealed capture files of an output folder, in order."""
    return sorted(out.glob("*.pcap"))


def flows(db: Path) -> list[tuple]:
    """A database's flows (``FLOW_COLUMNS``), by uid."""
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {FLOW_COLUMNS} FROM flows ORDER BY uid").fetchall()
