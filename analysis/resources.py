"""What ships inside the package and is read at run time, found with ``importlib.resources``.

An installed wheel and a checkout read the same files through the same call. In a checkout,
``analysis/ruleset`` is a link to the top-level ``rules/`` folder, the one copy of the shipped
rules and the place people edit them; a wheel carries those files as ``analysis/ruleset/``
(``pyproject.toml``'s package data).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def ruleset() -> Path:
    """The shipped rules folder: signatures (``*.rules``), ``behaviour/``, ``classification.config``."""
    return Path(str(files("analysis") / "ruleset"))


def classification_config() -> Path:
    """The shipped ``classification.config`` (Suricata's classtypes with their priorities)."""
    return ruleset() / "classification.config"
