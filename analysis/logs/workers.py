"""The rules of one detection run as units of work, run on one connection or on two threads.

A unit is up to ``SHARED_SCAN`` detection rules of one ``wt_kind`` (``scope``) evaluated in one
scan of that kind's rows, the correlations with ``needs`` grouped by the same fields (the rows
they count read once), or one other rule (a rule of several queries, another correlation). Serially
they run on the connection that holds the ``logs`` table in memory. With two threads the table is
laid out in a scratch database file instead (``scratch``: in /dev/shm where there is one, with no
journal and no syncs), and each thread runs units from one queue, most costly first, on its own
connection to that file: its own pager and page cache, so both run SQLite at once (Python's
``sqlite3`` lets go of the GIL while a statement steps), with their own temporary tables (the
``Regexps`` lookups, a correlation's narrowed ``logs``). The results are put back in the rules'
order, so the matches are the serial run's, in the same order."""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from analysis.logs.sigma import CompiledRule, RuleSet

SHARED_SCAN = 32  # rules of one kind evaluated in one scan of that kind's rows
SHARED_WHERE = "SELECT * FROM logs WHERE "  # a rule whose one query starts so can share a scan
# The errors a rule's SQL or plan raises at run time: the rule is reported as failed, the run goes on.
RULE_ERRORS = (sqlite3.Error, ValueError, RuntimeError)


@dataclass(frozen=True, slots=True)
class Unit:
    """Rules run together: a shared scan (``scope`` set), correlations grouped by the same fields
    (their rows read once: ``needs.NeedRows``) or one rule."""

    rules: tuple[CompiledRule, ...]
    scope: str | None = None

    @property
    def cost(self) -> int:
        """A rough rank of the work (correlations sort and group, a shared scan reads a kind's
        rows once for many rules, a single rule reads its source's rows): the queue runs the
        costly units first, so the last ones to finish are short."""
        rule = self.rules[0]
        if rule.correlation:
            return 100 + 10 * sum(len(r.needs) for r in self.rules)
        return 10 + len(self.rules) if self.scope else 1


def units(rules: RuleSet) -> list[Unit]:
    """The rules as units, most costly first (ties in the rules' order)."""
    shared = "wt_kind" in {f.lower() for f in rules.fields}
    by_scope: dict[str, list[CompiledRule]] = {}
    by_groups: dict[tuple[str, ...], list[CompiledRule]] = {}
    singles: list[Unit] = []
    for rule in rules.rules:
        if (shared and rule.scope and len(rule.queries) == 1
                and (rule.queries[0].sql or "").startswith(SHARED_WHERE)):
            by_scope.setdefault(rule.scope, []).append(rule)
        elif rule.correlation and rule.needs and rule.prefilter:
            by_groups.setdefault(rule.groups, []).append(rule)
        else:
            singles.append(Unit((rule,)))
    out = [Unit(tuple(found[i:i + SHARED_SCAN]), scope)
           for scope, found in by_scope.items() for i in range(0, len(found), SHARED_SCAN)]
    out += [Unit(tuple(found)) for found in by_groups.values()]
    return sorted(out + singles, key=lambda u: -u.cost)


# id(rule) -> (its matches, why it failed or None)
Results = dict[int, tuple[list, str | None]]


def in_order(rules: RuleSet, results: Results) -> tuple[list, list[tuple[str, str]]]:
    """(matches, failed) in the rules' order, as one pass over the rules would give them."""
    matches: list = []
    failed: list[tuple[str, str]] = []
    for rule in rules.rules:
        found, error = results[id(rule)]
        matches.extend(found)
        if error is not None:
            failed.append((rule.path, error))
    return matches, failed


# A connection's evaluator: given the connection, the function that runs a unit there.
Evaluator = Callable[[sqlite3.Connection], Callable[[Unit], Results]]


def run_serial(conn: sqlite3.Connection, rules: RuleSet, evaluator: Evaluator) -> Results:
    results: Results = {}
    run = evaluator(conn)
    for unit in units(rules):
        results.update(run(unit))
    return results


def thread_count(threads: int | None) -> int:
    """``threads`` if given, else two where there are two CPUs or more (one: the serial path)."""
    return max(1, threads if threads is not None else min(2, os.cpu_count() or 1))


def run_threads(first: sqlite3.Connection, connect: Callable[[], sqlite3.Connection], threads: int,
                rules: RuleSet, evaluator: Evaluator) -> Results:
    """The units on ``threads`` connections: ``first`` (this thread's) and new ones from
    ``connect`` (one per other thread), each taking the next unit from one queue. An error other
    than a rule's (``RULE_ERRORS``), or an interrupt, stops every thread before it is raised."""
    todo: queue.SimpleQueue[Unit] = queue.SimpleQueue()
    for unit in units(rules):
        todo.put(unit)
    results: Results = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    conns: list[sqlite3.Connection] = [first]

    def work(conn: sqlite3.Connection) -> None:
        run = evaluator(conn)
        while not stop.is_set():
            try:
                unit = todo.get_nowait()
            except queue.Empty:
                return
            found = run(unit)
            with lock:
                results.update(found)

    def other() -> None:
        try:
            conn = connect()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)
            return
        with lock:
            conns.append(conn)
        try:
            work(conn)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)
            stop.set()
        finally:
            conn.close()

    pool = [threading.Thread(target=other, name=f"wiretrail-detect-{i}", daemon=True) for i in range(1, threads)]
    for t in pool:
        t.start()
    try:
        work(first)
    except BaseException:
        stop.set()
        with lock:
            for conn in conns[1:]:
                conn.interrupt()  # a statement running there ends now
        raise
    finally:
        for t in pool:
            t.join()
    if errors:
        raise errors[0]
    return results


@contextmanager
def scratch() -> Iterator[str]:
    """A scratch database file's path, in /dev/shm when there is one to write to (memory, not
    disk), else in the temporary folder; its folder is removed on the way out, whatever happens."""
    folder = tempfile.mkdtemp(prefix="wiretrail-detect-", dir=scratch_base())
    try:
        yield os.path.join(folder, "logs.db")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_base() -> str:
    """Where ``scratch`` makes its folders: /dev/shm where it can write there, else the temporary folder."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()
