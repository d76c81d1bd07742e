"""Sealed capture files made with the recorder's own library code (RotatingWriter, the hash
chain and the store), as the daemon seals them, without a live capture."""

from __future__ import annotations

from pathlib import Path

from recorder.core.capio.pcapio import read_batches
from recorder.core.evidence import GENESIS, chain_hash
from recorder.core.secure_files import GROUP_READ
from recorder.core.store import Store
from recorder.rotation import RotatingWriter, SealedFile

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"
SENSOR, IFACE = "s1", "eth1"


def seal_demo(tmp_path: Path, rotate_size: int = 40_000, recipient=None,
              name: str = "out") -> tuple[str, Path, list[Path]]:
    """captures/demo.pcap recorded into rotated, sealed files under tmp_path/out, with their
    records and chain in tmp_path/rec.db (encrypted for ``recipient``, an age X25519 public key,
    when given). Returns (db, out directory, sealed files in order)."""
    out = tmp_path / name
    out.mkdir()
    db = str(tmp_path / f"{'rec' if name == 'out' else name}.db")
    store = Store(db, file_mode=GROUP_READ)
    store.ensure_schema()

    def on_open(path: Path) -> int:
        return store.add_capture(path=str(path), format="pcap", link_types="1", origin="recorder",
                                 interface=IFACE, sensor=SENSOR)

    def on_seal(s: SealedFile) -> None:  # as recorder.stream.Stream._record_seal
        prev = store.last_chain(SENSOR, IFACE) or GENESIS
        chain = chain_hash(prev, name=s.path.name, sha256=s.sha256, packets=s.packets, size=s.size,
                           first_ts_ns=s.first_ts_ns, last_ts_ns=s.last_ts_ns)
        store.update_capture(s.capture_id, sha256=s.sha256, packets=s.packets, bytes=s.size,
                             first_ts_ns=s.first_ts_ns, last_ts_ns=s.last_ts_ns, sealed_at=s.sealed_at_ns,
                             repaired=False, prev_chain=prev, chain=chain)

    writer = RotatingWriter(out, f"{SENSOR}-{IFACE}", linktype=1, snaplen=65535, rotate_size=rotate_size,
                            rotate_interval=0, on_open=on_open, on_seal=on_seal,
                            recipient=recipient)
    for raw in read_batches(DEMO, batch_size=50):
        writer.write(raw)
    writer.close()
    store.close()
    files = sorted(out.glob("*.pcap.age" if recipient is not None else "*.pcap"))
    return db, out, files
