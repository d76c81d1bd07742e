"""The core's modules compiled with Cython, used when they match their source.

The protocol parsers and the dispatcher feeding them run per connection and per segment, in
Python; compiling the source with Cython takes about a fifth off the ingest's time with every
parser on (measured: README, "Why Cython"). Most modules are compiled unchanged. A module may
type its hot state in Cython's pure-Python mode (``apps/streams.py``, ``apps/dispatch.py``,
``apps/dns.py``, ``apps/tls.py``, ``apps/tls_hello.py``): ``cython.cclass`` extension types with
``cython.declare``'d attributes, ``cython.locals`` and ``cython.cfunc``; these are explicit and module by module,
``recorder.core.purecython`` stands in for ``cython`` when Cython is not installed (and its
``slotted`` gives a cclass its ``__slots__`` as Python), and a module may set its own directives in a
``# cython:`` header line (its hash, and so its build, changes with it). Two loops over a batch's
packets take typed memoryviews of its numpy arrays and bytes (``capio/pcapwrite.py``'s record
packer, ``decode/mactable.py``'s grouping: declared with ``cython.typedef``, run as numpy when not
compiled). Bounds checking and
wrap-around checks stay on everywhere, and no module uses raw pointers. Nothing becomes
unchecked C through the hints: the type annotations are ignored (``annotation_typing`` off; with it
on, Cython enforces every hint strictly, rejecting a ``Counter`` where ``-> tuple`` was written or
SQLAlchemy's ``str`` subclass where ``str`` was, which the test suite caught in 105 tests), so a
compiled module keeps Python's semantics: Python integers and objects, bounds-checked slices and
indexes, the same exceptions; hostile input meets the same checks as in the interpreter. The
whole test suite, fuzz tests included, runs against the compiled modules, and a test compares an
ingest compiled and not.

``python -m recorder.core.build_compiled`` compiles every module of ``recorder.core`` (but the
package ``__init__`` files, this module, and modules using numba, whose JIT needs Python
functions) into ``recorder/core/_compiled/``, with a manifest of each source's SHA-256.
``install()``, run when ``recorder.core`` is imported, puts a finder in front of the normal import
that loads a compiled module only when the source beside it still has that hash: an edited module
runs as Python until the next build, never as stale code. ``WIRETRAIL_PURE_PYTHON=1`` turns the
compiled modules off. Without a build (no compiler, a plain ``pip install``) everything runs as
Python, slower.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent
COMPILED_DIR = CORE / "_compiled"
MANIFEST = "manifest.json"
PURE_ENV = "WIRETRAIL_PURE_PYTHON"
PACKAGE = "recorder.core"
# what the compiled modules are built with; a module compiled otherwise is rebuilt
DIRECTIVES = {"language_level": 3, "annotation_typing": False}
SELF = ("compiled", "build_compiled", "purecython")  # this mechanism stays Python


def ext_suffix() -> str:
    """This interpreter's file name ending for extension modules."""
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rel(name: str) -> Path:
    """A module's path under ``recorder/core`` (or ``_compiled``), without its ending."""
    return Path(*name[len(PACKAGE) + 1:].split("."))


def source(name: str) -> Path:
    return (CORE / _rel(name)).with_suffix(".py")


def binary(name: str, directory: Path = COMPILED_DIR) -> Path:
    return (directory / _rel(name)).with_suffix(ext_suffix())


def is_current(name: str, built_digest: str, directory: Path = COMPILED_DIR) -> bool:
    """Whether the compiled ``name`` in ``directory`` exists and its source still has the hash it
    was built from."""
    try:
        return digest(source(name).read_bytes()) == built_digest and binary(name, directory).is_file()
    except OSError:
        return False


