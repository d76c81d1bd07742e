"""The recorder's parsers (``LiveApps``) without a network: records and services reach the store,
and a parser process that dies stops only the parsers, with one log line."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from pathlib import Path

from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.flow.flowmeter import FlowMeter
from recorder.core.store import Store
from recorder.sinks import Counters, LiveApps

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def _batches():
    dec = Decoder(fast=True)
    return [(raw, dec.decode(raw)) for raw in read_batches(str(DEMO), batch_size=50)]


def test_records_and_services_reach_the_store(tmp_path):
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    counters = Counters()
    apps = LiveApps(store, counters)
    writer = store.flow_writer()
    meter = FlowMeter(writer.put)
    for raw, dec in _batches():
        meter.add(raw, dec, None)
        apps.feed(raw, dec, None)
    apps.flush()
    meter.finish()
    writer.close()
    apps.close()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT count(*) FROM dns").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM http").fetchone()[0] > 0
        services = dict(conn.execute("SELECT uid, service FROM flows WHERE service IS NOT NULL").fetchall())
    assert {"dns", "http"} <= set(services.values())
    assert counters.parser_skipped == 0
    # the hardware addresses of local hosts, as an ingest of the same capture stores them
    from recorder.core.pipeline.ingest import ingest

    with Store(str(tmp_path / "i.db")) as other:
        other.ensure_schema()
        ingest([str(DEMO)], other)
    pairs = [sorted(sqlite3.connect(tmp_path / db).execute("SELECT addr, mac, ts_ns FROM macs").fetchall())
             for db in ("w.db", "i.db")]
    assert pairs[0] == pairs[1] and pairs[0] != []


def test_a_dead_parser_process_stops_only_the_parsers(tmp_path, caplog):
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    counters = Counters()
    apps = LiveApps(store, counters)
    os.kill(apps.proc.process.pid, signal.SIGKILL)
    apps.proc.process.join()
    batches = _batches()
    with caplog.at_level(logging.ERROR, logger="wiretrail-recorder"):
        for raw, dec in batches:
            apps.feed(raw, dec, None)
        deadline = time.monotonic() + 30
        while not apps.failed and time.monotonic() < deadline:
            time.sleep(0.05)
        apps.feed(*batches[0], None)  # after the failure: counted, not queued
        apps.close()  # returns: nothing waits for the dead process
    assert apps.failed and counters.parser_skipped >= len(batches[0][0])
    assert [r.message for r in caplog.records if "protocol parsers stopped" in r.message] != []


def test_failed_parsers_are_started_again_at_a_flush_after_the_retry_time(tmp_path, caplog):
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    counters = Counters()
    apps = LiveApps(store, counters, retry_seconds=0.5)
    os.kill(apps.proc.process.pid, signal.SIGKILL)
    apps.proc.process.join()
    batches = _batches()
    with caplog.at_level(logging.WARNING, logger="wiretrail-recorder"):
        deadline = time.monotonic() + 30
        while not apps.failed and time.monotonic() < deadline:
            apps.feed(*batches[0], None)
            time.sleep(0.05)
        assert apps.failed
        apps.flush()  # before the retry time: still off
        time.sleep(0.2)
        assert apps.failed
        time.sleep(0.5)
        apps.flush()
        while apps.failed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not apps.failed
        skipped = counters.parser_skipped
        for raw, dec in batches:
            apps.feed(raw, dec, None)
        apps.close()
    assert counters.parser_skipped == skipped  # every batch after the restart was parsed
    assert [r.message for r in caplog.records if r.message == "protocol parsers restarted"] != []
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT count(*) FROM dns").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM http").fetchone()[0] > 0
