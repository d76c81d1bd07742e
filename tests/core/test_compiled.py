"""The compiled core modules (recorder/core/compiled.py): loaded only when current, and an ingest
gives the same store compiled and as Python."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.core import compiled
from recorder.core.compiled import COMPILED_DIR, CompiledFinder, candidates, read_manifest

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(str(p) for p in (ROOT / "captures").glob("*.pcap"))  # demo, encap, tcp_states
BUILT = read_manifest()
needs_build = pytest.mark.skipif(not BUILT, reason="compiled modules not built "
                                 "(python -m recorder.core.build_compiled; make test builds them)")


def test_candidates_leave_out_the_mechanism_init_files_and_numba():
    names = candidates()
    assert "recorder.core.apps.dispatch" in names and "recorder.core.apps.http" in names
    assert "recorder.core.flow.flowkernel" not in names  # numba compiles Python functions
    assert not {"recorder.core.compiled", "recorder.core.build_compiled"} & set(names)
    assert not any(n.endswith("__init__") or ".migrations." in n for n in names)


def test_a_changed_source_runs_as_python():
    finder = CompiledFinder({"recorder.core.apps.dns": "0" * 64}, COMPILED_DIR)
    assert finder.find_spec("recorder.core.apps.dns") is None  # the normal import goes on
    assert finder.stale == ["recorder.core.apps.dns"]
    assert finder.find_spec("recorder.core.apps.unknown") is None


def test_a_build_for_another_interpreter_or_directives_is_not_used(tmp_path):
    good = {"suffix": compiled.ext_suffix(), "directives": compiled.DIRECTIVES, "modules": {"recorder.core.x": "ab"}}
    (tmp_path / "manifest.json").write_text(json.dumps(good))
    assert read_manifest(tmp_path) == {"recorder.core.x": "ab"}
    for key, value in (("suffix", ".cpython-39-x86_64-linux-gnu.so"), ("directives", {"language_level": 2})):
        (tmp_path / "manifest.json").write_text(json.dumps({**good, key: value}))
        assert read_manifest(tmp_path) == {}
    (tmp_path / "manifest.json").write_text("{not json")
    assert read_manifest(tmp_path) == {}


@needs_build
def test_a_current_build_is_loaded():
    name = "recorder.core.apps.dispatch"
    finder = CompiledFinder(BUILT, COMPILED_DIR)
    spec = finder.find_spec(name)
    assert spec is not None and spec.origin.endswith(compiled.ext_suffix())
    assert finder.loaded == [name]


def _ingest(tmp_path: Path, pure: bool) -> tuple[str, dict[str, list]]:
    db = tmp_path / ("pure.db" if pure else "compiled.db")
    env = {**os.environ, compiled.PURE_ENV: "1" if pure else "0"}
    script = ("import sys\nfrom recorder.core.compiled import status\nfrom recorder.core.pipeline.ingest import ingest\n"
              "from recorder.core.store import Store\nimport recorder.core.apps.http as h\n"
              "with Store(sys.argv[1]) as store:\n    store.ensure_schema()\n    ingest(sys.argv[2:], store)\n"
              "print(status(), h.__file__)\n")
    done = subprocess.run([sys.executable, "-c", script, str(db), *CAPTURES], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    con = sqlite3.connect(db)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    dump = {}
    for t in tables:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]
        keep = [c for c in cols if c not in ("path", "ingested_at", "created_at", "updated_at")]
        select = ", ".join(f'"{c}"' for c in keep)
        dump[t] = sorted(map(repr, con.execute(f'SELECT {select} FROM "{t}"')))
    con.close()
    return done.stdout, dump


@needs_build
def test_an_ingest_stores_the_same_compiled_and_as_python(tmp_path):
    out_c, compiled_dump = _ingest(tmp_path, pure=False)
    out_p, pure_dump = _ingest(tmp_path, pure=True)
    assert f"{len(BUILT)} of {len(BUILT)} built" in out_c and compiled.ext_suffix() in out_c
    assert "none (turned off" in out_p and out_p.strip().endswith("http.py")
    counts = {t: len(rows) for t, rows in compiled_dump.items()}
    assert counts["flows"] > 30 and all(counts[t] for t in ("dns", "http", "ssl", "ssh", "files", "credentials", "macs"))
    assert compiled_dump == pure_dump


def test_a_damaged_compiled_file_runs_as_python_with_one_warning(tmp_path):
    # a module of the core that the test process has not imported: a fresh interpreter imports it
    # through a finder whose "compiled" file is garbage
    name = "recorder.core.apps.xmpp"
    damaged = compiled.binary(name, tmp_path)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"\x7fELF not really")
    built = compiled.digest(compiled.source(name).read_bytes())
    script = (
        "import sys\nfrom pathlib import Path\nfrom recorder.core import compiled\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, compiled.CompiledFinder)]\n"
        f"finder = compiled.CompiledFinder({{{name!r}: {built!r}}}, Path({str(tmp_path)!r}))\n"
        "sys.meta_path.insert(0, finder)\n"
        f"import {name} as m\n"
        "print(m.__file__, m.__spec__.origin, finder.broken, finder.loaded, hasattr(m, 'XMPP'))\n"
        "print(compiled.status())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, compiled.PURE_ENV: "0"})
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == f"{compiled.source(name)} {compiled.source(name)} ['{name}'] [] True"
    assert second == "compiled core modules: 0 of 1 built, 1 cannot be loaded (run as Python)"
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"warning: compiled module {name} cannot be loaded (")
    assert len(done.stderr.strip().splitlines()) == 1
