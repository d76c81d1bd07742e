"""The attack-chain and insider rules (``analysis.behaviour.chain``): each fires on its capture
and stays quiet on its near miss."""

from __future__ import annotations

from analysis.behaviour import evaluate
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from tests.analysis.behaviour.shipped import RULES, SID
from tests.analysis.behaviour.traffic import Capture, ftp_login, http_get

ATTACKER, VICTIM = "203.0.113.66", "10.0.0.10"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(200))


def kinds(tmp_path, cap: Capture, name: str = "c") -> list[tuple[str, str, str]]:
    path = cap.write(tmp_path / f"{name}.pcap")
    with Store(str(tmp_path / f"{name}.db")) as store:
        store.ensure_schema()
        ingest([path], store)
        return [(a.rule_kind, a.src_ip, a.signature) for a in evaluate(store, RULES)]


def _scan(cap: Capture, t: float = 0.0) -> None:
    for i, port in enumerate(range(1000, 1030)):
        cap.rejected(t + i * 0.01, ATTACKER, VICTIM, 45000 + i, port)


def test_callback_fires_after_a_scan_and_not_without(tmp_path):
    cap = Capture()
    _scan(cap)
    cap.session(100, VICTIM, ATTACKER, 33001, 4444, [(b"id\n", b"ls\n")])
    found = [k for k in kinds(tmp_path, cap) if k[0] == "callback"]
    assert len(found) == 1 and found[0][1] == VICTIM and "connected back to 203.0.113.66:4444" in found[0][2]
    near = Capture()  # the same connection, but to an address that never attacked the host
    _scan(near)
    near.session(100, VICTIM, "198.51.100.5", 33001, 4444, [(b"id\n", b"ls\n")])
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "callback"]
    late = Capture()  # back to the attacker, but two hours later: outside the window
    _scan(late)
    late.session(7200, VICTIM, ATTACKER, 33001, 4444, [(b"id\n", b"ls\n")])
    assert not [k for k in kinds(tmp_path, late, "l") if k[0] == "callback"]


def test_executable_download_by_content_not_name(tmp_path):
    cap = Capture()
    cap.session(10, VICTIM, ATTACKER, 33000, 80, http_get(ATTACKER, "/photo.jpg", body=ELF))
    found = [k for k in kinds(tmp_path, cap) if k[0] == "executable_download"]
    assert len(found) == 1 and "application/x-executable" in found[0][2] and found[0][1] == VICTIM
    near = Capture()  # named like a program, but text
    near.session(10, VICTIM, ATTACKER, 33000, 80, http_get(ATTACKER, "/setup.exe", body=b"just some text here"))
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "executable_download"]


def test_cleartext_admin_once_per_account_and_pair(tmp_path):
    cap = Capture()
    for i in range(3):
        cap.session(i, "10.0.0.7", "10.0.0.20", 40000 + i, 21, ftp_login(b"Administrator", b"pw", ok=True))
    found = [k for k in kinds(tmp_path, cap) if k[0] == "cleartext_admin"]
    assert len(found) == 1 and "(3 login(s), 3 accepted)" in found[0][2]
    near = Capture()
    near.session(0, "10.0.0.7", "10.0.0.20", 40000, 21, ftp_login(b"alice", b"pw", ok=True))
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "cleartext_admin"]
    telnet = Capture()
    telnet.session(0, "10.0.0.7", "10.0.0.20", 40000, 23, [(b"\xff\xfb\x01", b"login: ")])
    assert [k[0] for k in kinds(tmp_path, telnet, "t")].count("cleartext_admin") == 1


def test_large_upload(tmp_path):
    cap = Capture()
    cap.upload(0, "10.0.0.8", "198.51.100.77", 47200, 443, 1_200_000)
    found = [k for k in kinds(tmp_path, cap) if k[0] == "large_upload"]
    assert len(found) == 1 and "uploaded 1,200,000 bytes" in found[0][2]
    near = Capture()  # as much, but inside the network
    near.upload(0, "10.0.0.8", "10.0.0.20", 47200, 443, 1_200_000)
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "large_upload"]
    assert SID["large_upload"] == 9000013


def test_cleartext_admin_wrong_guesses_are_not_an_exposure(tmp_path):
    cap = Capture()
    for i in range(6):
        cap.session(i, ATTACKER, VICTIM, 40000 + i, 21, ftp_login(b"root", f"guess{i}".encode(), ok=False))
    assert not [k for k in kinds(tmp_path, cap) if k[0] == "cleartext_admin"]


