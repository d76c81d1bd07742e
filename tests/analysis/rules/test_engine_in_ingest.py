"""The engine as the ingest's inspector (``ingest(..., inspector=engine)``, what ``wiretrail replay``
does): the alerts are those of the engine reading the captures on its own, whether the application
layer runs in the ingest's process or in its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.rules import Variables, load_classifications, parse_rule
from analysis.rules.engine import Engine, EngineInspector
from recorder.core.pipeline import applayer
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store

DEMO = Path(__file__).resolve().parents[3] / "captures" / "demo.pcap"
RULES = [
    'alert http any any -> any any (msg:"http post"; http.method; content:"POST"; sid:1;)',
    'alert dns any any -> any any (msg:"dns query"; dns.query; content:"."; sid:2;)',
    'alert tcp any any -> any 21 (msg:"ftp user"; flow:established,to_server; content:"USER "; sid:3;)',
    'alert tcp any any -> $HOME_NET any (msg:"syn"; flags:S; sid:4;)',
    'alert icmp any any -> any any (msg:"echo"; itype:8; sid:5;)',
    'alert tls any any -> any any (msg:"sni"; tls.sni; content:"."; sid:6;)',
    'alert ssh any any -> any any (msg:"ssh banner"; content:"SSH-"; sid:7;)',
]


def engine() -> Engine:
    classes = load_classifications()
    return Engine([parse_rule(text, Variables(), classes) for text in RULES])


def eve(alerts) -> list[dict]:
    return [a.to_eve() for a in alerts]


@pytest.fixture(scope="module")
def alone():
    return eve(engine().run([str(DEMO)]))


def test_every_rule_fires_on_the_demo(alone):
    assert {a["alert"]["signature_id"] for a in alone} == set(range(1, 8))
    assert all(a.get("app_proto") for a in alone if a["alert"]["signature_id"] in (1, 2, 3, 6, 7))


@pytest.mark.parametrize("where", ["app-process", "in-process"])
def test_ingest_inspection_gives_the_engines_alerts(tmp_path, monkeypatch, alone, where):
    if where == "app-process" and applayer.cores() < 2:
        pytest.skip("the application layer gets its own process only with a second core")
    monkeypatch.setattr(applayer, "APP_PROCESS", where == "app-process")
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        stats = ingest([str(DEMO)], store, inspector=engine())
        assert eve(stats.inspected) == alone
        assert stats.app_records > 0  # the parsers stored their records as well
        flows = {f["uid"] for f in store.query_flows()}
    assert {a.uid for a in stats.inspected} <= flows  # each alert joins a stored flow


def test_ingest_without_parsers_still_inspects_packets(tmp_path, alone):
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        stats = ingest([str(DEMO)], store, parsers=False, inspector=engine())
    sids = {a.signature_id for a in stats.inspected}
    assert sids == {3, 4, 5}  # packet rules; sid 7 needs a parser to name the flow ssh


def test_an_ingest_stopped_early_ends_the_inspection_process(tmp_path):
    import multiprocessing

    def progress(n, nbytes):
        raise RuntimeError("stop here")

    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        with pytest.raises(RuntimeError, match="stop here"):
            ingest([str(DEMO)], store, progress=progress, inspector=engine())
    assert multiprocessing.active_children() == []


class Failing:
    def feed(self, raw, dec, messages, recognised):
        raise ValueError("the inspector broke")

    def finish(self, messages):
        return None


@pytest.mark.parametrize("where", ["app-process", "in-process"])
def test_an_inspector_error_stops_the_ingest_with_one_line(tmp_path, monkeypatch, where):
    from recorder.core.errors import WiretrailError

    monkeypatch.setattr(applayer, "APP_PROCESS", where == "app-process")
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        with pytest.raises((WiretrailError, ValueError), match="the inspector broke"):
            ingest([str(DEMO)], store, inspector=Failing())


# --- one engine per core, each on its share of the flows -------------------------------------------

def _ingest_with(tmp_path, inspector, paths):
    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        return ingest([str(p) for p in paths], store, inspector=inspector).inspected


def _two_cores():
    if applayer.cores() < 2:
        pytest.skip("the engine is sharded only with a second core")


def test_sharded_engines_give_the_engines_alerts(tmp_path, alone):
    _two_cores()
    inspector = EngineInspector(engine().rules)
    assert eve(_ingest_with(tmp_path, inspector, [DEMO])) == alone


THRESHOLDED = [
    'alert tcp any any -> any 80 (msg:"limit"; flow:to_server; content:"evil"; '
    'threshold:type limit, track by_src, count 3, seconds 60; sid:10;)',
    'alert tcp any any -> any 80 (msg:"every 4th"; flow:to_server; content:"evil"; '
    'threshold:type threshold, track by_dst, count 4, seconds 60; sid:11;)',
    'alert tcp any any -> any 80 (msg:"after 5"; flow:to_server; content:"evil"; '
    'detection_filter:track by_src, count 5, seconds 60; sid:12;)',
    'alert tcp any any -> any 80 (msg:"each"; flow:to_server; content:"evil"; sid:13;)',
]


def test_thresholds_count_across_the_shards(tmp_path, monkeypatch):
    """threshold and detection_filter count matches across flows, so across the shards: applied
    after the shards' alerts are merged, they give what one engine gives."""
    _two_cores()
    from recorder.core.apps.inspection import shard_of
    from tests.analysis.behaviour.traffic import Capture

    cap = Capture()
    ports = range(40000, 40020)
    for i, sport in enumerate(ports):
        cap.session(i * 0.5, "10.0.0.5", "10.0.0.80", sport, 80, [(b"GET /evil HTTP/1.0\r\n\r\n", b"")])
    pcap = cap.write(tmp_path / "evil.pcap")
    assert {shard_of(6, "10.0.0.5", p, "10.0.0.80", 80, 2) for p in ports} == {0, 1}  # both shards see flows
    classes = load_classifications()
    rules = [parse_rule(text, Variables(), classes) for text in THRESHOLDED]
    one = eve(Engine(rules).run([pcap]))
    sids = [a["alert"]["signature_id"] for a in one]
    assert (sids.count(10), sids.count(11), sids.count(12), sids.count(13)) == (3, 5, 15, 20)
    monkeypatch.setattr(applayer, "MAX_INSPECTOR_SHARDS", 2)
    assert eve(_ingest_with(tmp_path, EngineInspector(rules), [pcap])) == one


def test_a_sharded_ingest_stopped_early_ends_every_inspection_process(tmp_path):
    _two_cores()
    import multiprocessing

    def progress(n, nbytes):
        raise RuntimeError("stop here")

    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        with pytest.raises(RuntimeError, match="stop here"):
            ingest([str(DEMO)], store, progress=progress, inspector=EngineInspector(engine().rules))
    assert multiprocessing.active_children() == []


class _FailingShard:
    """A shardable inspector whose second shard fails on its first batch."""

    def __init__(self, k: int = 0) -> None:
        self.k = k

    def shard(self, k: int, n: int):
        return _FailingShard(k)

    def merge(self, results):
        return sum(results, [])

    def feed(self, raw, dec, messages, recognised):
        if self.k == 1:
            raise ValueError("shard one is broken")

    def finish(self, messages):
        return []


def test_a_failing_shard_is_one_clear_error_and_no_process_is_left(tmp_path):
    _two_cores()
    import multiprocessing

    from recorder.core.errors import WiretrailError

    with Store(str(tmp_path / "w.db")) as store:
        store.ensure_schema()
        with pytest.raises(WiretrailError, match="shard one is broken"):
            ingest([str(DEMO)], store, inspector=_FailingShard())
    assert multiprocessing.active_children() == []
