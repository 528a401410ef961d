"""`rollback-receiver`: the console script, one module per command group.

- serve: become gunicorn (`serve`)
- evaluate: read Prometheus (`check`, `monitor`)
- operations: the receiver's admin API (`history`, `approve`, `reject`, `rollback`,
  `status`, `replay`), printed by `rendering`
- blackout: Alertmanager silences and BLACKOUT_WINDOWS (`blackout …`)

All of them share `shared` (exit codes, `fail`, JSON output, settings, the API client)
and never import each other.
"""

from __future__ import annotations

import click

from receiver.cli import blackout as blackout_commands
from receiver.cli import evaluate as evaluate_commands
from receiver.cli import operations as operation_commands
from receiver.cli import serve as serve_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rollback-receiver")
def main() -> None:
    """Roll a deployment back, automatically and safely, when its error budget burns."""


for command in (
    serve_commands.serve,
    evaluate_commands.check,
    evaluate_commands.monitor,
    operation_commands.history,
    operation_commands.approve,
    operation_commands.reject,
    operation_commands.rollback,
    operation_commands.status,
    operation_commands.replay,
    blackout_commands.blackout,
):
    main.add_command(command)
