"""Alert thresholds, Suricata's semantics: a rule's ``threshold`` (limit / threshold / both) and
``detection_filter``, and a threshold.config's ``suppress`` and ``rate_filter``
(``analysis.rules.thresholdconfig``), per tracked address, address pair, flow or rule."""

from __future__ import annotations

from analysis.rules.model import Rule

NS = 1_000_000_000


class Thresholds:
    """threshold (limit / threshold / both), detection_filter and a threshold.config's suppress and
    rate_filter (``analysis.rules.thresholdconfig``), Suricata's semantics."""

    def __init__(self) -> None:
        self.state: dict[tuple, list[int]] = {}  # key -> [window start ns, matches in the window, rate until ns]

    @staticmethod
    def _track_key(t, src: int, dst: int, sid: int, gid: int, flow: str | None) -> tuple:
        track = t.track
        who = (src,) if track == "by_src" else (dst,) if track == "by_dst" else \
            (min(src, dst), max(src, dst)) if track == "by_both" else (flow,) if track == "by_flow" else ()
        return (gid, sid, track, *who)

    @staticmethod
    def limited(rule: Rule) -> bool:
        """Whether ``allow`` may say no to this rule's alerts."""
        return (rule.threshold is not None or rule.detection_filter is not None or rule.rate_filter is not None
                or bool(rule.suppress))

    def allow(self, rule: Rule, ts: int, src: int, dst: int, flow: str | None) -> bool:
        """Whether a match of ``rule`` (at ``ts`` from ``src`` to ``dst`` on the flow of uid ``flow``)
        alerts; called for every match, in time order."""
        for s in rule.suppress:
            if (s.track != "by_dst" and s.ip.contains_int(src)) or (s.track != "by_src" and s.ip.contains_int(dst)):
                return False
        ok = True
        if rule.detection_filter is not None:
            t = rule.detection_filter
            st = self._tick(("df", *self._track_key(t, src, dst, rule.sid, rule.gid, flow)), t.seconds, ts)
            ok = st[1] > t.count
        t = rule.threshold
        if t is not None and ok:
            st = self._tick(("th", *self._track_key(t, src, dst, rule.sid, rule.gid, flow)), t.seconds, ts)
            if t.type == "limit":
                ok = st[1] <= t.count
            elif t.type == "threshold":
                ok = st[1] % t.count == 0
            else:  # both: once per window, when the count is reached
                ok = st[1] == t.count
        rf = rule.rate_filter
        if rf is not None and ok:
            key = ("rf", *self._track_key(rf, src, dst, rule.sid, rule.gid, flow))
            st = self.state.get(key)
            if st is not None and ts < st[2]:  # the new action holds until its timeout
                st[1] += 1
            else:
                st = self._tick(key, rf.seconds, ts)
                if st[1] > rf.count:
                    st[2] = ts + rf.timeout * NS
            if ts < st[2] and rf.new_action == "pass":
                ok = False  # a passive sensor: drop and reject still alert, as in Suricata's IDS mode
        return ok

    def _tick(self, key: tuple, seconds: int, ts: int) -> list[int]:
        st = self.state.get(key)
        if st is None or ts - st[0] >= seconds * NS:
            st = self.state[key] = [ts, 0, -1]
        st[1] += 1
        return st
