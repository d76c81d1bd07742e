"""The signature detector's worker (``analysis.live.SealedSignatures``): one process per detector,
started at the first file and holding the engine; a file it cannot read is an error raised in the
detector with the file's path, the worker goes on with the next file, and ``close`` ends it."""

from __future__ import annotations

import pytest

from analysis.live import SealedSignatures, match_files
from analysis.replay import SHIPPED_RULES, replay_captures
from recorder.core.errors import WiretrailError
from tests.analysis.behaviour.traffic import Capture

RULES = [str(SHIPPED_RULES / "wiretrail.rules")]


def attack(path, client: str) -> tuple[str, list]:
    """A capture with one request a shipped signature catches, and the alerts a replay gives."""
    cap = Capture()
    req = b"GET /cgi-bin/view?file=../../etc/passwd HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    cap.session(0.0, client, "10.0.0.20", 40000, 80, [(req, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")])
    pcap = cap.write(path)
    want = [(a.ts_ns, a.signature_id, a.uid) for a in replay_captures([pcap], rules=RULES).alerts]
    assert want, "the capture must set off a shipped signature"
    return pcap, want


def test_worker_matches_like_a_replay_relays_errors_and_ends(tmp_path):
    pcap, want = attack(tmp_path / "a.pcap", "10.0.0.66")
    other, want_other = attack(tmp_path / "c.pcap", "10.0.0.67")
    det = SealedSignatures(RULES, {}, "shop-gw", lambda m: None)
    try:
        pool = det._pool()
        assert [(a.ts_ns, a.signature_id, a.uid) for a in pool.submit(match_files, [pcap]).result()] == want
        garbage = tmp_path / "b.pcap"
        garbage.write_bytes(b"not a capture at all")
        with pytest.raises(WiretrailError) as err:
            pool.submit(match_files, [str(garbage)]).result()
        assert str(garbage) in str(err.value)
        # the same worker (its rules loaded once) goes on with the next file, with a new engine:
        # nothing found in an earlier file comes back
        got = [(a.ts_ns, a.signature_id, a.uid) for a in pool.submit(match_files, [other]).result()]
        assert got == want_other and det._pool() is pool
    finally:
        det.close()
    with pytest.raises(RuntimeError):  # closed: the worker takes no more files
        pool.submit(match_files, [pcap])
