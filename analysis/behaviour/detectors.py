"""One detector per behaviour rule kind: SQL aggregates over the store, numpy for the statistics.

A detector is ``fn(conn, rule, prior) -> list[Alert]``: ``conn`` a SQLAlchemy connection to the
store, ``prior`` the alerts of the rules evaluated before it (lateral movement reads them). The
alert's endpoints are the offending host (src) and its target (dest); its uid and community_id are
those of the first flow that is part of the finding, so an investigator can pivot to it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np
import sqlalchemy as sa

from analysis.alerts import Alert
from analysis.behaviour.chain import CHAIN_DETECTORS
from analysis.behaviour.model import BehaviourRule
from analysis.behaviour.queries import NS, first_flow, make_alert, sql_in, sql_rows
from analysis.behaviour.windows import rpc_operation

# Flows where both sides sent data: an established session, not a probe.
_SESSION = "COALESCE(orig_bytes, 0) > 0 AND COALESCE(resp_bytes, 0) > 0"


def _failed_sql(rule: BehaviourRule, params: dict) -> str:
    return f"SUM(CASE WHEN {sql_in('conn_state', rule.param('failed_states'), params)} THEN 1 ELSE 0 END)"


# --- reconnaissance -----------------------------------------------------------------------------

def port_scan(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """One source, many distinct destination ports on one host, mostly failed connections."""
    p: dict = {"min": rule.param("min_ports")}
    groups = sql_rows(conn, f"""
        SELECT orig_h, resp_h, proto, COUNT(DISTINCT resp_p) AS ports, COUNT(*) AS n, {_failed_sql(rule, p)} AS failed
        FROM flows WHERE proto IN ('tcp', 'udp') GROUP BY orig_h, resp_h, proto
        HAVING COUNT(DISTINCT resp_p) >= :min""", **p)
    out = []
    for g in groups:
        ratio = g["failed"] / g["n"]
        if ratio < rule.param("min_failed_ratio"):
            continue
        flow = first_flow(conn, "orig_h = :o AND resp_h = :r AND proto = :p", o=g["orig_h"], r=g["resp_h"],
                           p=g["proto"])
        out.append(make_alert(rule, flow, f"{g['orig_h']} probed {g['ports']} {g['proto']} ports on {g['resp_h']} "
                                      f"({g['n']} connections, {ratio:.0%} failed)"))
    return out


def host_sweep(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """One source, many distinct destination hosts on one port, mostly unanswered."""
    p: dict = {"min": rule.param("min_hosts")}
    groups = sql_rows(conn, f"""
        SELECT orig_h, resp_p, proto, COUNT(DISTINCT resp_h) AS hosts, COUNT(*) AS n, {_failed_sql(rule, p)} AS failed
        FROM flows GROUP BY orig_h, resp_p, proto HAVING COUNT(DISTINCT resp_h) >= :min""", **p)
    out = []
    for g in groups:
        ratio = g["failed"] / g["n"]
        if ratio < rule.param("min_failed_ratio"):
            continue
        flow = first_flow(conn, "orig_h = :o AND resp_p = :rp AND proto = :p", o=g["orig_h"], rp=g["resp_p"],
                           p=g["proto"])
        assert flow is not None
        out.append(make_alert(rule, flow, f"{g['orig_h']} swept {g['hosts']} hosts on {g['proto']}/{g['resp_p']} "
                                      f"({ratio:.0%} unanswered or refused)", dest=flow["resp_h"]))
    return out


# --- credential access ----------------------------------------------------------------------------

def _densest(conn, table: str, where: str, window_ns: int, **params) -> int:
    """The most rows of ``table`` matching ``where`` within any ``window_ns`` of one another (a
    sliding window over ``ts_ns``)."""
    ts = np.array([r["ts_ns"] for r in sql_rows(conn, f"SELECT ts_ns FROM {table} WHERE {where} ORDER BY ts_ns",
                                                **params)], dtype=np.int64)
    if not len(ts):
        return 0
    return int((np.searchsorted(ts, ts + window_ns, side="right") - np.arange(len(ts))).max())


def brute_force(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Many failed logins (credentials.success false, HTTP 401) or many short connections from one
    source to one service (SSH, FTP, telnet, RDP, SMB by default), at least the minimum of them
    within ``window_seconds`` of one another: a person mistyping a password now and then over a
    month is no brute force. The text gives the whole count."""
    window = int(rule.param("window_seconds") * NS)
    found: dict[tuple, tuple[int, str, str | None, str]] = {}  # (src, dst, port) -> (n, where, app, text)
    least = rule.param("min_failed_logins")
    for g in sql_rows(conn, """
            SELECT orig_h, resp_h, resp_p, protocol, COUNT(*) AS n FROM credentials
            WHERE success = :no GROUP BY orig_h, resp_h, resp_p, protocol HAVING COUNT(*) >= :min""",
                   no=False, min=least):
        if _densest(conn, "credentials", "success = :no AND orig_h = :o AND resp_h = :r AND resp_p = :rp AND "
                    "COALESCE(protocol, '') = :pr", window, no=False, o=g["orig_h"], r=g["resp_h"], rp=g["resp_p"],
                    pr=g["protocol"] or "") < least:
            continue
        found[(g["orig_h"], g["resp_h"], g["resp_p"])] = (
            g["n"], "credentials", (g["protocol"] or "").lower() or None, f"{g['n']} failed {g['protocol']} logins")
    least = rule.param("min_http_401")
    for g in sql_rows(conn, """
            SELECT orig_h, resp_h, resp_p, COUNT(*) AS n FROM http WHERE status_code = 401
            GROUP BY orig_h, resp_h, resp_p HAVING COUNT(*) >= :min""", min=least):
        if _densest(conn, "http", "status_code = 401 AND orig_h = :o AND resp_h = :r AND resp_p = :rp", window,
                    o=g["orig_h"], r=g["resp_h"], rp=g["resp_p"]) < least:
            continue
        found.setdefault((g["orig_h"], g["resp_h"], g["resp_p"]),
                         (g["n"], "http", "http", f"{g['n']} HTTP 401 responses"))
    names = {port: name for name, port in rule.param("ports").items()}
    p: dict = {"min": rule.param("min_connections"), "dur": int(rule.param("max_mean_duration_seconds") * NS)}
    for g in sql_rows(conn, f"""
            SELECT orig_h, resp_h, resp_p, COUNT(*) AS n, AVG(COALESCE(duration_ns, 0)) AS dur FROM flows
            WHERE proto = 'tcp' AND {sql_in('resp_p', names, p)} GROUP BY orig_h, resp_h, resp_p
            HAVING COUNT(*) >= :min AND AVG(COALESCE(duration_ns, 0)) <= :dur""", **p):
        if _densest(conn, "flows", "proto = 'tcp' AND orig_h = :o AND resp_h = :r AND resp_p = :rp", window,
                    o=g["orig_h"], r=g["resp_h"], rp=g["resp_p"]) < p["min"]:
            continue
        found.setdefault((g["orig_h"], g["resp_h"], g["resp_p"]),
                         (g["n"], "flows", names[g["resp_p"]],
                          f"{g['n']} connections to {names[g['resp_p']]} (mean {g['dur'] / NS:.1f} s)"))
    out = []
    for (src, dst, port), (_n, _where, app, text) in sorted(found.items()):
        flow = first_flow(conn, "orig_h = :o AND resp_h = :r AND resp_p = :rp", o=src, r=dst, rp=port)
        if flow is None:  # live: the logins are stored, their connections not yet (the next round has them)
            continue
        out.append(make_alert(rule, flow, f"{src} -> {dst}:{port}: {text}", app_proto=app))
    return out


