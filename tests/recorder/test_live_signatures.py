"""The recorder's signature plug-in at start: a rule the engine does not support refuses the
configuration (exit 78, one line), unless ``skip_invalid`` (then one warning line and the rest load)."""

from __future__ import annotations

import pytest

from analysis.live import signature_detector
from recorder.core.config import load_config
from recorder.core.errors import ConfigError

GOOD = 'alert tcp any any -> any 80 (msg:"good"; content:"x"; sid:1; rev:1;)\n'
BAD = 'alert tcp any any -> any 21 (msg:"bad"; ftpbounce; sid:2; rev:1;)\n'


def _config(tmp_path, *extra: str):
    rules = tmp_path / "local.rules"
    rules.write_text(GOOD + BAD)
    path = tmp_path / "r.toml"
    path.write_text(f'db = "{tmp_path / "w.db"}"\nrules = ["{rules}"]\n' + "".join(extra))
    return load_config(str(path), {}, {})


def test_unsupported_signature_refuses_the_configuration(tmp_path):
    with pytest.raises(ConfigError, match=r"^rules: .*local.rules.*ftpbounce") as info:
        signature_detector(_config(tmp_path), print)
    assert info.value.exit_code == 78 and "\n" not in str(info.value)


def test_skip_invalid_skips_it_with_one_line(tmp_path):
    warnings: list[str] = []
    det = signature_detector(_config(tmp_path, "skip_invalid = true\n"), warnings.append)
    assert det is not None and det.rules == 1
    assert len(warnings) == 1 and warnings[0].startswith("1 of 2 signatures not supported and skipped")
