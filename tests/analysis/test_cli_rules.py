"""`wiretrail rules check`: every error as path:line: reason, the summary line, exit codes."""

from __future__ import annotations

from click.testing import CliRunner

from analysis.cli import main

GOOD = ('alert http $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ok"; flow:established,to_server; '
        'http.uri; content:"/x"; classtype:trojan-activity; sid:1; rev:1;)\n')


def test_clean_folder_exits_0(tmp_path):
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "a.rules").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a rules file (\n")
    r = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["1 rules loaded, 0 rejected"]


def test_every_error_is_listed_with_path_and_line(tmp_path):
    f = tmp_path / "bad.rules"
    f.write_text(GOOD + "# comment\n"
                 'alert tcp any any -> any any (msg:"x"; ftpbounce; sid:2;)\n'
                 'alert tcp any any -> any any (msg:"dup"; sid:1;)\n'
                 'alert tcp $NOPE any -> any any (msg:"v"; sid:3;)\n')
    r = CliRunner().invoke(main, ["rules", "check", str(f)])
    assert r.exit_code == 1
    assert r.stdout.splitlines() == ["1 rules loaded, 3 rejected"]
    assert r.stderr.splitlines() == [  # through the CLI's one error mapping, so --debug covers it
        f"Error: {f}:3: unsupported keyword ftpbounce",
        f"{f}:4: duplicate sid 1 (first at {f}:1)",
        f"{f}:5: undefined address variable $NOPE",
    ]


def test_var_defines_variables(tmp_path):
    f = tmp_path / "v.rules"
    f.write_text('alert tcp $DMZ any -> any $ADMIN_PORTS (msg:"v"; sid:3;)\n')
    runner = CliRunner()
    assert runner.invoke(main, ["rules", "check", str(f)]).exit_code == 1
    r = runner.invoke(main, ["rules", "check", "--var", "DMZ=[10.9.0.0/16]", "--var", "ADMIN_PORTS=[22,3389]", str(f)])
    assert r.exit_code == 0, r.output
    bad = runner.invoke(main, ["rules", "check", "--var", "DMZ", str(f)])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.stderr


def test_missing_path_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "absent.rules")])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [f"Error: {tmp_path / 'absent.rules'}: no such file or directory"]