def cleartext_credentials(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Passwords seen in clear text: one alert per account, client, server and protocol, with the
    number of logins and their outcome, except those of ``ignore_users`` (anonymous FTP, say).
    A user name with no password (NTLM, Kerberos: a challenge or a ticket) is no clear-text
    password and is left to ``wiretrail accounts`` ("account seen"). Only wrong guesses, at least
    ``min_failed_as_guesses`` of them, are the brute-force rule's: no alert here."""
    p: dict = {}
    only = rule.param("protocols")
    where = "secret IS NOT NULL AND " + (sql_in("protocol", only, p) if only else "1 = 1")
    ignore = rule.param("ignore_users")
    if ignore:
        where += ' AND ("user" IS NULL OR NOT ' + sql_in('"user"', ignore, p, "login") + ")"
    rows = sql_rows(conn, f"""SELECT orig_h, resp_h, protocol, "user" AS login, MIN(ts_ns) AS ts_ns, COUNT(*) AS n,
                           SUM(CASE WHEN success = :yes THEN 1 ELSE 0 END) AS ok,
                           SUM(CASE WHEN success = :no THEN 1 ELSE 0 END) AS bad FROM credentials WHERE {where}
                           GROUP BY orig_h, resp_h, protocol, "user" ORDER BY MIN(ts_ns)""", yes=True, no=False, **p)
    out = []
    for r in rows:
        if not r["ok"] and r["bad"] >= rule.param("min_failed_as_guesses") and r["bad"] == r["n"]:
            continue
        first = sql_rows(conn, """SELECT uid FROM credentials WHERE orig_h = :o AND resp_h = :r AND ts_ns = :t
                               AND secret IS NOT NULL LIMIT 1""", o=r["orig_h"], r=r["resp_h"], t=r["ts_ns"])
        flow = first_flow(conn, "uid = :u", u=first[0]["uid"]) if first and first[0]["uid"] else None
        if not flow:
            continue
        user = r["login"] if r["login"] is not None else "(no user)"
        if r["n"] == 1:
            outcome = " (accepted)" if r["ok"] else ""
        else:
            parts = [f"{r['ok']} accepted" if r["ok"] else "none accepted"] + ([f"{r['bad']} refused"] if r["bad"] else [])
            outcome = f" {r['n']} times ({', '.join(parts)})"
        out.append(make_alert(rule, flow, f"{r['protocol']} login for {user!r} sent in clear text{outcome}", ts_ns=r["ts_ns"],
                          app_proto=(r["protocol"] or "").lower() or None))
    return out


# --- connections ---------------------------------------------------------------------------------

def long_connection(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Connections lasting longer than ``min_duration_seconds``."""
    p: dict = {"dur": int(rule.param("min_duration_seconds") * NS)}
    exclude = rule.param("exclude_ports")
    where = f"NOT {sql_in('resp_p', exclude, p)}" if exclude else "1 = 1"
    return [make_alert(rule, f, f"{f['orig_h']} -> {f['resp_h']}:{f['resp_p']} open for {f['duration_ns'] / NS / 3600:.2f} h")
            for f in sql_rows(conn, f"SELECT * FROM flows WHERE duration_ns >= :dur AND {where} ORDER BY ts_ns", **p)]


def _mad_ratio(x: np.ndarray) -> float:
    """Median absolute deviation over the median (0 = perfectly regular)."""
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    if med <= 0:
        return 0.0 if mad == 0 else math.inf
    return mad / med


def beaconing(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Regular intervals and sizes between a pair (source, destination, port), scored like RITA:
    interval score and size score are ``1 - MAD/median`` (clipped to 0..1), the count score is
    ``connections / count_target`` (at most 1); the score is their mean."""
    rows = conn.execute(sa.text("""
        SELECT f.orig_h, f.resp_h, f.resp_p, f.proto, f.ts_ns, COALESCE(f.orig_bytes, 0) FROM flows f
        JOIN (SELECT orig_h, resp_h, resp_p, proto FROM flows GROUP BY orig_h, resp_h, resp_p, proto
              HAVING COUNT(*) >= :min) g
          ON f.orig_h = g.orig_h AND f.resp_h = g.resp_h AND f.resp_p = g.resp_p AND f.proto = g.proto
        ORDER BY f.orig_h, f.resp_h, f.resp_p, f.proto, f.ts_ns"""), {"min": max(3, rule.param("min_connections"))}).all()
    if not rows:
        return []
    keys = [r[:4] for r in rows]
    ts = np.fromiter((r[4] for r in rows), dtype=np.int64, count=len(rows))
    size = np.fromiter((r[5] for r in rows), dtype=np.float64, count=len(rows))
    starts = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    out = []
    for a, b in zip(starts, starts[1:]):
        n = b - a
        intervals = np.diff(ts[a:b]).astype(np.float64)
        if np.median(intervals) < rule.param("min_median_interval_seconds") * NS:
            continue  # retries and loops (a brute force) are regular too, but fast
        ts_score = max(0.0, 1.0 - _mad_ratio(intervals))
        size_score = max(0.0, 1.0 - _mad_ratio(size[a:b]))
        count_score = min(1.0, n / rule.param("count_target"))
        score = (ts_score + size_score + count_score) / 3
        if score < rule.param("min_score"):
            continue
        src, dst, port, proto = keys[a]
        flow = first_flow(conn, "orig_h = :o AND resp_h = :r AND resp_p = :rp AND proto = :p",
                           o=src, r=dst, rp=port, p=proto)
        out.append(make_alert(rule, flow, f"{src} -> {dst}:{port}/{proto} score {score:.2f} (interval {ts_score:.2f}, "
                                      f"size {size_score:.2f}, count {count_score:.2f}; {n} connections every "
                                      f"{np.median(intervals) / NS:.1f} s, median {np.median(size[a:b]):.0f} bytes)"))
    return out


def exfiltration(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Bytes sent by a local host to one external destination above ``min_bytes`` and at least
    ``min_ratio_to_median`` times the median of what it sends to its other destinations."""
    rows = sql_rows(conn, """SELECT orig_h, resp_h, SUM(COALESCE(orig_bytes, 0)) AS sent, MIN(ts_ns) AS ts_ns,
                                 MAX(CASE WHEN local_orig = :yes AND NOT local_resp = :yes THEN 1 ELSE 0 END) AS outbound
                          FROM flows GROUP BY orig_h, resp_h""", yes=True)
    by_host: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_host[r["orig_h"]].append(r)
    out = []
    for host, dests in by_host.items():
        sent = np.array([d["sent"] for d in dests], dtype=np.float64)
        for i, d in enumerate(dests):
            if not d["outbound"] or d["sent"] < rule.param("min_bytes"):
                continue
            others = np.delete(sent, i)
            baseline = float(np.median(others)) if len(others) else 0.0
            if baseline > 0 and d["sent"] < rule.param("min_ratio_to_median") * baseline:
                continue
            flow = first_flow(conn, "orig_h = :o AND resp_h = :r", o=host, r=d["resp_h"])
            why = f"{d['sent'] / baseline:.0f}x its median of {baseline:,.0f} bytes per destination" if baseline \
                else "no other destination"
            out.append(make_alert(rule, flow, f"{host} sent {d['sent']:,} bytes to {d['resp_h']} ({why})"))
    return out


# --- DNS ------------------------------------------------------------------------------------------

def _entropy(s: str) -> float:
    counts = np.array(list(Counter(s).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _split(query: str) -> tuple[str, str]:
    """A query name -> (subdomain, parent): the parent is the registered-looking domain, the last
    two labels (three when the second-level label is a short public suffix like ``co.uk``)."""
    labels = query.rstrip(".").lower().split(".")
    k = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[:-k]), ".".join(labels[-k:])


def dns_tunnelling(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Many unique subdomains under one parent domain from one client, with long or high-entropy
    labels or many TXT queries."""
    ignore = {d.lower().rstrip(".") for d in rule.param("ignore_domains")}
    groups: dict[tuple[str, str], dict] = {}
    for r in sql_rows(conn, "SELECT orig_h, resp_h, query, qtype_name, uid, ts_ns FROM dns WHERE query IS NOT NULL "
                         "ORDER BY ts_ns"):
        sub, parent = _split(r["query"])
        if not sub or parent in ignore:
            continue
        g = groups.setdefault((r["orig_h"], parent), {"subs": set(), "txt": 0, "n": 0, "first": r})
        g["subs"].add(sub)
        g["n"] += 1
        g["txt"] += r["qtype_name"] == "TXT"
    out = []
    for (client, parent), g in groups.items():
        subs = g["subs"]
        if len(subs) < rule.param("min_unique_subdomains"):
            continue
        entropy = float(np.mean([_entropy(s.replace(".", "")) for s in subs]))
        longest = float(np.mean([max(len(x) for x in s.split(".")) for s in subs]))
        reasons = []
        if entropy >= rule.param("min_mean_entropy"):
            reasons.append(f"mean entropy {entropy:.2f} bits/char")
        if longest >= rule.param("min_mean_label_length"):
            reasons.append(f"mean longest label {longest:.0f} chars")
        if g["txt"] >= rule.param("min_txt_queries"):
            reasons.append(f"{g['txt']} TXT queries")
        if not reasons:
            continue
        first = g["first"]
        flow = first_flow(conn, "uid = :u", u=first["uid"]) or {**first, "proto": "udp", "orig_p": None,
                                                                    "resp_p": None}
        out.append(make_alert(rule, flow, f"{client}: {len(subs)} unique subdomains of {parent} in {g['n']} queries "
                                      f"({', '.join(reasons)})", ts_ns=first["ts_ns"], app_proto="dns"))
    return out


# --- lateral movement ------------------------------------------------------------------------------

def lateral_movement(conn, rule: BehaviourRule, prior: list[Alert]) -> list[Alert]:
    """Sessions internal -> internal over SMB, RDP, SSH, WinRM or DCE-RPC from a host that an
    earlier alert (of a kind in ``after_kinds``) names as its source, after that alert. The
    destinations and ports that alerts already name for the host (the brute-forced service
    itself) are left out: those connections are that alert's."""
    first_alert: dict[str, Alert] = {}
    explained: set[tuple[str, str, int | None]] = set()
    kinds = set(rule.param("after_kinds"))
    for a in sorted(prior, key=lambda a: a.ts_ns):
        if a.rule_kind in kinds:
            first_alert.setdefault(a.src_ip, a)
            explained.add((a.src_ip, a.dest_ip, a.dest_port))
    if not first_alert:
        return []
    names = {port: name for name, port in rule.param("ports").items()}
    out = []
    for host, cause in first_alert.items():
        p: dict = {"h": host, "t": cause.ts_ns, "yes": True}
        flows = sql_rows(conn, f"""SELECT * FROM flows WHERE orig_h = :h AND ts_ns >= :t AND local_orig = :yes
                                AND local_resp = :yes AND proto = 'tcp' AND {sql_in('resp_p', names, p)} AND {_SESSION}
                                ORDER BY ts_ns""", **p)
        seen = set()
        for f in flows:
            if (f["resp_h"], f["resp_p"]) in seen or (host, f["resp_h"], f["resp_p"]) in explained:
                continue
            seen.add((f["resp_h"], f["resp_p"]))
            out.append(make_alert(rule, f, f"{host} -> {f['resp_h']} over {names[f['resp_p']]} after alert "
                                       f"{cause.signature_id} ({cause.signature.split(':')[0]})",
                              app_proto=f.get("service") or names[f["resp_p"]]))
    return out


Detector = Callable[..., list[Alert]]

DETECTORS: dict[str, Detector] = {
    "port_scan": port_scan,
    "host_sweep": host_sweep,
    "brute_force": brute_force,
    "long_connection": long_connection,
    "dns_tunnelling": dns_tunnelling,
    "beaconing": beaconing,
    "exfiltration": exfiltration,
    "cleartext_credentials": cleartext_credentials,
    "lateral_movement": lateral_movement,
    **CHAIN_DETECTORS,
    "rpc_operation": rpc_operation,
}

# Kinds that read other rules' alerts run last.
_LAST = frozenset({"lateral_movement", "callback", "bind_shell", "executable_download"})


# The tables the detectors read: a windowed evaluation shadows each with a temporary view.
WINDOWED_TABLES = ("flows", "credentials", "dce_rpc", "dns", "files", "http", "ntlm", "smb_mapping")


def evaluate(store, rules: list[BehaviourRule], *, since_ns: int | None = None,
             on_error: Callable[[BehaviourRule, Exception], None] | None = None) -> list[Alert]:
    """Every rule over the store; alerts in time order (then by sid).

    ``since_ns``: only the records at or after this time (the live sensor's sliding window): each
    table the detectors read is shadowed, on this connection only, by a temporary view of its
    recent rows (SQLite and PostgreSQL both look in the temporary schema first).
    ``on_error``: a rule that raises is reported there and skipped, the others still run
    (without it the error propagates).
    """
    alerts: list[Alert] = []
    ordered = sorted(rules, key=lambda r: (r.kind in _LAST, r.id))
    with store.db_errors("evaluate behaviour rules"), store.engine.connect() as conn:
        views = _window_views(conn, int(since_ns)) if since_ns is not None else []
        try:
            for rule in ordered:
                if on_error is None:
                    alerts += DETECTORS[rule.kind](conn, rule, list(alerts))
                    continue
                try:
                    with conn.begin_nested():
                        alerts += DETECTORS[rule.kind](conn, rule, list(alerts))
                except Exception as err:  # noqa: BLE001 - one failing rule stops only itself
                    on_error(rule, err)
        finally:
            for name in views:
                conn.execute(sa.text(f"DROP VIEW IF EXISTS {_temp(conn)}{name}"))
            conn.commit()
    return sorted(alerts, key=lambda a: (a.ts_ns, a.signature_id, a.src_ip, a.dest_ip))


def _temp(conn) -> str:
    return "temp." if conn.dialect.name == "sqlite" else "pg_temp."


def _window_views(conn, since_ns: int) -> list[str]:
    if conn.dialect.name == "sqlite":
        schema = "main"
    else:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    present = set(sa.inspect(conn).get_table_names(schema=None if conn.dialect.name == "sqlite" else schema))
    made = []
    for name in WINDOWED_TABLES:
        if name in present:
            recent = f"SELECT * FROM {schema}.{name} WHERE ts_ns >= {since_ns:d}"
            if name == "flows" and "open_flows" in present:
                recent += _closed_flows(schema, since_ns)
            conn.execute(sa.text(f"CREATE TEMP VIEW {name} AS {recent}"))
            made.append(name)
    return made


def _closed_flows(schema: str, since_ns: int) -> str:
    """The live recorder's closed TCP connections that wait out the close delay before their flow
    row is stored (``recorder.live_flows``), as flows (negative ids), until that row is stored."""
    from recorder.core.schema import flows
    from recorder.core.store.listing import CLOSED_STREAM_SUFFIX

    cols = ", ".join("-o.id AS id" if c.name == "id" else f"o.{c.name}" for c in flows.columns)
    return (f" UNION ALL SELECT {cols} FROM {schema}.open_flows o WHERE o.ts_ns >= {since_ns:d}"
            f" AND o.stream LIKE '%{CLOSED_STREAM_SUFFIX}'"
            f" AND NOT EXISTS (SELECT 1 FROM {schema}.flows f WHERE f.uid = o.uid)")
