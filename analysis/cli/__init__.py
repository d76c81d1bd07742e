"""The ``wiretrail`` command: one module per command group, registered here.

Domain errors become one-line messages here and only here; ``--debug`` re-raises them with the
traceback.
"""

from __future__ import annotations

import os
import sys

import click

from recorder import __version__
from recorder.core.compiled import version_message
from recorder.core.errors import WiretrailError


class WiretrailGroup(click.Group):
    """Maps WiretrailError to a one-line message and its exit code; --debug shows the traceback.

    The commands in ``LAZY`` are imported only when invoked (the others when the group is
    listed or one of them is invoked): ``extract`` should not pay for every parser's import."""

    LAZY = {"extract": ("analysis.cli.packets", "extract"), "packets": ("analysis.cli.packets", "packets")}

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, attr = self.LAZY[cmd_name]
            return getattr(importlib.import_module(module), attr)
        _register()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
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
@click.version_option(__version__, prog_name="wiretrail", message=version_message())
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Wiretrail: ingest captures into a flow store with Zeek conn.log meaning, and query the flows."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    """Every command added to the group (once)."""
    if "flows" in main.commands:
        return
    from analysis.cli import (
        alerts,
        apps,
        captures,
        db,
        flows,
        ingest,
        logs,
        packets,
        replay,
        report,
        rules,
        story,
    )

    main.add_command(ingest.ingest)
    main.add_command(flows.flows)
    main.add_command(db.db)
    main.add_command(captures.captures)
    main.add_command(captures.verify)
    for command in apps.LOG_COMMANDS.values():
        main.add_command(command)
    main.add_command(apps.hosts)
    main.add_command(rules.rules)
    main.add_command(replay.replay)
    main.add_command(alerts.alerts)
    for command in story.COMMANDS:
        main.add_command(command)
    main.add_command(report.report)
    main.add_command(logs.logs)
    main.add_command(packets.extract)
    main.add_command(packets.packets)
