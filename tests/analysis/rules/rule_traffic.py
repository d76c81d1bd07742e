"""What the engine tests share: rules from text, a replay of a built capture, one TCP session, a
TLS ClientHello (built with scapy)."""

from __future__ import annotations

from analysis.rules import Variables, load_rules
from analysis.rules.engine import match_captures
from tests.analysis.behaviour.traffic import Capture

CLIENT, SERVER = "10.0.0.5", "198.51.100.7"


def rules_from(tmp_path, text: str):
    path = tmp_path / "test.rules"
    path.write_text(text)
    rs = load_rules([path], Variables.with_overrides({}))
    assert not rs.errors, rs.errors
    return rs.rules


def replay(tmp_path, cap: Capture, text: str):
    return match_captures([cap.write(tmp_path / "t.pcap")], rules_from(tmp_path, text))


def sids(alerts) -> list[int]:
    return [a.signature_id for a in alerts]


def one_session(exchanges, sport=40000, dport=4444) -> Capture:
    cap = Capture()
    cap.session(0, CLIENT, SERVER, sport, dport, exchanges)
    return cap


def client_hello(sni: bytes) -> bytes:
    from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.record import TLS
    return bytes(TLS(msg=[TLSClientHello(ciphers=[0x1301, 0xC02F],
                                         ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni)])])]))
