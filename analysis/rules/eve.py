"""An engine alert as Suricata's eve.json attributes it: the endpoints of the packet (or message)
that completed the match, the protocol's eve name, the Community ID, and the uid of the flow as the
flow meter gives it, so that an alert joins its conn.log line."""

from __future__ import annotations

from analysis.alerts import Alert
from analysis.rules.flowstate import Inspection
from analysis.rules.model import Rule
from recorder.core.flow.flowid import addr_str, community_id, flow_uid, icmp_ports

EVE_PROTO = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 132: "sctp"}


def icmp_uid(insp: Inspection) -> str:
    """The uid of the ICMP connection as the flow meter keys it (``flowid.icmp_ports``)."""
    sp, dp, one_way = icmp_ports(insp.proto, insp.itype, insp.icode)
    s, d = insp.src, insp.dst
    if not one_way and (s, sp) > (d, dp):
        s, sp, d, dp = d, dp, s, sp
    return flow_uid((insp.proto, s, sp, d, dp, int(one_way)), insp.flow.start)


def alert_uid(insp: Inspection) -> str:
    """The uid of the inspection's flow, as the flow meter gives it."""
    f = insp.flow
    if insp.proto in (1, 58):  # Zeek keys ICMP by type and counterpart type: one flow here, several there
        return icmp_uid(insp)
    if f.uid is None:
        _, a, ap, b, bp = f.key
        f.uid = flow_uid((insp.proto, a, ap, b, bp, 0), f.start)
    return f.uid


def make_alert(rule: Rule, insp: Inspection) -> Alert:
    """The alert of ``rule`` matched on ``insp``."""
    f = insp.flow
    proto = insp.proto
    uid = alert_uid(insp)
    ports = proto in (6, 17, 132)
    src, dst, sport, dport = insp.src, insp.dst, insp.sport, insp.dport
    cid = community_id(proto, src, sport if ports else insp.itype, dst, dport if ports else insp.icode)
    return Alert(
        ts_ns=insp.ts_ns, signature_id=rule.sid, signature=rule.msg, severity=rule.priority,
        src_ip=addr_str(src), dest_ip=addr_str(dst), src_port=sport if ports else None,
        dest_port=dport if ports else None, proto=EVE_PROTO.get(proto, str(proto)), app_proto=f.app,
        uid=uid, community_id=cid, category=rule.category or "", rev=rule.rev, gid=rule.gid,
        action="allowed", tx_id=insp.tx, direction="to_server" if insp.to_server else "to_client",
        pcap_cnt=insp.pcap_cnt, metadata=rule.metadata)
