"""The application layer's dispatcher (recorder.core.apps.dispatch) on captures built here and on
generated traffic compared with the flow table the ingest stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps.base import Conn, Parser
from recorder.core.apps.dns import DNS
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from tests.helpers import GEN_TRAFFIC, REFERENCE, need
from tests.helpers.packets import CLI, PA, SRV, T0, R, close, handshake, tcp, udp, write
from tests.helpers.streams import run_app_layer as run


class Recorder(Parser):
    """Takes connections whose first bytes start with HELLO (either side) and records what it gets."""

    service = "hello"
    transport = "tcp"
    ports = frozenset({7000})

    def __init__(self, conn: Conn, out, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.events: list[tuple] = []

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return data.startswith(b"HELLO")

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        self.events.append(("data", is_orig, data))
        if b"BOOM" in data:
            raise ValueError("hostile input")
        if not is_orig and data.startswith(b"GO"):  # the server's yes to STARTTLS: hand over
            self.redetect = True

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        self.events.append(("gap", is_orig, nbytes))

    def end(self, ts: float) -> None:
        orig = b"".join(e[2] for e in self.events if e[0] == "data" and e[1])
        resp = b"".join(e[2] for e in self.events if e[0] == "data" and not e[1])
        gaps = [(e[1], e[2]) for e in self.events if e[0] == "gap"]
        self.out.log("hello", {"ts": ts, "orig": orig, "resp": resp, "gaps": gaps,
                               "context": self.conn_context}, self.conn)


class Other(Recorder):
    """A second protocol, found after a hand-over (STARTTLS-like)."""

    service = "other"
    ports = frozenset()

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return data.startswith(b"\x16\x03")


class Greedy(Recorder):
    """Says yes to anything; the port hint must still let Recorder win on its port."""

    service = "greedy"
    ports = frozenset()

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return True



# -- reassembly, detection, hand-over, failures --------------------------------------------------------

def test_out_of_order_and_retransmitted_segments_arrive_in_order(tmp_path: Path) -> None:
    c, s = 0xFFFFFFF0, 5000  # the client's sequence numbers wrap inside the request
    pkts = handshake(cisn=c, sisn=s)
    pkts += [(0.10, tcp(CLI, 40000, SRV, 7000, c + 1, PA, b"HELLO ")),
             (0.11, tcp(CLI, 40000, SRV, 7000, c + 13, PA, b"three")),  # ahead of a hole
             (0.12, tcp(CLI, 40000, SRV, 7000, c + 7, PA, b"world ")),  # fills it (crosses 2**32)
             (0.13, tcp(CLI, 40000, SRV, 7000, c + 1, PA, b"XXXXXX")),  # retransmission, other bytes
             (0.20, tcp(SRV, 7000, CLI, 40000, s + 1, PA, b"hi there"))]
    pkts += close(40000, 7000, c + 18, s + 9, 0.3)
    app, out, flows = run(write(tmp_path / "t.pcap", pkts), [Recorder])
    (rec,) = out.logs("hello")
    assert rec["orig"] == b"HELLO world three" and rec["resp"] == b"hi there" and rec["gaps"] == []
    assert rec["id.orig_h"] == CLI and rec["id.resp_p"] == 7000 and rec["proto"] == "tcp"
    assert [(f["uid"], f["orig_h"]) for f in flows] == [(rec["uid"], CLI)]
    assert dict(app.services()) == {rec["uid"]: ["hello"]}


def test_missing_segment_is_a_gap_at_close_then_data_goes_on(tmp_path: Path) -> None:
    pkts = handshake()
    pkts += [(0.10, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO")),
             (0.11, tcp(CLI, 40000, SRV, 7000, 1016, PA, b"after"))]  # 10 bytes never captured
    pkts += close(40000, 7000, 1021, 5001, 0.3)
    _, out, _ = run(write(tmp_path / "t.pcap", pkts), [Recorder])
    (rec,) = out.logs("hello")
    assert rec["orig"] == b"HELLOafter" and rec["gaps"] == [(True, 10)]


def test_batches_split_anywhere_give_the_same_result(tmp_path: Path) -> None:
    pkts = handshake()
    seq = 1001
    for i in range(30):
        chunk = (b"HELLO" if i == 0 else b"") + bytes([65 + i % 26]) * 50
        pkts.append((0.1 + i * 0.01, tcp(CLI, 40000, SRV, 7000, seq, PA, chunk)))
        seq += len(chunk)
    pkts += close(40000, 7000, seq, 5001, 1.0)
    path = write(tmp_path / "t.pcap", pkts)
    whole = run(path, [Recorder])[1].logs("hello")
    for size in (1, 3, 7):
        assert run(path, [Recorder], batch_size=size)[1].logs("hello") == whole
    assert len(whole[0]["orig"]) == 30 * 50 + 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600), st.integers(0, 0xFFFFFFFF), st.integers(1, 9), st.data())
def test_any_segment_order_and_batching_delivers_the_stream(tmp_path: Path, body: bytes, isn: int, batch: int,
                                                             data) -> None:
    payload = b"HELLO" + body
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(payload) - 1), max_size=8))) | {0, len(payload)})
    segs = [(a, payload[a:b]) for a, b in zip(cuts, cuts[1:])]
    segs += data.draw(st.lists(st.sampled_from(segs), max_size=3))  # retransmissions
    head, rest = segs[0], data.draw(st.permutations(segs[1:]))  # the first bytes lead, for detection
    pkts = handshake(cisn=isn)
    for k, (off, chunk) in enumerate([head, *rest]):
        pkts.append((0.1 + k * 0.001, tcp(CLI, 40000, SRV, 7000, isn + 1 + off, PA, chunk)))
    pkts += close(40000, 7000, isn + 1 + len(payload), 5001, 1.0)
    _, out, flows = run(write(tmp_path / "f.pcap", pkts), [Recorder], batch_size=batch)
    (rec,) = out.logs("hello")
    assert rec["orig"] == payload and rec["gaps"] == []
    assert [f["uid"] for f in flows] == [rec["uid"]]


def test_unrecognised_connection_is_ignored_for_the_rest_of_its_life(tmp_path: Path) -> None:
    pkts = handshake()
    pkts += [(0.10, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"nothing known")),
             (0.11, tcp(SRV, 7000, CLI, 40000, 5001, PA, b"nope")),
             (0.12, tcp(CLI, 40000, SRV, 7000, 1014, PA, b"HELLO too late"))]
    for size in (1, 65536):
        app, out, _ = run(write(tmp_path / "t.pcap", pkts), [Recorder], batch_size=size)
        assert out.logs("hello") == [] and dict(app.services()) == {}
        assert app.ignored == {} and app.open_connections == 0  # finish() forgets everything


def test_port_hint_orders_detection(tmp_path: Path) -> None:
    pkts = handshake() + [(0.1, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO"))]
    pkts += handshake(sport=40001, dport=9999, t=1.0) + [(1.1, tcp(CLI, 40001, SRV, 9999, 1001, PA, b"HELLO"))]
    app, out, _ = run(write(tmp_path / "t.pcap", pkts), [Greedy, Recorder])
    svc = {uid: s for uid, s in app.services()}
    by_port = {r["id.resp_p"]: svc[r["uid"]] for r in out.logs("hello")}
    assert by_port == {7000: ["hello"], 9999: ["greedy"]}


def test_parser_exception_is_counted_and_detaches(tmp_path: Path) -> None:
    pkts = handshake()
    pkts += [(0.10, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO BOOM")),
             (0.11, tcp(CLI, 40000, SRV, 7000, 1011, PA, b"more"))]
    app, out, _ = run(write(tmp_path / "t.pcap", pkts), [Recorder])
    assert app.failures == {"hello": 1}
    assert out.logs("hello") == []  # detached before its end


def test_redetect_hands_the_connection_to_the_next_protocol(tmp_path: Path) -> None:
    pkts = handshake()
    pkts += [(0.10, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO STARTTLS")),
             (0.15, tcp(SRV, 7000, CLI, 40000, 5001, PA, b"GO")),
             (0.20, tcp(CLI, 40000, SRV, 7000, 1015, PA, b"\x16\x03\x01 client hello")),
             (0.30, tcp(SRV, 7000, CLI, 40000, 5003, PA, b"\x16\x03\x03 server hello"))]
    pkts += close(40000, 7000, 1015 + 16, 5003 + 16, 0.5)
    for size in (1, 65536):
        app, out, _ = run(write(tmp_path / "t.pcap", pkts), [Recorder, Other], batch_size=size)
        (first, second) = out.logs("hello")
        assert first["orig"] == b"HELLO STARTTLS" and first["resp"] == b"GO"
        assert second["orig"] == b"\x16\x03\x01 client hello" and second["resp"] == b"\x16\x03\x03 server hello"
        assert dict(app.services()) == {first["uid"]: ["hello", "other"]}


def test_sated_parser_gets_no_more_bytes_but_its_end(tmp_path: Path) -> None:
    class Sated(Recorder):
        """Has what it needs once the server said something (as TLS once both sides encrypt)."""

        def data(self, is_orig, data, ts):
            super().data(is_orig, data, ts)
            if not is_orig:
                self.wants_data = False

    pkts = handshake() + [(0.10, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO")),
                          (0.11, tcp(CLI, 40000, SRV, 7000, 1010, PA, b"later")),  # beyond a hole: held
                          (0.20, tcp(SRV, 7000, CLI, 40000, 5001, PA, b"hi")),
                          (0.30, tcp(CLI, 40000, SRV, 7000, 1006, PA, b"more")),  # fills it: not delivered
                          (0.40, tcp(SRV, 7000, CLI, 40000, 5003, PA, b"and more"))]
    pkts += close(40000, 7000, 1015, 5011, 0.5)
    pkts += handshake(cisn=9000, sisn=7000, t=1.0) + [(1.1, tcp(CLI, 40000, SRV, 7000, 9001, PA, b"HELLO again"))]
    for size in (1, 65536):
        app, out, flows = run(write(tmp_path / "t.pcap", pkts), [Sated], batch_size=size)
        first, second = out.logs("hello")
        assert first["orig"] == b"HELLO" and first["resp"] == b"hi" and first["gaps"] == []
        assert first["ts"] == T0 / 1e9 + 0.51  # ended by the FINs, as any connection
        assert second["orig"] == b"HELLO again"  # the port pair's next connection is parsed afresh
        assert app._buffered_total == 0 and len(flows) == 2


def test_expected_connection_gets_its_parser_without_detection(tmp_path: Path) -> None:
    class Control(Recorder):
        def data(self, is_orig, data, ts):
            super().data(is_orig, data, ts)
            if data.startswith(b"HELLO PASV"):
                self.out.expect(self.conn, orig_h=CLI, resp_h=SRV, resp_p=20000, parser=Recorder,
                                context={"file": "x.bin"}, ts=ts)

    pkts = handshake() + [(0.1, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO PASV"))]
    pkts += handshake(sport=40001, dport=20000, t=0.2) + [(0.3, tcp(SRV, 20000, CLI, 40001, 5001, PA, b"raw file")),
                                                          (0.31, tcp(CLI, 40001, SRV, 20000, 1001, PA, b"thanks"))]
    pkts += close(40001, 20000, 1007, 5009, 0.4)
    for size in (1, 65536):
        app, out, _ = run(write(tmp_path / "t.pcap", pkts), [Control], batch_size=size)
        data_rec = [r for r in out.logs("hello") if r["id.resp_p"] == 20000]
        assert len(data_rec) == 1 and data_rec[0]["resp"] == b"raw file" and data_rec[0]["orig"] == b"thanks"
        assert data_rec[0]["context"] == {"file": "x.bin"}
        assert len(out.expected) == 1  # the caller's Output hears of it too


def test_buffer_bounds_give_up_holes_early(tmp_path: Path) -> None:
    def conn_pkts(sport: int, t: float):
        return handshake(sport=sport, t=t) + [
            (t + 0.1, tcp(CLI, sport, SRV, 7000, 1001, PA, b"HELLO")),
            (t + 0.2, tcp(CLI, sport, SRV, 7000, 1106, PA, b"B" * 60)),  # 100 bytes missing before it
        ]

    late = [(5.0, tcp(CLI, 40000, SRV, 7000, 1006, PA, b"h" * 100))]  # the hole, too late
    pkts = conn_pkts(40000, 0.0) + conn_pkts(40001, 1.0) + late
    path = write(tmp_path / "t.pcap", pkts)
    # unbounded: the late segment fills the hole
    recs = {r["id.orig_p"]: r for r in run(path, [Recorder])[1].logs("hello")}
    assert recs[40000]["orig"] == b"HELLO" + b"h" * 100 + b"B" * 60 and recs[40000]["gaps"] == []
    # over the total bound (120 > 100): both holes are given up as gaps, the late bytes are dropped
    # (one packet per batch: within a batch each connection's rows are taken together)
    recs = {r["id.orig_p"]: r for r in run(path, [Recorder], batch_size=1, max_total_buffer=100)[1].logs("hello")}
    assert recs[40000]["orig"] == b"HELLO" + b"B" * 60 and recs[40000]["gaps"] == [(True, 100)]
    assert recs[40001]["gaps"] == [(True, 100)]
    # over the per-direction bound: the same, for one connection alone
    recs = {r["id.orig_p"]: r for r in run(path, [Recorder], max_buffer=50)[1].logs("hello")}
    assert recs[40000]["orig"] == b"HELLO" + b"B" * 60 and recs[40000]["gaps"] == [(True, 100)]


def test_rst_ends_the_connection_and_a_new_syn_starts_another(tmp_path: Path) -> None:
    pkts = handshake() + [(0.1, tcp(CLI, 40000, SRV, 7000, 1001, PA, b"HELLO one")),
                          (0.2, tcp(SRV, 7000, CLI, 40000, 5001, R))]
    pkts += handshake(cisn=9000, sisn=7000, t=1.0) + [(1.1, tcp(CLI, 40000, SRV, 7000, 9001, PA, b"HELLO two"))]
    app, out, flows = run(write(tmp_path / "t.pcap", pkts), [Recorder])
    recs = out.logs("hello")
    assert [r["orig"] for r in recs] == [b"HELLO one", b"HELLO two"]
    assert recs[0]["uid"] != recs[1]["uid"]
    assert {r["uid"] for r in recs} == {f["uid"] for f in flows}


def test_udp_inactivity_splits_connections_like_the_flow_meter(tmp_path: Path) -> None:
    from tests.helpers.dns import PTR_Q, QUERY, RESPONSE, message, question, rr

    def pair(tid: int, t: float):
        q = message(tid, QUERY, [question("a.example.com")])
        r = message(tid, RESPONSE, [question("a.example.com")], [rr(PTR_Q, 1, b"\x01\x02\x03\x04")])
        return [(t, udp(CLI, 5555, SRV, 53, q)), (t + 0.01, udp(SRV, 53, CLI, 5555, r))]

    pkts = pair(1, 0.0) + pair(2, 5.0) + pair(3, 40.0) + pair(4, 200.0)  # DNS session timer: 10 s
    _, out, flows = run(write(tmp_path / "t.pcap", pkts), [DNS])
    recs = out.logs("dns")
    assert [r["trans_id"] for r in recs] == [1, 2, 3, 4]
    assert recs[0]["uid"] == recs[1]["uid"] != recs[2]["uid"] != recs[3]["uid"]
    assert sorted({r["uid"] for r in recs}) == sorted(f["uid"] for f in flows)
    assert all(r["id.orig_h"] == CLI for r in recs)



# -- the flow table is the reference for uids and orientation ---------------------------------------

class Everything(Parser):
    """Takes every connection and logs its identity at the end."""

    service = "all"
    transport = "tcp"

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return True

    def end(self, ts: float) -> None:
        self.out.log("conn", {}, self.conn)


class EverythingUDP(Everything):
    transport = "udp"


def _check_against_store(tmp_path: Path, trace: Path) -> int:
    store = Store(str(tmp_path / "w.db"))
    store.migrate()
    try:
        ingest([str(trace)], store)
        flows = {f["uid"]: f for f in store.query_flows()}
    finally:
        store.close()
    _, out, _ = run(trace, [Everything, EverythingUDP])
    recs = out.logs("conn")
    for r in recs:
        f = flows.get(r["uid"])
        assert f is not None, r
        assert (f["orig_h"], f["orig_p"], f["resp_h"], f["resp_p"], f["proto"]) == (
            r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["proto"]), r
    return len(recs)


def test_generated_traffic_uids_and_orientation_match_the_flow_table(tmp_path: Path) -> None:
    gen = need(GEN_TRAFFIC, "the traffic generator")
    trace = tmp_path / "gen.pcap"
    subprocess.run([sys.executable, str(gen), str(trace), "--packets", "20000", "--seed", "5"], check=True,
                   capture_output=True)
    assert _check_against_store(tmp_path, trace) > 1000


def test_reference_trace_uids_match_the_flow_table(tmp_path: Path) -> None:
    trace = need(REFERENCE / "zeek-app" / "http__get.pcap", "Zeek app reference traces")
    assert _check_against_store(tmp_path, trace) >= 1
    (tmp_path / "dns").mkdir()
    assert _check_against_store(tmp_path / "dns", REFERENCE / "zeek-app" / "dnssec__nsec.pcap") >= 2
