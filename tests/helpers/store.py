"""Rows for the store's tests: a complete flow row as the flow meter hands it over."""

from __future__ import annotations

from recorder.core.store import addr16

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


def flow(n: int, orig: str = "10.0.0.1", resp: str = "10.0.0.2", **kw) -> dict:
    """A complete flow row as the meter hands it over; ``kw`` overrides fields."""
    row = {
        "uid": f"CTest{n:013d}", "capture_id": None, "file_offset": 24 + 100 * n,
        "ts_ns": T0 + n * 1_000_000_000, "duration_ns": 1_500_000,
        "orig_h": orig, "orig_p": 40000 + n, "resp_h": resp, "resp_p": 53,
        "orig_a": addr16(orig), "resp_a": addr16(resp),
        "proto": "udp", "ip_proto": 17, "service": "dns", "orig_bytes": 40, "resp_bytes": 120,
        "conn_state": "SF", "local_orig": True, "local_resp": False, "missed_bytes": 0,
        "history": "Dd", "orig_pkts": 1, "orig_ip_bytes": 68, "resp_pkts": 1, "resp_ip_bytes": 148,
        "tunnel_parents": None, "community_id": "1:abcdefghijklmnopqrstuvwxyz0=",
    }
    row.update(kw)
    if "orig_h" in kw:
        row["orig_a"] = addr16(kw["orig_h"])
    if "resp_h" in kw:
        row["resp_a"] = addr16(kw["resp_h"])
    return row
