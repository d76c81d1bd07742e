"""Ground truth from the shared traffic generator: every flow, exact per direction.

gen_traffic.py writes 200,000 packets of mixed HTTP/TLS/DNS/ICMP traffic and, per flow, the
packets and payload bytes each side sent. Every TCP and UDP ground-truth flow must be in the
store with exactly those figures. ICMP echo flows between the same two hosts within Zeek's
60 s ICMP timeout are one connection in Zeek's meaning, so ICMP is compared per host pair.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from tests.helpers import GEN_TRAFFIC, need


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    gen = need(GEN_TRAFFIC, "gen_traffic.py")
    d = tmp_path_factory.mktemp("gen")
    cap, truth = d / "g.pcap", d / "g.json"
    subprocess.run([sys.executable, str(gen), str(cap), "--packets", "200000", "--seed", "2",
                    "--truth", str(truth)], check=True, capture_output=True)
    store = Store(str(d / "g.db"))
    store.ensure_schema()
    stats = ingest([str(cap)], store)
    flows = list(store.query_flows())
    return [json.loads(line) for line in truth.read_text().splitlines()], flows, stats


def test_every_tcp_and_udp_flow_exact(generated):
    truth, flows, stats = generated
    assert stats.packets == 200_000 and stats.malformed == 0
    ours = {}
    for f in flows:
        ours.setdefault((f["ip_proto"], f["orig_h"], f["orig_p"], f["resp_h"], f["resp_p"]), []).append(f)
    checked = 0
    for t in truth:
        if t["proto"] == 1:
            continue
        key = (t["proto"], t["orig_h"], t["orig_p"], t["resp_h"], t["resp_p"])
        cands = ours.get(key)
        assert cands, f"missing flow {key}"
        f = next((c for c in cands if c["orig_pkts"] == t["orig_pkts"] and c["resp_pkts"] == t["resp_pkts"]),
                 cands[0])
        assert (f["orig_pkts"], f["resp_pkts"]) == (t["orig_pkts"], t["resp_pkts"]), key
        if f["duration_ns"]:  # Zeek leaves payload bytes unset for zero-duration flows
            assert (f["orig_bytes"], f["resp_bytes"]) == (t["orig_bytes"], t["resp_bytes"]), key
        else:
            assert t["orig_pkts"] + t["resp_pkts"] == 1, key
        checked += 1
    assert checked > 10_000


def test_icmp_totals_per_host_pair(generated):
    truth, flows, _ = generated
    want = defaultdict(lambda: [0, 0])
    for t in truth:
        if t["proto"] == 1:
            want[(t["orig_h"], t["resp_h"])][0] += t["orig_pkts"]
            want[(t["orig_h"], t["resp_h"])][1] += t["resp_pkts"]
    got = defaultdict(lambda: [0, 0])
    for f in flows:
        if f["ip_proto"] == 1:
            got[(f["orig_h"], f["resp_h"])][0] += f["orig_pkts"]
            got[(f["orig_h"], f["resp_h"])][1] += f["resp_pkts"]
    assert dict(got) == dict(want)
