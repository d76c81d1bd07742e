"""DCE-RPC, NTLM, RDP and SMB1: crafted sessions, gap recovery, Zeek's reference traces parsed
stream by stream, a PsExec-style capture ingested end to end, and bounded fuzz tests."""

from __future__ import annotations

import json
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.core.apps import ntlm
from recorder.core.apps.base import Conn, ListOutput
from recorder.core.apps.dcerpc import DCERPC
from recorder.core.apps.dcerpc_names import endpoint, operation
from recorder.core.apps.kerberos import ap_request
from recorder.core.apps.rdp import RDP
from recorder.core.apps.smb import SMB
from tests.core.apps.windows_traffic import (
    CREATE_SERVICE,
    OPEN_SCM,
    START_SERVICE,
    SVCCTL,
    bind,
    bind_ack,
    fault,
    psexec_script,
    request,
    response,
    write_capture,
)
from tests.helpers import REFERENCE, need, wiretrail_cli
from tests.helpers.smb import nb, ntlm_authenticate, ntlm_challenge, ntlm_negotiate
from tests.helpers.smb import talk as _talk
from tests.helpers.streams import run_parser, tcp_streams

WINDOWS = REFERENCE / "zeek-windows"
DRSUAPI = "e3514235-4b06-11d1-ab04-00c04fc2dcd2"


def _conn(port: int = 135) -> Conn:
    return Conn("10.0.0.5", 49800, "10.0.0.9", port, "tcp", 1000.0, uid="Crpc")


def _rpc(script: list[tuple[bool, bytes]], *, segment: int = 7) -> tuple[ListOutput, DCERPC]:
    out = ListOutput()
    p = DCERPC(_conn(), out)
    for i, (side, payload) in enumerate(script):
        for j in range(0, len(payload), segment):
            p.data(side, payload[j:j + segment], 1000.0 + i)
    p.end(2000.0)
    return out, p


def test_names_follow_zeek() -> None:
    assert (endpoint(SVCCTL), operation(SVCCTL, CREATE_SERVICE), operation(SVCCTL, START_SERVICE)) == \
        ("svcctl", "CreateServiceW", "StartServiceW")
    assert operation(DRSUAPI, 3) == "DRSGetNCChanges" and operation(DRSUAPI, 12) == "DRSCrackNames"
    assert endpoint("00000000-0000-0000-0000-000000000001") == "unknown-00000000-0000-0000-0000-000000000001"
    assert operation(SVCCTL, 999) == "unknown-999"


def test_calls_over_tcp_paired_by_call_id_with_fault_and_unanswered() -> None:
    assert DCERPC.detect(bind(1, SVCCTL), True, _conn()) and not DCERPC.detect(b"GET / HTTP/1.1\r\n", True, _conn())
    out, p = _rpc([(True, bind(1, SVCCTL)), (False, bind_ack(1, "49676")),
                   (True, request(2, OPEN_SCM) + request(3, CREATE_SERVICE)),
                   (False, response(3)), (False, response(2)),  # answered out of order
                   (True, request(4, START_SERVICE)), (False, fault(4)),
                   (True, request(5, 0))])  # never answered
    rows = [(r["named_pipe"], r["endpoint"], r["operation"], r["rtt"] is None) for r in out.logs("dce_rpc")]
    assert rows == [("49676", "svcctl", "CreateServiceW", False), ("49676", "svcctl", "OpenSCManagerW", False),
                    ("49676", "svcctl", "StartServiceW", False), ("49676", "svcctl", "CloseServiceHandle", True)]
    assert p.malformed == 0


def test_resynchronises_after_a_gap_and_counts_garbage() -> None:
    out = ListOutput()
    p = DCERPC(_conn(), out)
    p.data(True, bind(1, SVCCTL), 1.0)
    p.data(False, bind_ack(1, "135"), 1.1)
    half = request(2, OPEN_SCM)
    p.data(True, half[:20], 1.2)
    p.gap(True, 500, 1.3)  # the rest of that request is lost
    p.data(True, b"\xde\xad\xbe\xef" * 8 + request(3, CREATE_SERVICE), 1.4)
    p.data(False, response(3), 1.5)
    p.end(2.0)
    assert [r["operation"] for r in out.logs("dce_rpc")] == ["CreateServiceW"]
    assert p.malformed >= 1


