#!/usr/bin/env python3
"""Trial: httptools (llhttp) for HTTP/1.x framing, against our own HTTP parser (issue 25).

    .venv/bin/python bench/trial_httptools.py [--reference ../shared/reference] [--capture FILE]

Not used by wiretrail: it measures whether llhttp's framing gives the same requests and
responses as ``apps.http`` on Zeek's http baselines (method, URI, status per connection), whether
it still yields the EICAR body of suricata-verify's http-evader cases, and how fast it frames the
same reassembled bytes (CPU seconds, best of 3). The bytes are those our reassembly delivers.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import httptools

from recorder.core.apps.base import ListOutput, Parser
from recorder.core.apps.dispatch import AppLayer
from recorder.core.apps.registry import PARSERS
from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder

HTTP_PARSERS = [P for P in PARSERS if P.service == "http"]
EICAR = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"


class Tap(Parser):
    """Takes every TCP connection whose first bytes look like HTTP and keeps its bytes in order."""

    service = "http"
    kept: list = []

    @classmethod
    def detect(cls, data, is_orig, conn):
        return is_orig and data[:1].isalpha()

    def __init__(self, conn, out, conn_context=None):
        super().__init__(conn, out, conn_context)
        self.chunks = []
        Tap.kept.append(self)

    def data(self, is_orig, data, ts):
        self.chunks.append((is_orig, bytes(data), ts))


def run(pcap: Path, parsers) -> ListOutput:
    out = ListOutput()
    app = AppLayer(out, parsers)
    dec = Decoder()
    for raw in read_batches(str(pcap)):
        app.feed(raw, dec.decode(raw))
    app.finish()
    return out


class Frames:
    """httptools callbacks: what it framed."""

    def __init__(self):
        self.requests, self.statuses, self.body, self.url, self.error = [], [], bytearray(), b"", None

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body += body


def frame(chunks) -> tuple[Frames, Frames]:
    req, resp = Frames(), Frames()
    parsers = {}

    def done_req():
        req.requests.append((parsers["req"].get_method().decode("latin-1"), req.url.decode("latin-1")))
        req.url = b""

    def done_resp():
        resp.statuses.append(parsers["resp"].get_status_code())

    # httptools looks its callbacks up once, when the parser is made
    req.on_message_complete, resp.on_message_complete = done_req, done_resp
    preq = parsers["req"] = httptools.HttpRequestParser(req)
    presp = parsers["resp"] = httptools.HttpResponseParser(resp)
    for is_orig, data, _ in chunks:
        f, p = (req, preq) if is_orig else (resp, presp)
        if f.error is None:
            try:
                p.feed_data(data)
            except httptools.HttpParserUpgrade:
                f.error = "upgrade"
            except httptools.HttpParserError as err:
                f.error = type(err).__name__
    return req, resp


def ours(out: ListOutput) -> tuple[list, list]:
    recs = out.logs("http")
    return ([(r["method"], r.get("uri") or "-") for r in recs if r.get("method")],
            [r["status_code"] for r in recs if r.get("status_code")])


def baseline(log: Path) -> tuple[list, list]:
    """Zeek's http.log: the (method, uri) of each request and the status codes it logged."""
    fields, reqs, stats = [], [], []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t")))
            if row.get("method", "-") != "-":
                reqs.append((row["method"], row.get("uri", "-")))
            if row.get("status_code", "-") != "-":
                stats.append(int(row["status_code"]))
    return reqs, stats


def zeek_cases(ref: Path) -> tuple[int, int, int, list]:
    """Traces whose requests and statuses match Zeek's baseline: ours, httptools'."""
    ours_same = theirs_same = total = 0
    diffs = []
    for log in sorted((ref / "zeek-app").glob("http__*.http.log")):
        pcap = log.with_name(log.name.replace(".http.log", ".pcap"))
        want = tuple(sorted(x) for x in baseline(log))
        total += 1
        mine = tuple(sorted(x) for x in ours(run(pcap, HTTP_PARSERS)))
        Tap.kept = []
        run(pcap, [Tap])
        reqs, stats = [], []
        for t in Tap.kept:
            q, r = frame(t.chunks)
            reqs += q.requests
            stats += r.statuses
        theirs = (sorted(reqs), sorted(stats))
        ours_same += mine == want
        theirs_same += theirs == want
        if theirs != want:
            diffs.append(f"{pcap.name}: Zeek {len(want[0])} requests/{len(want[1])} statuses, ours "
                         f"{len(mine[0])}/{len(mine[1])}{'' if mine == want else ' (differs)'}, httptools "
                         f"{len(reqs)}/{len(stats)}")
    return ours_same, theirs_same, total, diffs


def evader_cases(ref: Path) -> tuple[int, int, int]:
    ours_found = theirs_found = total = 0
    for case in sorted((ref / "suricata-verify").glob("http-evader__*")):
        pcap = next(case.glob("*.pcap"), None)
        if pcap is None:
            continue
        total += 1
        out = run(pcap, HTTP_PARSERS)
        ours_found += any(EICAR in f["data"] for f in out.files)
        Tap.kept = []
        run(pcap, [Tap])
        theirs_found += any(EICAR in body for t in Tap.kept for body in _decoded(bytes(frame(t.chunks)[1].body)))
    return ours_found, theirs_found, total


def _decoded(body: bytes) -> list[bytes]:
    """The body as llhttp gives it (de-chunked) and, where it inflates, gzip- or deflate-decoded:
    llhttp frames, it does not decode content (our parser does)."""
    out = [body]
    for wbits in (47, -15):
        try:
            out.append(zlib.decompressobj(wbits).decompress(body))
        except zlib.error:
            pass
    return out


def speed(capture: Path) -> tuple[float, float, int]:
    Tap.kept = []
    run(capture, [Tap])
    conns = list(Tap.kept)
    http = HTTP_PARSERS[0]
    best_ours = best_theirs = float("inf")
    for _ in range(3):
        t = time.process_time()
        for tap in conns:
            p = http(tap.conn, ListOutput())
            for is_orig, data, ts in tap.chunks:
                p.data(is_orig, data, ts)
            p.end(0.0)
        best_ours = min(best_ours, time.process_time() - t)
        t = time.process_time()
        for tap in conns:
            frame(tap.chunks)
        best_theirs = min(best_theirs, time.process_time() - t)
    return best_ours, best_theirs, len(conns)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference"))
    ap.add_argument("--capture", help="a capture to time the framing on (e.g. gen_traffic.py's)")
    args = ap.parse_args()
    ref = Path(args.reference)
    mine, theirs, total, diffs = zeek_cases(ref)
    print(f"Zeek http.log baselines: the same requests (method, URI) and statuses as Zeek on {mine} of {total} "
          f"traces with ours, {theirs} of {total} with httptools")
    for d in diffs:
        print("  differs:", d)
    o, t, n = evader_cases(ref)
    print(f"suricata-verify http-evader: EICAR body found by ours in {o} of {n}, by httptools in {t} of {n}")
    if args.capture:
        mine, theirs, conns = speed(Path(args.capture))
        print(f"framing {conns:,} connections' bytes: ours (the whole HTTP parser) {mine:.2f} s CPU, "
              f"httptools {theirs:.2f} s CPU (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