def test_shared_account_within_minutes_only(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", "10.0.0.20", 40000, 21, ftp_login(b"carol", b"pw", ok=True))
    cap.session(120, "10.0.0.8", "10.0.0.20", 40001, 21, ftp_login(b"carol", b"pw", ok=True))
    found = [k for k in kinds(tmp_path, cap) if k[0] == "shared_account"]
    assert len(found) == 1 and found[0][1] == "10.0.0.8"
    assert "account 'carol' logged in from 10.0.0.7 and from 10.0.0.8 within 10 min" in found[0][2]
    near = Capture()  # the same two logins an hour apart: a person moving desks
    near.session(0, "10.0.0.7", "10.0.0.20", 40000, 21, ftp_login(b"carol", b"pw", ok=True))
    near.session(3600, "10.0.0.8", "10.0.0.20", 40001, 21, ftp_login(b"carol", b"pw", ok=True))
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "shared_account"]


def test_share_read_many_files_not_a_few(tmp_path):
    from tests.helpers.smb import read_files

    many = {f"docs\\f{i}.txt": b"text " * 10 for i in range(25)}
    cap = Capture()
    cap.session(0, "10.0.0.8", "10.0.0.20", 47100, 445, read_files("eve", many))
    found = [k for k in kinds(tmp_path, cap) if k[0] == "share_read"]
    assert len(found) == 1 and "10.0.0.8 read 25 files" in found[0][2] and "(never before)" in found[0][2]
    near = Capture()
    near.session(0, "10.0.0.8", "10.0.0.20", 47100, 445, read_files("eve", dict(list(many.items())[:10])))
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "share_read"]


def test_bind_shell_on_a_port_never_served_before(tmp_path):
    cap = Capture()
    _scan(cap)
    cap.session(100, ATTACKER, VICTIM, 33001, 31337, [(b"id\n", b"uid=0(root)\n")])
    found = [k for k in kinds(tmp_path, cap) if k[0] == "bind_shell"]
    assert len(found) == 1 and "opened a session to 10.0.0.10:31337, a port never served before" in found[0][2]
    near = Capture()  # the same port, but the host served it before the attack: its own service
    near.session(-500, "10.0.0.7", VICTIM, 33000, 31337, [(b"hello", b"world")])
    _scan(near)
    near.session(100, ATTACKER, VICTIM, 33001, 31337, [(b"id\n", b"uid=0(root)\n")])
    assert not [k for k in kinds(tmp_path, near, "n") if k[0] == "bind_shell"]
    web = Capture()  # a web request after the scan is a service (HTTP), not a shell
    _scan(web)
    web.session(100, ATTACKER, VICTIM, 33001, 8080, http_get(VICTIM, "/"))
    assert not [k for k in kinds(tmp_path, web, "w") if k[0] == "bind_shell"]


def test_executable_written_to_a_share_is_lateral_tool_transfer(tmp_path):
    from tests.helpers.smb import write_file

    pe = b"MZ" + bytes(range(256)) * 4
    ex = write_file("\\\\srv\\ADMIN$", "svc.exe", pe)
    cap = Capture()
    cap.session(0, "10.0.0.10", "10.0.0.20", 40000, 445, ex)
    found = [k for k in kinds(tmp_path, cap) if k[0] == "executable_download"]
    assert len(found) == 1 and found[0][1] == "10.0.0.20"
    assert "received an executable 'svc.exe' (application/x-dosexec" in found[0][2] and "over SMB" in found[0][2]


def test_remote_service_install_like_psexec(tmp_path):
    from tests.analysis.story.scenes import PE
    from tests.helpers.smb import write_file

    cap = Capture()
    cap.session(0, "10.0.0.10", "10.0.0.20", 40000, 445, write_file("\\\\fs\\ADMIN$", "PSEXESVC.exe", PE, ipc="\\\\fs\\IPC$"))
    found = [k for k in kinds(tmp_path, cap) if k[0] == "remote_service"]
    assert len(found) == 1 and found[0][1] == "10.0.0.10"
    assert "copied a program 'PSEXESVC.exe' to \\\\fs\\ADMIN$ on 10.0.0.20 and opened its IPC$ share" in found[0][2]
    public = Capture()  # a program dropped on an ordinary share: no service install
    public.session(0, "10.0.0.10", "10.0.0.20", 40000, 445, write_file("\\\\fs\\public", "setup.exe", PE, ipc="\\\\fs\\IPC$"))
    assert not [k for k in kinds(tmp_path, public, "p") if k[0] == "remote_service"]
    no_ipc = Capture()  # to ADMIN$ but the service manager never reached
    no_ipc.session(0, "10.0.0.10", "10.0.0.20", 40000, 445, write_file("\\\\fs\\ADMIN$", "svc.exe", PE))
    assert not [k for k in kinds(tmp_path, no_ipc, "n") if k[0] == "remote_service"]