def test_ntlm_in_rpc_auth_and_zeek_field_meaning() -> None:
    auth = ntlm.parse(ntlm_challenge("DC1", "dc1.corp.lan", "corp.lan"))
    assert auth == {"type": 2, "nb_computer_name": "DC1", "dns_computer_name": "dc1.corp.lan",
                    "dns_tree_name": "corp.lan"}

    out, _ = _rpc([(True, bind(1, SVCCTL, auth=ntlm_negotiate())),
                   (False, bind_ack(1, "49676", auth=ntlm_challenge("DC1", "dc1.corp.lan", "corp.lan"))),
                   (True, bind(2, SVCCTL, auth=ntlm_authenticate("CORP", "bob")))])
    (rec,) = out.logs("ntlm")
    assert (rec["username"], rec["hostname"], rec["domainname"], rec["server_nb_computer_name"],
            rec["server_dns_computer_name"], rec["server_tree_name"], rec["success"]) == \
        ("bob", "WS", "CORP", "DC1", "dc1.corp.lan", "corp.lan", None)
    (cred,) = out.credentials
    assert (cred["protocol"], cred["user"], cred["secret"]) == ("NTLM", "CORP\\bob", None)


def test_psexec_over_smb2_pipe() -> None:
    out = _talk(psexec_script(), segment=100)
    assert [(r["named_pipe"], r["endpoint"], r["operation"]) for r in out.logs("dce_rpc")] == [
        ("\\PIPE\\svcctl", "svcctl", "OpenSCManagerW"), ("\\PIPE\\svcctl", "svcctl", "CreateServiceW"),
        ("\\PIPE\\svcctl", "svcctl", "StartServiceW"), ("\\PIPE\\svcctl", "svcctl", "CloseServiceHandle")]
    (rec,) = out.logs("ntlm")
    assert (rec["username"], rec["domainname"], rec["server_nb_computer_name"], rec["success"]) == \
        ("alice", "CORP", "DC1", True)
    assert [(c["protocol"], c["user"], c["success"]) for c in out.credentials] == [("NTLM", "CORP\\alice", True)]
    assert out.files == []  # pipe traffic is no file


def test_rdp_cookie_negotiation_and_tls_handover() -> None:
    cr = b"\x03\x00\x00\x2c\x27\xe0\x00\x00\x00\x00\x00Cookie: mstshash=admin\r\n\x01\x00\x08\x00\x03\x00\x00\x00"
    cr = cr[:2] + len(cr).to_bytes(2, "big") + bytes([len(cr) - 5]) + cr[5:]
    cc = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x02\x00\x00\x00"
    conn = Conn("10.0.0.5", 50000, "10.0.0.9", 3389, "tcp", 1.0, uid="Crdp")
    assert RDP.detect(cr, True, conn) and RDP.detect(cc, False, conn)
    out = ListOutput()
    p = RDP(conn, out)
    p.data(True, cr, 1.0)
    p.data(False, cc, 1.1)
    assert p.redetect  # TLS (CredSSP) follows: handed over to the TLS parser
    p.end(1.2)
    (rec,) = out.logs("rdp")
    assert (rec["cookie"], rec["security_protocol"], rec["result"]) == ("admin", "HYBRID", "encrypted")
    (cred,) = out.credentials
    assert (cred["protocol"], cred["user"], cred["secret"], cred["success"]) == ("RDP", "admin", None, None)


