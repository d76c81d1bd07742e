"""Cython's pure-Python names for a module typed with them, when Cython is not installed.

A module typed for Cython (``cython.cclass``, ``cython.locals``, ``cython.declare``; see
``recorder.core.compiled``) starts with::

    try:
        import cython
    except ImportError:  # no Cython: the same source runs as plain Python
        from recorder.core import purecython as cython

Compiled, Cython reads the names as types; as Python (Cython installed or not) they change
nothing: the decorators return what they decorate and ``declare`` its value.
"""

from __future__ import annotations

compiled = False

# the C types a typed module names, as the Python types they hold
int = int  # noqa: A001 - Cython's own names
long = longlong = Py_ssize_t = size_t = uint = ulong = ulonglong = uchar = int
bint = bool
double = float = float  # noqa: A001


def _same(obj):
    return obj


cclass = cfunc = ccall = inline = final = _same


def locals(**types):  # noqa: A001 - Cython's name
    return _same


def returns(type_):
    return _same


def exceptval(*args, **kwargs):
    return _same


def declare(type_=None, value=None, **kwargs):
    return value


class _BufferItem:
    """A typed memoryview's item type (``cython.typedef(cython.const[cython.uchar])``): as Python,
    slicing it (``U8[:]``, the memoryview's declaration) gives ``object``; nothing is checked."""

    def __getitem__(self, dims):
        return object


class _Const:
    def __getitem__(self, type_):
        return type_


const = _Const()


def typedef(type_, name=None):
    return _BufferItem()


class _NoGil:
    """``cython.nogil`` and ``cython.gil``: as Python, a block (or a decorated function) as it is."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False

    def __call__(self, func):
        return func


nogil = gil = _NoGil()


def slotted(cls: type) -> type:
    """As Python, ``cls`` (a ``cython.cclass``) rebuilt with ``__slots__`` for the attributes its
    body declares with ``cython.declare`` (None at class level as Python, Cython installed or not).

    Compiled, the extension type has fixed C fields; as Python a class body cannot hold both the
    declarations and ``__slots__`` naming them, so without this every instance would carry a
    ``__dict__``: attribute reads and writes slower, instances larger. A typed module applies it
    after the class, where Cython drops it from the compiled module::

        if not cython.compiled:
            Stream = slotted(Stream)
    """
    names = tuple(k for k, v in vars(cls).items() if v is None and not k.startswith("__"))
    body = {k: v for k, v in vars(cls).items() if k not in names and k not in ("__dict__", "__weakref__")}
    body["__slots__"] = names
    return type(cls)(cls.__name__, cls.__bases__, body)
