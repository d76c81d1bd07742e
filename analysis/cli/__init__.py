"""The ``wiretrail`` command: one module per command group, registered here.

Domain errors become one-line messages here and only here; ``--debug`` re-raises them with the
traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from recorder import __version__
from recorder.core.errors import WiretrailError

# Each module under analysis.cli and the attributes holding its commands (a command, or a dict or
# tuple of them). A command imports only its own module (start-up: README, "Start-up"); --help
# and a name not in HOME import them all, so a command added to a module is never lost.
MODULES: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",), "flows": ("flows",), "db": ("db",), "captures": ("captures", "verify"),
    "apps": ("LOG_COMMANDS", "hosts"), "rules": ("rules",), "replay": ("replay",), "alerts": ("alerts",),
    "story": ("COMMANDS",), "report": ("report",), "logs": ("logs",), "packets": ("extract", "packets"),
}
HOME: dict[str, str] = {  # command -> its module, where it is not the command's own name
    "verify": "captures", "hosts": "apps", "timeline": "story", "incidents": "story", "incident": "story",
    "accounts": "story", "data-at-risk": "story", "extract": "packets",
}


class WiretrailGroup(click.Group):
    """Maps WiretrailError to a one-line message and its exit code; --debug shows the traceback.
    Loads a command's module when the command is asked for (``MODULES``)."""

    def load(self, module: str) -> None:
        """Add the commands of ``analysis.cli.<module>``."""
        mod = importlib.import_module(f"analysis.cli.{module}")
        for attribute in MODULES[module]:
            found = getattr(mod, attribute)
            commands = found.values() if isinstance(found, dict) else found if isinstance(found, tuple) else (found,)
            for command in commands:
                self.add_command(command)

    def load_all(self) -> None:
        for module in MODULES:
            self.load(module)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            home = HOME.get(cmd_name, cmd_name if cmd_name in MODULES else "apps")
            self.load(home)
            if cmd_name not in self.commands:
                self.load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WiretrailError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # the reader went away (`wiretrail flows | head`): stop quietly, as Unix tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as err:  # a bug: one line for the user, the traceback with --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: internal error: {type(err).__name__}: {err} (run with --debug for the traceback)",
                       err=True)
            sys.exit(1)


@click.group(cls=WiretrailGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=lambda ctx, _p, v: _version(ctx, v),
              help="Show the version (and whether the compiled core is built) and exit.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Wiretrail: ingest captures into a flow store with Zeek conn.log meaning, and query the flows."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _version(ctx: click.Context, value: bool) -> None:
    """``--version``: the version, then which core modules run compiled (checked only when asked)."""
    if not value or ctx.resilient_parsing:
        return
    from recorder.core.compiled import status

    click.echo(f"wiretrail, version {__version__}\n{status()}")
    ctx.exit()