def test_reference_rdp_and_smb1_pipe_and_kerberos_ap() -> None:
    rdp = need(WINDOWS / "rdp__rdp-x509.pcap", "Zeek's RDP trace")
    out = ListOutput()
    for conn, events in tcp_streams(rdp):
        if conn.resp_p == 3389:
            run_parser(RDP, conn, events, out)
    (rec,) = out.logs("rdp")
    assert {k: rec[k] for k in ("cookie", "result", "security_protocol", "keyboard_layout", "client_build",
                                "client_name", "client_dig_product_id", "desktop_width", "desktop_height",
                                "requested_color_depth", "cert_type", "cert_count", "cert_permanent",
                                "encryption_level", "encryption_method")} == {
        "cookie": "JOHN-PC  ", "result": "Success", "security_protocol": "RDP",
        "keyboard_layout": "English - United States", "client_build": "RDP 8.1", "client_name": "JOHN-PC-LAPTOP",
        "client_dig_product_id": "3c571ed0-3415-474b-ae94-74e151b", "desktop_width": 1920, "desktop_height": 1080,
        "requested_color_depth": "16bit", "cert_type": "X.509", "cert_count": 2, "cert_permanent": False,
        "encryption_level": "Client compatible", "encryption_method": "128bit"}
    assert sorted(rec["client_channels"]) == ["cliprdr", "drdynvc", "rdpdr", "rdpsnd"]
    smb1 = need(WINDOWS / "smb__dssetup_DsRoleGetPrimaryDomainInformation_standalone_workstation.cap", "SMB1 trace")
    out = ListOutput()
    for conn, events in tcp_streams(smb1):
        run_parser(SMB, conn, events, out)
    assert [(r["named_pipe"], r["endpoint"], r["operation"]) for r in out.logs("dce_rpc")] == [
        ("\\PIPE\\lsass", "dssetup", "DsRolerGetPrimaryDomainInformation")]
    gss = need(WINDOWS / "krb__smb_gssapi.pcap", "SMB1 Kerberos trace")
    out = ListOutput()
    for conn, events in tcp_streams(gss):
        run_parser(SMB, conn, events, out)
    assert [(r["request_type"], r["client"], r["service"]) for r in out.logs("kerberos")] == [
        ("AP", "/HOUSING.HKSARG", "cifs/EDISK03A.housing.hksarg")]


def test_psexec_capture_end_to_end(tmp_path) -> None:
    """A scapy-built capture: `wiretrail dce-rpc` lists the service creation, `credentials` the
    account (no secret), and the behaviour rule fires; the near miss (service queried, none
    created) does not."""
    cli = wiretrail_cli()
    from analysis.behaviour import evaluate, load_behaviour_rules
    from analysis.replay import SHIPPED_RULES
    from recorder.core.store import Store

    rules = [r for r in load_behaviour_rules([SHIPPED_RULES])[0] if r.name == "Remote service creation"]
    for name, script, expect in (("psexec", psexec_script(), 1), ("query", psexec_script(create_service=False), 0)):
        cap = write_capture(tmp_path / f"{name}.pcap", script)
        db = tmp_path / f"{name}.db"
        subprocess.run([cli, "ingest", "--db", str(db), str(cap)], check=True, capture_output=True)
        listing = subprocess.run([cli, "dce-rpc", "--db", str(db), "--format", "jsonl"], check=True,
                                 capture_output=True, text=True).stdout
        ops = [json.loads(line)["operation"] for line in listing.splitlines()]
        assert ("CreateServiceW" in ops) == bool(expect)
        creds = subprocess.run([cli, "credentials", "--db", str(db), "--format", "jsonl"], check=True,
                               capture_output=True, text=True).stdout
        assert [(c["protocol"], c["user"], c.get("secret")) for c in map(json.loads, creds.splitlines())] == \
            [("NTLM", "CORP\\alice", None)]
        with Store(str(db)) as store:
            alerts = evaluate(store, rules)
        assert len(alerts) == expect
        if expect:
            assert alerts[0].technique == "T1569.002 Service Execution"
            assert "CreateServiceW" in alerts[0].signature and "CORP\\alice" in alerts[0].signature


def _alerts(tmp_path, name: str, script, rule_name: str, **params) -> list:
    import dataclasses

    from analysis.behaviour import evaluate, load_behaviour_rules
    from analysis.replay import SHIPPED_RULES
    from recorder.core.store import Store

    (rule,) = [r for r in load_behaviour_rules([SHIPPED_RULES])[0] if r.name == rule_name]
    rule = dataclasses.replace(rule, params={**rule.params, **params})
    cap = write_capture(tmp_path / f"{name}.pcap", script)
    with Store(str(tmp_path / f"{name}.db")) as store:
        store.ensure_schema()
        from recorder.core.pipeline.ingest import ingest

        ingest([cap], store)
        return evaluate(store, [rule])


