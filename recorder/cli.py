"""``wiretrail-recorder``: the always-on capture daemon.

``run`` captures (see ``recorder.daemon``); ``check-config`` validates a configuration and exits
78 (EX_CONFIG) on a bad one, which systemd's RestartPreventExitStatus=78 turns into "stay down".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from recorder import __version__
from recorder.core.compiled import version_message
from recorder.core.config import BOOL, LIST_KINDS, SETTINGS, load_config, render_config, require_runnable
from recorder.core.errors import WiretrailError

_METAVARS = {"str": "TEXT", "path": "PATH", "int": "INT", "float": "NUMBER", "size": "SIZE",
             "duration": "DURATION", "names": "NAME", "cidrs": "CIDR", "texts": "TEXT"}


class DomainError(click.ClickException):
    """The one place a domain error becomes ``Error: <line>`` on stderr and its exit code."""

    def __init__(self, err: WiretrailError) -> None:
        super().__init__(str(err))
        self.exit_code = err.exit_code


def setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One flag per row of the settings table; unset flags arrive as None (or an empty tuple)."""
    for s in reversed(SETTINGS):
        if s.secret:  # never on the command line (ps shows it): config file or systemd credential
            continue
        opt = s.flag[2:]
        default = ("true" if s.default else "false") if isinstance(s.default, bool) else (
            f"{s.default:g}" if isinstance(s.default, float) else s.default)
        help_text = f"{s.help} [default: {default if default not in ('', ()) else 'none'}; env {s.env}]"
        if s.type == BOOL:
            func = click.option(f"--{opt}/--no-{opt}", s.name, default=None, help=help_text)(func)
        else:
            func = click.option(s.flag, s.name, default=None, multiple=s.type in LIST_KINDS,
                                metavar=_METAVARS[s.type], help=help_text)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wiretrail-recorder", message=version_message())
def main() -> None:
    """Always-on capture daemon: `run` captures into rotating, sealed pcap files, meters
    flows into the database and runs live detection with notifications; `check-config`
    validates a configuration (exit 78 if bad); `test-notify` sends a test message through
    every notification channel."""


@main.command("check-config")
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="TOML config file [default: /etc/wiretrail/recorder.toml if it exists].")
@setting_options
def check_config(config_path: str | None, **overrides: Any) -> None:
    """Load defaults, config file, WIRETRAIL_* environment and flags; print the effective
    configuration, or exit 78 naming the bad setting and where it came from."""
    try:
        config = load_config(config_path, os.environ, overrides)
        require_runnable(config)
        _detectors(config)  # a bad rule file is a bad configuration
    except WiretrailError as err:
        raise DomainError(err) from None
    for line in render_config(config):
        click.echo(line)


def _detectors(config) -> list:
    """The live detection plug-ins for ``config`` (none when detect_interval is 0)."""
    import logging

    from recorder.core.detection import load_detectors

    if not config.detect_interval:
        return []
    warn = logging.getLogger("wiretrail-recorder").warning
    return load_detectors(config, lambda msg: warn("%s", msg))


@main.command("run")
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="TOML config file [default: /etc/wiretrail/recorder.toml if it exists].")
@setting_options
def run_command(config_path: str | None, **overrides: Any) -> None:
    """Capture until SIGTERM. Files are sealed (fsync, SHA-256 in a hash chain, rename) at
    rotation and on exit; SIGHUP re-reads the configuration and rotates; a stats line is logged
    every stats_interval. Exit 78 on a bad configuration, 1 when capture cannot start."""
    import logging

    from recorder import daemon

    def load():
        config = load_config(config_path, os.environ, overrides)
        require_runnable(config)
        return config

    try:
        config = load()
        detectors = _detectors(config)
    except WiretrailError as err:
        raise DomainError(err) from None
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s %(levelname)s %(message)s"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(fmt))
    ours = logging.getLogger("wiretrail-recorder")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    logging.getLogger().addHandler(handler)  # other libraries: warnings and errors only
    logging.getLogger().setLevel(logging.WARNING)
    try:
        daemon.run(config, reload=load, detectors=detectors)
    except WiretrailError as err:
        raise DomainError(err) from None


@main.command("test-notify")
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="TOML config file [default: /etc/wiretrail/recorder.toml if it exists].")
@setting_options
def test_notify(config_path: str | None, **overrides: Any) -> None:
    """Send one test message through every configured channel (e-mail, webhooks) now, bypassing
    the queue; print which worked. Exit 1 if one failed or none is configured, 78 on a bad
    configuration."""
    import socket

    from recorder.notify import test_channels

    try:
        config = load_config(config_path, os.environ, overrides)
    except WiretrailError as err:
        raise DomainError(err) from None
    results = test_channels(config, config.sensor or socket.gethostname())
    if not results:
        raise click.ClickException("no notification channel configured (notify_smtp_url with notify_to, "
                                   "or notify_webhook)")
    for channel, error in results:
        click.echo(f"{channel.label}: " + ("sent" if error is None else f"FAILED: {error}"))
    if any(error for _, error in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