class _Loader(importlib.machinery.ExtensionFileLoader):
    """Loads a compiled module; when the file cannot be loaded (damaged on disk, a library it
    needs gone), the module's source instead, with one warning line rather than a failed import."""

    def __init__(self, finder: CompiledFinder, name: str, path: str) -> None:
        super().__init__(name, path)
        self.finder = finder
        self.fallback: importlib.machinery.SourceFileLoader | None = None

    def create_module(self, spec):
        try:
            return super().create_module(spec)
        except ImportError as err:
            self.finder.broken.append(spec.name)
            self.finder.loaded.remove(spec.name)
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"warning: compiled module {spec.name} cannot be loaded ({reason}); running it as Python",
                  file=sys.stderr)
            self.fallback = importlib.machinery.SourceFileLoader(spec.name, str(source(spec.name)))
            return None  # a plain module, filled by exec_module from the source

    def exec_module(self, module) -> None:
        if self.fallback is None:
            super().exec_module(module)
            return
        module.__file__ = self.fallback.path
        module.__loader__ = self.fallback
        module.__spec__ = importlib.util.spec_from_file_location(module.__name__, self.fallback.path,
                                                                 loader=self.fallback)
        self.fallback.exec_module(module)


class CompiledFinder:
    """A ``sys.meta_path`` finder: the compiled module for a name in ``modules`` (name -> source
    SHA-256) when its source still has that hash, else nothing (the normal import goes on). A
    compiled file that will not load runs as its source (``broken``)."""

    def __init__(self, modules: dict[str, str], directory: Path) -> None:
        self.modules = modules
        self.directory = directory
        self.loaded: list[str] = []
        self.stale: list[str] = []
        self.broken: list[str] = []

    def find_spec(self, name: str, path=None, target=None):
        built = self.modules.get(name)
        if built is None:
            return None
        if not is_current(name, built, self.directory):
            self.stale.append(name)
            return None
        self.loaded.append(name)
        so = str(binary(name, self.directory))
        return importlib.util.spec_from_file_location(name, so, loader=_Loader(self, name, so))

    # the rest of the finder protocol
    def invalidate_caches(self) -> None:
        pass


def read_manifest(directory: Path = COMPILED_DIR) -> dict[str, str]:
    """The built modules (name -> source SHA-256) usable by this interpreter; {} if none."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if (not isinstance(manifest, dict) or manifest.get("suffix") != ext_suffix()
            or manifest.get("directives") != DIRECTIVES or not isinstance(manifest.get("modules"), dict)):
        return {}
    return {str(k): str(v) for k, v in manifest["modules"].items()}


def install() -> CompiledFinder | None:
    """Put the finder of the built modules first in ``sys.meta_path`` (once); None when there is
    no usable build or ``WIRETRAIL_PURE_PYTHON`` is set to anything but 0 or empty."""
    for finder in sys.meta_path:
        if isinstance(finder, CompiledFinder):
            return finder
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    modules = read_manifest()
    if not modules:
        return None
    finder = CompiledFinder(modules, COMPILED_DIR)
    sys.meta_path.insert(0, finder)
    return finder


def status() -> str:
    """One line for ``--version``: how many core modules run compiled."""
    finder = next((f for f in sys.meta_path if isinstance(f, CompiledFinder)), None)
    if finder is None:
        why = "turned off by " + PURE_ENV if os.environ.get(PURE_ENV, "") not in ("", "0") else "not built"
        return f"compiled core modules: none ({why})"
    built = len(finder.modules)
    stale = sum(1 for name, built in finder.modules.items() if not is_current(name, built, finder.directory))
    extra = f", {stale} changed since the build (run as Python)" if stale else ""
    if finder.broken:
        extra += f", {len(finder.broken)} cannot be loaded (run as Python)"
    return f"compiled core modules: {built - stale - len(finder.broken)} of {built} built{extra}"


def version_message() -> str:
    """click's ``--version`` message: the version, then which core modules run compiled."""
    return "%(prog)s, version %(version)s\n" + status().replace("%", "%%")


def candidates() -> dict[str, Path]:
    """The modules of ``recorder.core`` to compile: name -> source."""
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE)
        if rel.name == "__init__.py" or rel.parts[0] in ("migrations", "_compiled") or rel.stem in SELF:
            continue
        if "numba" in path.read_text(encoding="utf-8"):
            continue  # numba compiles Python functions: a Cython function is not one
        found[".".join((PACKAGE, *rel.with_suffix("").parts))] = path
    return found