def test_scheduled_task_and_dcsync_rules_with_near_misses(tmp_path) -> None:
    tasks = "86d35949-83c9-4044-b424-db363231fd0c"
    (a,) = _alerts(tmp_path, "task", psexec_script(iface=tasks, pipe="atsvc", calls=(1,)), "Remote scheduled task")
    assert "SchRpcRegisterTask" in a.signature and a.technique == "T1053.005 Scheduled Task"
    assert _alerts(tmp_path, "tasklist", psexec_script(iface=tasks, pipe="atsvc", calls=(7,)),
                   "Remote scheduled task") == []  # SchRpcEnumTasks: looking, not creating
    dcsync = psexec_script(iface=DRSUAPI, pipe="drsuapi", calls=(3, 1))
    (d,) = _alerts(tmp_path, "dcsync", dcsync, "DCSync")
    assert d.signature.startswith("DCSync: 10.0.0.5 replicated the directory") and "DRSGetNCChanges" in d.signature
    assert _alerts(tmp_path, "dc", dcsync, "DCSync", ignore_sources=["10.0.0.0/29"]) == []  # a domain controller


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12))
def test_fuzz_dcerpc_never_raises(chunks) -> None:
    out = ListOutput()
    p = DCERPC(_conn(), out)
    p.data(True, bind(1, SVCCTL), 0.0)
    for side, data in chunks:
        p.data(side, b"\x05\x00" + data, 1.0)
    p.end(2.0)
    assert p.malformed >= 0


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12))
def test_fuzz_rdp_and_smb1_never_raise(chunks) -> None:
    out = ListOutput()
    r = RDP(Conn("1.1.1.1", 1, "2.2.2.2", 3389, "tcp", 0.0), out)
    s = SMB(_conn(445), out)
    for side, data in chunks:
        r.data(side, b"\x03\x00" + data, 1.0)
        body = b"\xffSMB" + data
        s.data(side, len(body).to_bytes(4, "big") + body, 1.0)
    r.end(2.0)
    s.end(2.0)
    assert s.smb1.malformed >= 0


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_ntlm_spnego_kerberos_helpers(data) -> None:
    ntlm.parse(b"NTLMSSP\x00" + data)
    ntlm.neg_state(b"\xa1" + data)
    ap_request(b"\x6e" + data)


# -- SMB1 ---------------------------------------------------------------------------------------

