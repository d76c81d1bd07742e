"""The signature engine: Suricata-syntax rules matched over captures, alerts as Suricata attributes them
(each rule precomputed by ``analysis.rules.compiled``, header-only rules found by
``analysis.rules.header``'s index, its conditions besides the payload in ``analysis.rules.conditions``,
alerts built by ``analysis.rules.eve`` and limited by ``analysis.rules.thresholds``).

One pass over the captures, in packet order:

- every decoded IP packet is a *packet* inspection: the rules whose buffers are all ``payload`` (or
  that have no payload match at all) are tried on it, after the multi-pattern prefilter
  (``analysis.rules.prefilter``) has picked the candidates from the packet's payload. TCP
  retransmissions of bytes already inspected are not inspected again.
- in an established TCP session, a rule whose payload matches float freely (contents and pcres
  not tied to the start or end of the buffer, no ``dsize``, not ``tcp-pkt`` or ``no_stream``)
  also matches across segment boundaries: on the direction's last ``STREAM_TAIL`` bytes plus
  the segment, when the match needs the segment's bytes (one wholly before it was reported
  then). This is the part of Suricata's stream inspection that splitting a payload over
  segments would otherwise evade; ``tcp-stream`` / ``only_stream`` rules match only this way.
- the protocol parsers of ``recorder.core.apps`` run over the same batches, reassembling TCP and
  decoding HTTP, DNS and TLS; each message they finish is an *application* inspection with
  Suricata's sticky buffers (``http.uri``, ``file.data``, ``dns.query``, ``tls.sni``...). The
  rules that inspect such buffers are tried on it, once per transaction at most, as Suricata
  alerts once per rule and transaction.

Flow state follows Suricata's: the client is the side that sent the SYN (else the first packet),
``established`` after the three-way handshake (TCP) or packets both ways (UDP), and, as with
Suricata's default ``stream.midstream: false``, a TCP session picked up without its handshake
gets no application-layer inspection. Flowbits live per flow; ``threshold``,
``detection_filter`` and a threshold.config's ``suppress`` and ``rate_filter`` per tracked
address, address pair, flow or rule. Within one inspection ``pass`` rules are tried
first (a match silences the packet), then flowbit setters, then the rest, as Suricata orders them.
An alert's endpoints are those of the packet (or message) that completed the match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from analysis.alerts import Alert
from analysis.rules.compiled import CompiledRule, compile_rule, evaluation_order
from analysis.rules.conditions import bits_apply, bits_ok, flow_ok, packet_ok, state_ok
from analysis.rules.eve import alert_uid, make_alert
from analysis.rules.flowstate import FlowState, Inspection
from analysis.rules.header import F_ACK, F_FIN, F_RST, F_SYN, HeaderIndex, static_ok
from analysis.rules.match import match_payload
from analysis.rules.model import PAYLOAD, Action, Rule
from analysis.rules.prefilter import Prefilter, fast_pattern
from analysis.rules.statekeys import XbitStore, flowints_apply, hello_version
from analysis.rules.thresholds import Thresholds
from recorder.core.flow.flowid import addr_int

NS = 1_000_000_000
_TIMEOUT = {6: 3600 * NS, 17: 300 * NS}  # idle time after which a key starts a new flow
_DEFAULT_TIMEOUT = 300 * NS
_CLOSED_KEEP = 30 * NS  # a closed TCP flow's late packets (retransmitted FINs) still find it this long
_SWEEP_EVERY = 10 * NS
STREAM_TAIL = 1024  # bytes of a TCP direction kept to match what a segment boundary splits
_MAX_PENDING = 64  # rules per direction awaiting the rest of a split match
_JUNCTION = 63  # bytes before a segment scanned with it for fast patterns across the boundary

# Zeek service names (what the parsers call themselves) -> Suricata app-layer protocol names
_APP_NAMES = {"ssl": "tls", "krb": "krb5", "krb_tcp": "krb5", "http": "http", "dns": "dns", "ssh": "ssh",
              "ftp": "ftp", "ftp-data": "ftp-data", "smtp": "smtp", "imap": "imap", "pop3": "pop3",
              "quic": "quic", "telnet": "telnet", "dce_rpc": "dcerpc", "smb": "smb"}


@dataclass
class EngineStats:
    packets: int = 0
    inspected: int = 0
    messages: int = 0
    alerts: int = 0


def _app_name(service: str | None) -> str | None:
    """The Suricata name of a protocol the parsers recognised (they name it as Zeek does)."""
    return _APP_NAMES.get(service, service) if service else None


def _conn_key(proto: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int) -> tuple:
    """The engine's flow key of a parser's connection (as ``Engine._flow`` builds it from a packet)."""
    a, b = addr_int(orig_h), addr_int(resp_h)
    if (a, orig_p) <= (b, resp_p):
        return (proto, a, orig_p, b, resp_p)
    return (proto, b, resp_p, a, orig_p)


class Engine:
    """Rules compiled for matching; ``run(paths)`` yields the alerts of the captures, in time order."""

    def __init__(self, rules: Sequence[Rule], *, midstream: bool = False, defer_thresholds: bool = False) -> None:
        """``defer_thresholds``: this engine sees a share of the flows (``ingest`` shards it), so
        what ``Thresholds`` decides (threshold, detection_filter, suppress, rate_filter: they
        count across flows) is left to ``merge_shards``; ``finish`` then returns ``(alerts,
        deferred)`` for it."""
        compiled = [compile_rule(i, r) for i, r in enumerate(rules)]
        self.rules = list(rules)
        self.midstream = midstream
        compiled.sort(key=lambda c: c.order)  # candidates come back in index order: evaluation order
        self.packet_rules = [c for c in compiled if not c.app_layer]
        self.app_rules = [c for c in compiled if c.app_layer]
        # Packet rules with a fast pattern go through the payload prefilter; the others (header
        # only: IP reputation lists, flags, dsize...) through an index of their addresses.
        self._fp_rules = [c for c in self.packet_rules if fast_pattern(c.rule) is not None]
        self._packet_pf = Prefilter([c.rule for c in self._fp_rules])
        # a fast pattern split by a segment boundary is found by scanning this much of the data before it
        # (fast patterns up to _JUNCTION + 1 bytes long, which is nearly all of them)
        self._junction = min(_JUNCTION, max((len(fast_pattern(c.rule)[1]) - 1 for c in self._fp_rules if c.stream),
                                            default=0))
        self._by_header = HeaderIndex([c for c in self.packet_rules if fast_pattern(c.rule) is None])
        self._app_pf = Prefilter([c.rule for c in self.app_rules])
        self.flows: dict[tuple, FlowState] = {}
        self._last_sweep = 0
        self._pending_apps: dict[tuple, str] = {}  # flow key -> protocol, recognised before its first packet
        self._pcap_cnt = 0  # packets fed so far (an alert's pcap_cnt counts from 1)
        self.thresholds = Thresholds()
        self.defer_thresholds = defer_thresholds
        self._deferred: dict[int, int] = {}  # alert position -> index of its rule, whose threshold is left to merge_shards
        self.stats = EngineStats()
        self.alerts: list[Alert] = []
        self.xbits = XbitStore()
        self._track_seq = any(r.stream_size for r in rules)
        self._track_tls = any(r.tls_version is not None for r in rules)

    # -------------------------------------------------------------------- driving
    def feed(self, raw, dec, messages: list, recognised: list) -> None:
        """One decoded batch, after the protocol parsers took it: ``messages`` are the parsers'
        messages since the last call and ``recognised`` the connections whose protocol they
        recognised (``recorder.core.apps.inspection`` describes both). The engine is an inspector
        there: ``ingest(..., inspector=engine)`` matches the rules in the ingest's own pass."""
        for proto, orig_h, orig_p, resp_h, resp_p, service in recognised:
            key = _conn_key(proto, orig_h, orig_p, resp_h, resp_p)
            f = self.flows.get(key)
            if f is None:
                self._pending_apps[key] = _app_name(service)
            elif f.app is None:
                f.app = _app_name(service)
        self._batch(raw, dec, messages, self._pcap_cnt)
        self._pcap_cnt += len(raw)

    def finish(self, messages: list):
        """The end of input (``messages``: what the parsers' finish produced): the alerts, in time
        order (with ``defer_thresholds``: in the order found, and the thresholds left to apply)."""
        self._events(messages)
        if self.defer_thresholds:
            return self.alerts, self._deferred
        self.alerts.sort(key=lambda a: a.ts_ns)
        return self.alerts

    def run(self, paths: Iterable[str], on_warning: Callable[[str], None] | None = None) -> list[Alert]:
        """The alerts of the captures at ``paths`` (read here, with parsers of the engine's own)."""
        from recorder.core.apps.dispatch import AppLayer
        from recorder.core.apps.inspection import Inspection
        from recorder.core.apps.registry import PARSERS
        from recorder.core.capio.pcapio import expand_inputs, read_batches
        from recorder.core.decode.decode import Decoder

        # the parsers run even when no rule reads their buffers: they name the flows' protocols
        # (an alert's app_proto), as in the ingest's pass
        inspection = Inspection(self)
        apps = AppLayer(inspection.output, PARSERS)
        inspection.attach(apps)
        decoder = Decoder()

        def warn(w) -> None:  # CaptureWarning -> its one line
            if on_warning is not None:
                on_warning(str(w))

        for path in expand_inputs(list(paths)):
            for raw in read_batches(path, on_warning=warn):
                dec = decoder.decode(raw)
                apps.feed(raw, dec)
                inspection.feed(raw, dec)
        apps.finish()
        return inspection.finish()

    def _batch(self, raw, dec, events: list, pcap_base: int) -> None:
        c = dec.cols
        n = len(dec)
        self.stats.packets += len(raw)
        ev = sorted(events, key=lambda e: e[0]) if events else []
        ei = 0
        if n:
            cols = [c[k].tolist() for k in ("pkt", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport",
                                             "flags", "seq", "pay_off", "pay_cap")]
            times = raw.ts[c["pkt"]].tolist()
            data = raw.data
            payloads = dec.payloads
            next_event = ev[0][0] if ev else None
            packet = self._packet
            for i, (pkt, sh, sl, dh, dl, proto, sport, dport, flags, seq, poff, pcap) in enumerate(zip(*cols)):
                ts = times[i]
                if next_event is not None and next_event < ts:
                    while ei < len(ev) and ev[ei][0] < ts:
                        self._event(ev[ei])
                        ei += 1
                    next_event = ev[ei][0] if ei < len(ev) else None
                if poff >= 0:
                    payload = data[poff:poff + pcap]
                elif poff == -2:
                    payload = payloads.get(i, b"")
                else:
                    payload = b""
                packet(ts, (sh << 64) | sl, (dh << 64) | dl, proto, sport, dport, flags, seq, payload,
                       pcap_base + pkt + 1)
        for e in ev[ei:]:
            self._event(e)
        if len(raw):
            self._sweep(int(raw.ts[-1]))

    def _sweep(self, now: int) -> None:
        """Forget flows that are over: closed and quiet for a while, or idle past their timeout."""
        if now - self._last_sweep < _SWEEP_EVERY:
            return
        self._last_sweep = now
        gone = [k for k, f in self.flows.items()
                if (f.closed and now - f.last > _CLOSED_KEEP) or now - f.last > _TIMEOUT.get(f.proto, _DEFAULT_TIMEOUT)]
        for k in gone:
            del self.flows[k]
        self.xbits.sweep(now)

    def _events(self, events: list) -> None:
        for e in sorted(events, key=lambda e: e[0]):
            self._event(e)

    # -------------------------------------------------------------------- flows
    def _flow(self, ts: int, proto: int, src: int, sport: int, dst: int, dport: int, flags: int) -> tuple[FlowState, bool]:
        key = ((proto, src, sport, dst, dport) if src < dst or (src == dst and sport <= dport)
               else (proto, dst, dport, src, sport))
        f = self.flows.get(key)
        if f is not None:
            new_syn = proto == 6 and flags & (F_SYN | F_ACK) == F_SYN and f.closed
            if ts - f.last > _TIMEOUT.get(proto, _DEFAULT_TIMEOUT) or new_syn:
                f = None
        if f is None:
            if proto == 6 and flags & (F_SYN | F_ACK) == (F_SYN | F_ACK):
                f = FlowState(key, proto, dst, dport, ts)  # a SYN-ACK first: its receiver is the client
            else:
                f = FlowState(key, proto, src, sport, ts)
            if proto == 6 and flags & (F_SYN | F_ACK) != F_SYN:
                f.midstream = True  # picked up after its SYN (a SYN-ACK first counts too, as in Suricata)
            if self._pending_apps:
                f.app = self._pending_apps.pop(key, None)
            self.flows[key] = f
        f.last = ts
        return f, (src == f.client and sport == f.client_port)

    def _tcp_state(self, f: FlowState, to_server: bool, flags: int) -> None:
        if flags & F_RST:
            f.closed = True
            return
        if flags & F_FIN:
            f.closed = True
        if f.state == 0 and flags & (F_SYN | F_ACK) == F_SYN and to_server:
            f.state = 1
        elif f.state in (0, 1) and flags & (F_SYN | F_ACK) == (F_SYN | F_ACK) and not to_server:
            f.state = 2
        elif f.state == 2 and flags & F_ACK and not flags & F_SYN and to_server:
            f.state = 3
        elif f.state < 3 and f.midstream and self.midstream and flags & F_ACK:
            f.state = 3

    # -------------------------------------------------------------------- inspections
    def _packet(self, ts: int, src: int, dst: int, proto: int, sport: int, dport: int, flags: int, seq: int,
                payload: bytes, pcap_cnt: int) -> None:
        is_port_proto = proto in (6, 17, 132)
        if proto in (6, 17, 132):
            f, to_server = self._flow(ts, proto, src, sport, dst, dport, flags if proto == 6 else 0)
        else:
            f, to_server = self._flow(ts, proto, src, 0, dst, 0, 0)
        f.seen |= 1 if to_server else 2
        stream = None
        tail = scan = b""
        if proto == 6:
            self._tcp_state(f, to_server, flags)
            if self._track_seq:
                f.track_seq(0 if to_server else 1, flags, seq, len(payload))
            if self._track_tls and payload[:1] == b"\x16":
                v = hello_version(payload)
                if v is not None:
                    f.tls_ver[0 if to_server else 1] = v
            if payload and not flags & 0x02:  # data on a SYN is inspected but is not the stream's (no TFO)
                d = 0 if to_server else 1
                end = (seq + len(payload)) & 0xFFFFFFFF
                prev = f.next_seq[d]
                if prev is not None and ((prev - end) & 0xFFFFFFFF) < 0x80000000:
                    return  # every byte of it was inspected already (a retransmission)
                f.next_seq[d] = end
                if f.state == 3 and self._junction:
                    fresh = payload
                    if prev == seq:  # it continues the data before it
                        tail = f.tail[d]
                    elif prev is not None:
                        overlap = (prev - seq) & 0xFFFFFFFF
                        if overlap < len(payload):  # it overlaps the end of the data before it (else: a gap)
                            fresh = payload[overlap:]
                            tail = f.tail[d]
                    stream = fresh  # (with tail before it: built when a rule needs it)
                    n = len(fresh)
                    f.tail[d] = fresh[-STREAM_TAIL:] if n >= STREAM_TAIL or not tail else (tail + fresh)[-STREAM_TAIL:]
                    f.spos[d] += n
                    if not tail:
                        if f.pending[d]:
                            f.pending[d].clear()
                    elif fresh is payload:
                        scan = tail[-self._junction:] + payload  # finds fast patterns across the boundary
        buffers = {PAYLOAD: payload} if payload else {}
        if payload:
            f.data_seen = True
        self.stats.inspected += 1
        itype, icode = (sport, dport) if proto in (1, 58) else (0, 0)  # the decoder's ICMP "ports"
        if not is_port_proto:
            sport = dport = 0
        d = 0 if to_server else 1
        fixed = f.fixed[d]
        if fixed is None:  # once per flow and direction: the header does not change
            fixed = f.fixed[d] = [c for c in self._by_header.lookup(src, dst, sport, dport, is_port_proto)
                                  if static_ok(c, proto, src, sport, dst, dport)]
        if payload:
            fp = self._fp_rules
            found = self._packet_pf.candidates({PAYLOAD: scan} if scan else buffers)
            if tail and not scan:  # an overlapping segment: its own bytes and the boundary both
                found = sorted(set(found) | set(self._packet_pf.candidates(
                    {PAYLOAD: tail[-self._junction:] + stream})))
            cand = self._header_filter([fp[j] for j in found], f, to_server, proto, src, sport, dst, dport)
            if stream is not None:
                pend = f.pending[d]
                if pend:  # rules whose match began in earlier segments
                    have = {c.index for c in cand}
                    spos = f.spos[d]
                    for k, (c, at) in list(pend.items()):
                        if spos - at > STREAM_TAIL:
                            del pend[k]
                        elif k not in have:
                            cand.append(c)
                    cand.sort(key=evaluation_order)
            if fixed:
                cand = sorted(cand + fixed, key=evaluation_order) if cand else fixed
            elif not cand:
                return
        elif fixed:
            cand = fixed
        else:
            return
        # the protocol as Suricata's detection would know it at this packet: not before the first
        # payload, and never in a TCP session picked up midstream (unless inspecting those)
        app = f.app if f.data_seen and not (proto == 6 and f.midstream and not self.midstream) else None
        insp = Inspection(ts, f, to_server, src, sport, dst, dport, proto, buffers, flags=flags,
                           dsize=len(payload), itype=itype, icode=icode, pcap_cnt=pcap_cnt, app=app)
        if stream is not None:
            insp.stream, insp.tail = stream, tail
        self._try(cand, insp, packet=True)
        if insp.failed:
            pend = f.pending[d]
            spos = f.spos[d]
            for c in insp.failed:
                pend.setdefault(c.index, (c, spos))
            while len(pend) > _MAX_PENDING:
                del pend[next(iter(pend))]

    def _event(self, e: tuple) -> None:
        ts, proto, orig_h, orig_p, resp_h, resp_p, service, is_orig, tx, buffers = e
        key = _conn_key(proto, orig_h, orig_p, resp_h, resp_p)
        a, b = addr_int(orig_h), addr_int(resp_h)
        src, sport, dst, dport = (a, orig_p, b, resp_p) if is_orig else (b, resp_p, a, orig_p)
        f = self.flows.get(key)
        if f is None:
            f = FlowState(key, proto, a, orig_p, ts)
            f.state = 3
            f.seen = 3
            self.flows[key] = f
        app = f.app = _app_name(service)
        if proto == 6 and f.midstream and not self.midstream:
            return  # Suricata (stream.midstream: false) does not parse sessions picked up midstream
        self.stats.messages += 1
        insp = Inspection(ts, f, is_orig, src, sport, dst, dport, proto, buffers, tx=tx, app=app)
        cand = self._app_pf.candidates(buffers)
        if cand:
            rules = self.app_rules
            cand = self._header_filter([rules[j] for j in cand], f, is_orig, proto, src, sport, dst, dport)
            if cand:
                self._try(cand, insp, packet=False)

    @staticmethod
    def _header_filter(cands: list[CompiledRule], f: FlowState, to_server: bool, proto: int, src: int, sport: int,
                       dst: int, dport: int) -> list[CompiledRule]:
        """The candidates whose protocol and header match, remembered per flow and direction."""
        hdr = f.hdr
        out = []
        for c in cands:
            hk = c.index * 2 + to_server
            ok = hdr.get(hk)
            if ok is None:
                ok = hdr[hk] = static_ok(c, proto, src, sport, dst, dport)
            if ok:
                out.append(c)
        return out

    def _try(self, cands: list[CompiledRule], insp: Inspection, *, packet: bool) -> None:
        """Try ``cands`` (in evaluation order, their headers matched) on one inspection."""
        f = insp.flow
        fired: list[Rule] = []
        for c in cands:
            rule = c.rule
            if c.app is not None and insp.app != c.app:
                continue
            if rule.flow and not flow_ok(rule.flow, insp, packet):
                continue
            if packet and not packet_ok(rule, insp):
                continue
            if not packet and rule.urilen is not None:
                uri = insp.buffers.get("http.uri.raw" if rule.urilen_raw else "http.uri")
                if uri is None or not rule.urilen.test(len(uri)):
                    continue
            if not bits_ok(rule, f) or (c.stateful and not state_ok(rule, insp, self.xbits)):
                continue
            if rule.matches:
                if packet and c.stream and insp.stream is not None:
                    # on the packet alone, or across the segment boundary: a match needing this
                    # packet's bytes and the data before them (one wholly before was found then)
                    if not ((not c.stream_only and match_payload(rule, insp.buffers))
                            or (match_payload(rule, {PAYLOAD: insp.tail + insp.stream})
                                and not (insp.tail and match_payload(rule, {PAYLOAD: insp.tail})))):
                        if insp.failed is None:
                            insp.failed = []
                        insp.failed.append(c)
                        continue
                elif not match_payload(rule, insp.buffers):
                    continue
            if not packet:
                txk = (c.index, insp.tx or 0, insp.to_server)
                if txk in f.done_tx:
                    continue
                f.done_tx.add(txk)
            bits_apply(rule, f)
            if rule.xbits:
                self.xbits.apply(rule.xbits, insp.src, insp.dst, insp.ts_ns)
            if rule.flowints:
                flowints_apply(rule.flowints, f.ints)
            if rule.action is Action.PASS:
                return  # nothing else alerts on this packet
            if rule.noalert or any(b.command == "noalert" for b in rule.flowbits):
                continue
            limited = Thresholds.limited(rule)
            if limited and not self.defer_thresholds and not self.thresholds.allow(rule, insp.ts_ns, insp.src,
                                                                                  insp.dst, alert_uid(insp)):
                continue
            fired.append((rule, c.index if limited and self.defer_thresholds else None))
        for rule, deferred in fired:
            if deferred is not None:
                self._deferred[len(self.alerts)] = deferred
            self._alert(rule, insp)

    def _alert(self, rule: Rule, insp: Inspection) -> None:
        self.alerts.append(make_alert(rule, insp))
        self.stats.alerts += 1


