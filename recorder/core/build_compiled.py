"""Build the core's compiled modules: ``python -m recorder.core.build_compiled [--jobs N]``.

Needs Cython and a C compiler (``make`` installs both); see ``recorder.core.compiled``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from recorder.core.compiled import (
    COMPILED_DIR,
    DIRECTIVES,
    MANIFEST,
    binary,
    candidates,
    digest,
    ext_suffix,
    read_manifest,
)


def build(jobs: int = 2, quiet: bool = True) -> tuple[int, int]:
    """Compile the modules whose source changed since the last build (all on the first one)
    into ``_compiled``; returns (compiled now, kept). Needs Cython and a C compiler."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    wanted = candidates()
    old = read_manifest()
    sources = {name: path.read_bytes() for name, path in wanted.items()}
    digests = {name: digest(data) for name, data in sources.items()}
    keep = {name for name in wanted if old.get(name) == digests[name] and binary(name).is_file()}
    todo = sorted(set(wanted) - keep)
    with tempfile.TemporaryDirectory(prefix="wiretrail-build-") as tmp:
        root = Path(tmp)
        exts = []
        for name in todo:  # compile the very bytes hashed, at their place in the package tree
            copy = root.joinpath("src", *name.split(".")).with_suffix(".py")
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(sources[name])
            for parent in copy.relative_to(root / "src").parents:
                if parent != Path("."):
                    (root / "src" / parent / "__init__.py").touch()
            exts.append(Extension(name, [str(copy)], extra_compile_args=["-g0"]))  # no debug info: a third faster to build
        if exts:
            cwd = os.getcwd()
            os.chdir(root / "src")  # Cython names a module by its place under the working directory
            try:
                modules = cythonize(exts, compiler_directives=DIRECTIVES, nthreads=jobs, quiet=quiet,
                                    build_dir=str(root / "c"))
                dist = Distribution({"name": "wiretrail-compiled", "ext_modules": modules})
                cmd = dist.get_command_obj("build_ext")
                cmd.build_lib, cmd.build_temp, cmd.parallel = str(root / "lib"), str(root / "obj"), jobs
                cmd.ensure_finalized()
                cmd.run()
            finally:
                os.chdir(cwd)
        COMPILED_DIR.mkdir(exist_ok=True)
        for name in todo:
            target = binary(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            built = root.joinpath("lib", *name.split(".")).with_suffix(ext_suffix())
            tmp_target = target.with_name(target.name + ".new")
            shutil.copyfile(built, tmp_target)
            os.replace(tmp_target, target)  # a running process keeps the file it mapped
    manifest = {"suffix": ext_suffix(), "directives": DIRECTIVES,
                "modules": {name: digests[name] for name in sorted(wanted)}}
    tmp_manifest = COMPILED_DIR / (MANIFEST + ".new")
    tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp_manifest, COMPILED_DIR / MANIFEST)
    return len(todo), len(keep)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m recorder.core.build_compiled",
                                 description="Compile the core's changed modules with Cython (see recorder.core.compiled).")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    try:
        done, kept = build(jobs=args.jobs)
    except ImportError as err:
        print(f"error: cannot build the compiled modules: {err} (pip install cython)", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the compiler's own output is above; one line here
        print(f"error: building the compiled modules failed: {err}", file=sys.stderr)
        return 1
    print(f"compiled {done} core modules into {COMPILED_DIR} ({kept} unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