def _smb1(cmd: int, mid: int, words: bytes, data: bytes = b"", *, reply: bool = False, tid: int = 0,
          status: int = 0) -> bytes:
    head = (b"\xffSMB" + bytes([cmd]) + status.to_bytes(4, "little") + bytes([0x80 if reply else 0x00])
            + b"\x00\x00" + b"\x00" * 12 + tid.to_bytes(2, "little") + b"\x01\x00" + b"\x07\x00"
            + mid.to_bytes(2, "little"))
    return head + bytes([len(words) // 2]) + words + len(data).to_bytes(2, "little") + data


ANDX_NONE = b"\xff\x00\x00\x00"


def smb1_script(status: int = 0) -> list[tuple[bool, bytes]]:

    body = b"quarterly figures\n" * 50
    setup = ANDX_NONE + b"\x00" * 10 + (3).to_bytes(2, "little") + b"\x00\x00" + b"\x00" * 8
    create_w = ANDX_NONE + b"\x00" + (8).to_bytes(2, "little") + b"\x00" * 41
    create_r = ANDX_NONE + b"\x00" + (0x4001).to_bytes(2, "little") + b"\x00" * 4 \
        + (130000000000000000).to_bytes(8, "little") * 4 + b"\x00" * 12 + len(body).to_bytes(8, "little") \
        + b"\x00\x00" + b"\x00\x00" + b"\x00"
    write_w = ANDX_NONE + (0x4001).to_bytes(2, "little") + b"\x00" * 14 + len(body).to_bytes(2, "little") \
        + (59).to_bytes(2, "little")
    read_w = ANDX_NONE + (0x4001).to_bytes(2, "little") + b"\x00" * 4 + (4096).to_bytes(2, "little") + b"\x00" * 8
    read_r = ANDX_NONE + b"\x00" * 6 + len(body).to_bytes(2, "little") + (59).to_bytes(2, "little") + b"\x00" * 10
    return [
        (True, nb(_smb1(0x73, 1, setup, b"pwd" + b"carol\x00CORP\x00Unix\x00Samba\x00"))),
        (False, nb(_smb1(0x73, 1, ANDX_NONE + b"\x00\x00", b"", reply=True, status=status))),
        (True, nb(_smb1(0x75, 2, ANDX_NONE + b"\x00\x00" + b"\x01\x00", b"\x00\\\\FS\\DOCS\x00?????\x00"))),
        (False, nb(_smb1(0x75, 2, ANDX_NONE + b"\x00\x00", b"A:\x00NTFS\x00", reply=True, tid=9))),
        (True, nb(_smb1(0xA2, 3, create_w, b"\\q3.xls\x00", tid=9))),
        (False, nb(_smb1(0xA2, 3, create_r, reply=True, tid=9))),
        (True, nb(_smb1(0x2F, 4, write_w, body, tid=9))),
        (False, nb(_smb1(0x2F, 4, ANDX_NONE + b"\x00" * 8, reply=True, tid=9))),
        (True, nb(_smb1(0x2E, 5, read_w, tid=9))),
        (False, nb(_smb1(0x2E, 5, read_r, body, reply=True, tid=9))),
        (True, nb(_smb1(0x04, 6, (0x4001).to_bytes(2, "little") + b"\x00" * 4, tid=9))),
        (False, nb(_smb1(0x04, 6, b"", reply=True, tid=9)))]


def test_smb1_login_share_file_open_write_read() -> None:
    out = _talk(smb1_script(), segment=50)
    assert [(r["path"], r["service"], r["native_file_system"], r["share_type"]) for r in out.logs("smb_mapping")] == \
        [("\\\\FS\\DOCS", "A:", "NTFS", "DISK")]
    (f,) = out.logs("smb_files")
    assert (f["action"], f["path"], f["name"], f["size"]) == ("SMB::FILE_OPEN", "\\\\FS\\DOCS", "q3.xls", 900)
    assert f["times.created"] == (130000000000000000 - 116444736000000000) / 1e7
    assert [(x["filename"], x["is_orig"], x["data"]) for x in out.files] == \
        [("q3.xls", True, b"quarterly figures\n" * 50), ("q3.xls", False, b"quarterly figures\n" * 50)]
    assert [(c["protocol"], c["user"], c["secret"], c["success"]) for c in out.credentials] == \
        [("NTLM", "CORP\\carol", None, True)]
    failed = _talk(smb1_script(status=0xC000006D))
    assert [(c["user"], c["success"], c["note"]) for c in failed.credentials] == \
        [("CORP\\carol", False, "status 0xc000006d")]


def test_rdp_detection_off_port_needs_rdp_content() -> None:
    other = Conn("10.0.0.5", 50000, "10.0.0.9", 102, "tcp", 1.0)
    s7 = b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc1\x02\x01\x00\xc2\x02\x01\x02\xc0\x01\x0a"  # S7comm COTP CR
    assert not RDP.detect(s7, True, other)
    cr = b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00"
    assert RDP.detect(cr, True, other) and RDP.detect(cr, True, Conn("a", 1, "b", 3389, "tcp", 0.0))


def test_rpc_rule_rejects_a_bad_ignore_source() -> None:
    from analysis.behaviour.model import parse_rule

    text = ("id: 1\nname: x\nkind: rpc_operation\nseverity: 1\ntactic: TA0002 Execution\ntechnique: T1569 X\n"
            "description: d\nparams:\n  ignore_sources: [10.0.0.0/8, not-a-net]\n")
    rule, errors = parse_rule(text, "r.yaml")
    assert rule is None and [str(e) for e in errors] == ["r.yaml:9: not an address or network in ignore_sources: "
                                                         "'not-a-net'"]


def test_pipe_calls_of_a_capture_started_after_the_pipe_was_opened() -> None:
    """The login, tree connect and CREATE are not in the capture: FSCTL_PIPE_TRANSCEIVE says the
    file is a pipe, and the bind that follows names the interface."""
    script = psexec_script()
    start = next(i for i, (_, b) in enumerate(script) if b[4 + 12] == 11)  # the first IOCTL (the bind)
    out = _talk(script[start:])
    assert [r["operation"] for r in out.logs("dce_rpc")] == ["OpenSCManagerW", "CreateServiceW", "StartServiceW",
                                                             "CloseServiceHandle"]
    assert all(r["named_pipe"] == "\\PIPE\\svcctl" for r in out.logs("dce_rpc"))