def merge_shards(rules: Sequence[Rule], results: Sequence[tuple[list[Alert], dict[int, int]]]) -> list[Alert]:
    """The alerts of engines that each saw a share of the flows (``defer_thresholds``), in time
    order, with the thresholds they left applied across all of them (in time order, then shard
    by shard in the order found: as one engine would, but for captures whose times go backwards)."""
    found = [(a.ts_ns, k, pos, a, deferred.get(pos))
             for k, (alerts, deferred) in enumerate(results) for pos, a in enumerate(alerts)]
    found.sort(key=lambda t: t[:3])
    thresholds = Thresholds()
    return [a for ts, _, _, a, index in found
            if index is None or thresholds.allow(rules[index], ts, addr_int(a.src_ip), addr_int(a.dest_ip), a.uid)]


class EngineInspector:
    """The engine as the ingest's inspector (``ingest(..., inspector=EngineInspector(rules))``,
    what ``wiretrail replay`` does), compiled where it first runs (prefilter databases and rule
    index: about a second for ET Open): in the ingest's inspector process, while the ingest starts.
    It shards by flow (``recorder.core.apps.inspection``): the ingest then runs one engine per
    core, each on its share of the flows, and ``merge`` applies the thresholds they left."""

    def __init__(self, rules: Sequence[Rule], *, midstream: bool = False, sharded: bool = False) -> None:
        self.rules = rules
        self.midstream = midstream
        self.sharded = sharded
        self.engine: Engine | None = None

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = Engine(self.rules, midstream=self.midstream, defer_thresholds=self.sharded)
        return self.engine

    def feed(self, raw, dec, messages: list, recognised: list) -> None:
        self._engine().feed(raw, dec, messages, recognised)

    def finish(self, messages: list):
        return self._engine().finish(messages)

    def __getattr__(self, name: str):
        # ``shard`` exists only when the flows can be split between engines: xbits are kept per
        # host and address pair across flows, so a rule set with xbits runs in one engine
        if name == "shard" and not any(r.xbits for r in self.rules):
            return self._shard
        raise AttributeError(name)

    def _shard(self, k: int, n: int) -> EngineInspector:
        """The engine of the k-th of n shares of the flows (all alike: the ingest picks the flows)."""
        return EngineInspector(self.rules, midstream=self.midstream, sharded=True)

    def merge(self, results: list) -> list[Alert]:
        return merge_shards(self.rules, results)


def match_captures(paths: list[str], rules: Sequence[Rule], *, on_warning=None) -> list[Alert]:
    """The signature alerts of ``rules`` over the captures at ``paths``, in time order."""
    if not rules:
        return []
    return Engine(rules).run(paths, on_warning=on_warning)


__all__ = ["Engine", "EngineInspector", "EngineStats", "match_captures", "merge_shards"]
