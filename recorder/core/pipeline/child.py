"""One way to run a child process: the flow writer, the record writer, the application layer and
the inspectors all run through ``Child``.

    child = Child(main, (store,), name="wiretrail-flow-writer", family=family, failure=describe)
    child.send(data)            # feed it (bytes over a pipe; or objects, with ``queue=N``)
    child.check()               # a failure it reported, raised here (with its file and offset)
    value = child.reply()       # its next answer ("ok", value), its warnings passed on
    child.close()               # no more input; wait for it to finish and end

    def main(inbox: Inbox, outbox: Outbox, store) -> None:     # runs in the child
        for data in inbox:      # until the parent closes its end, or dies
            ...
        outbox.send("done", n)

In the child, ``main``'s exception becomes one reply ``("error", ...)`` carrying the error's class
and location (a ``WiretrailError``'s path, offset, packet, line), which the parent raises again as
the same class; any other exception is first made a WiretrailError by ``failure(err)``.

Which pipe ends to close is decided here, once: a child closes every end its ``Family`` knows of
but its own, and an end handed to a child (``hand_over``) is closed in the parent once the child
has it. A forgotten end would keep a pipe open after its writer is gone, and a reader waiting for
end-of-file would wait forever. A child also ends when its parent dies (SIGKILL leaves no one to
close the pipe): pipes give end-of-file then, and a queue is polled for the parent's death.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from recorder.core import errors as errors_module
from recorder.core.errors import WiretrailError

PIPE_BYTES = 1 << 20  # a packet pipe's kernel buffer (Linux's default is 64 KiB)
_END = None  # the end of a queue's input (None pickles as itself across processes)
_CONTEXT = multiprocessing.get_context("fork")


def widen(conn) -> None:
    """Give a pipe carrying packet batches a larger kernel buffer, where the system allows it: the
    batches (tens of MB) then cross in 16 times fewer wake-ups (measured: README, "Measured
    choices")."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default buffer works too


class Family:
    """The pipe ends one process holds for the children it starts: each child closes all of them
    but its own, so that end-of-file on a pipe means its writer is really gone."""

    def __init__(self) -> None:
        self.ends: list = []

    def pipe(self) -> tuple[Any, Any]:
        """A one-way pipe (receiving end, sending end), both known to the family."""
        recv, send = _CONTEXT.Pipe(duplex=False)
        self.ends += [recv, send]
        return recv, send

    def close(self, *ends) -> None:
        for end in ends:
            if end in self.ends:
                self.ends.remove(end)
            end.close()


def describe(err: BaseException) -> tuple:
    """An exception as what crosses the pipe: class name, message and location."""
    if isinstance(err, WiretrailError):
        return (type(err).__name__, err.message, err.path, err.offset, err.packet, err.line)
    return ("", str(err), None, None, None, None)


def rebuild(described: tuple, default_path: str | None = None) -> WiretrailError:
    """The parent's copy of a child's error (``describe``): the same class of ``recorder.core.errors``
    (WiretrailError for any other), with its message and location; ``default_path`` names the
    database of a StoreError the child raised without one."""
    name, message, path, offset, packet, line = described
    cls = getattr(errors_module, name, None) if name else None
    if not (isinstance(cls, type) and issubclass(cls, WiretrailError)):
        cls = WiretrailError
    if path is None and cls is errors_module.StoreError:
        path = default_path
    return cls(message, path=path, offset=offset, packet=packet, line=line)


class Inbox:
    """The child's input: bytes from a pipe, or objects from a queue. Iterating ends at the
    parent's end of input, or when the parent died."""

    def __init__(self, source, is_queue: bool, parent: int) -> None:
        self.source = source
        self.is_queue = is_queue
        self.parent = parent
        self.ended = False  # the end was seen: every later ``get`` ends at once

    def get(self):
        """The next item; ``EOFError`` at the end of input (or when the parent is gone)."""
        if self.ended:
            raise EOFError
        if not self.is_queue:
            try:
                return self.source.recv_bytes()
            except (EOFError, OSError):
                self.ended = True
                raise EOFError from None
        while True:
            try:
                item = self.source.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != self.parent:  # orphaned: nobody will send the end marker
                    self.ended = True
                    raise EOFError from None
                continue
            if item is _END:
                self.ended = True
                raise EOFError
            return item

    recv_bytes = get  # what ``ingest``'s span reader reads a batch's bytes with

    def poll(self) -> bool:
        """Whether an item is waiting."""
        return not self.source.empty() if self.is_queue else self.source.poll()

    def __iter__(self) -> Iterator:
        while True:
            try:
                yield self.get()
            except EOFError:
                return


class Outbox:
    """The child's replies, each with the warnings noted (``warnings.append``) since the last one."""

    def __init__(self, conn, failure: Callable[[BaseException], WiretrailError]) -> None:
        self.conn = conn
        self.failure = failure
        self.warnings: list[str] = []

    def send(self, kind: str, value: Any = None) -> None:
        self.conn.send((kind, self.warnings[:], value))
        self.warnings.clear()

    def error(self, err: BaseException) -> None:
        """Report ``err`` to the parent now (a child that goes on draining its input after a
        failure says so first); a parent that is gone is not an error here."""
        try:
            self.send("error", describe(err if isinstance(err, WiretrailError) else self.failure(err)))
        except OSError:
            pass


def _child(main: Callable, inbox_end, is_queue: bool, reply_end, close: list, parent: int,
           failure: Callable[[BaseException], WiretrailError], args: tuple) -> None:
    """What runs in the child: the parent's ends closed, its signal handlers reset, ``main`` run
    and its failure reported."""
    for end in close:  # EOF on our pipes must mean the parent is done (or gone)
        try:
            end.close()
        except OSError:
            pass
    # The parent decides when a child stops (it closes the input): the signal handlers it may have
    # installed must not run here, and SIGINT from a terminal, sent to the whole process group,
    # must not cut a flush short.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held back by the parent while it forked (_sigint_held)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    outbox = Outbox(reply_end, failure)
    try:
        main(Inbox(inbox_end, is_queue, parent), outbox, *args)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, one line
        outbox.error(err)


@contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT held back while a child is forked, then let through: Python runs its at-fork hooks
    (logging's lock) as callbacks whose exceptions it only prints, so a KeyboardInterrupt raised in
    one was lost and the parent went on as if Ctrl-C had not been pressed (seen by the log ingest's
    interrupt test). A Ctrl-C pressed meanwhile is raised as soon as the fork is done."""
    held = hasattr(signal, "pthread_sigmask")
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Child:
    """A child process (fork) fed by the parent and answering it (see the module's docstring).

    ``queue``: feed objects through a queue of that many items (the parent runs ahead of the
    child by as many) instead of bytes through a pipe. ``wide``: widen the input pipe
    (``PIPE_BYTES``). ``hand_over``: pipe ends of ``family`` the child takes with it (the parent
    closes them once it is started). ``failure``: the WiretrailError an exception of another
    kind is reported as. ``ended``: the error when the child is gone without a word.
    ``store_path``: names the database in a StoreError reported without it. ``on_warning``
    receives the warnings the child sends with its replies.
    """

    def __init__(self, main: Callable, args: tuple = (), *, name: str, family: Family | None = None,
                 daemon: bool = True, queue: int = 0, wide: bool = False, hand_over: Sequence = (),
                 failure: Callable[[BaseException], WiretrailError] = lambda err: WiretrailError(repr(err)),
                 ended: WiretrailError | None = None, store_path: str | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.ended = ended or WiretrailError(f"the {name} process ended unexpectedly")
        self.family = family if family is not None else Family()
        self.store_path = store_path
        self.on_warning = on_warning
        self.error: WiretrailError | None = None  # the child's failure, once read
        self._queue = _CONTEXT.Queue(maxsize=queue) if queue else None
        if self._queue is None:
            inbox_end, self._send = self.family.pipe()
            if wide:
                widen(self._send)
        else:
            inbox_end = self._queue
        self._replies, reply_end = self.family.pipe()
        self.closed = False
        own = {id(inbox_end), id(reply_end), *(id(e) for e in hand_over)}
        close = [e for e in self.family.ends if id(e) not in own]
        self.process = _CONTEXT.Process(
            target=_child, name=name, daemon=daemon,
            args=(main, inbox_end, self._queue is not None, reply_end, close, os.getpid(), failure, args))
        try:
            with _sigint_held():
                self.process.start()
        except BaseException:  # Ctrl-C let through after the fork: no child left behind unowned
            if self.process.pid is not None:
                self.process.terminate()
                self.process.join()
            raise
        self.family.close(reply_end, *hand_over, *([] if self._queue is not None else [inbox_end]))

    # -- feeding

    def send(self, data) -> None:
        """Hand ``data`` to the child (bytes for a pipe; any object for a queue). A child that is
        gone raises its error (or says that it ended)."""
        try:
            if self._queue is not None:
                self._queue.put(data)
            else:
                self._send.send_bytes(data)
        except OSError:
            self._gone()

    def send_object(self, item: Any) -> None:
        """``item`` pickled, through the pipe."""
        self.send(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))

    # -- replies

    def check(self) -> None:
        """Raise the error the child reported, if it has (without waiting)."""
        while self.error is None and self.poll_reply():
            self._read()
        self.raise_error()

    def reply(self) -> Any:
        """The child's next answer (waits); raises its error, or ``ended`` if it is gone."""
        value = self._read()
        self.raise_error()
        return value

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def poll_reply(self) -> bool:
        """Whether a reply is waiting."""
        return not self._replies.closed and self._replies.poll()

    def _read(self) -> tuple[str, Any]:
        """The next reply's value; a failure (or the child's end) is kept in ``error``."""
        kind, value = self._next()
        return value if kind not in ("error", "ended") else None

    def _next(self) -> tuple[str, Any]:
        try:
            kind, warnings, value = self._replies.recv()
        except (EOFError, OSError):
            if self.error is None:
                self.error = self.ended
            return "ended", None
        for w in warnings:
            if self.on_warning:
                self.on_warning(w)
        if kind == "error" and self.error is None:
            self.error = rebuild(value, self.store_path)
        return kind, value

    def _gone(self) -> None:
        self._read()  # the child is gone: its error, if it sent one
        if self.error is None:
            self.error = self.ended
        raise self.error

    def pending_error(self) -> WiretrailError | None:
        """After ``join``: the error the child reported and nobody read yet, if it failed."""
        try:
            if self.error is None and self.poll_reply():
                kind, _warnings, value = self._replies.recv()
                if kind == "error":
                    self.error = rebuild(value, self.store_path)
        except (EOFError, OSError):
            pass
        return self.error

    # -- ending

    def end_input(self) -> None:
        """No more input: the child sees the end of its inbox."""
        if not self.closed:
            self.closed = True
            if self._queue is not None:
                self._queue.put(_END)
            else:
                try:
                    self.family.close(self._send)
                except OSError:
                    pass

    def finish(self, last: str = "done") -> Any:
        """End the input, read the replies up to ``last`` and return its value (None when the child
        failed or ended first: ``error`` says why), then wait for the child to end."""
        self.end_input()
        value = None
        while True:
            kind, got = self._next()
            if kind == last:
                value = got
                break
            if kind == "ended":
                break
        self.join()
        return value

    def join(self) -> None:
        """End the input and wait for the child to end."""
        self.end_input()
        if self._queue is not None:
            self._queue.close()
            self._queue.join_thread()
        self.process.join()

    def is_alive(self) -> bool:
        return self.process.is_alive()
