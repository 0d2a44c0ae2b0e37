"""repository:check, repository:prune."""

from __future__ import annotations

import click

from snapkeep.cli.options import load, project_options
from snapkeep.cli.render import ConsoleReporter, print_report, say
from snapkeep.errors import IntegrityError
from snapkeep.services.sizes import human_size
from snapkeep.services.snapshots import integrity

FORMATS = click.Choice(["text", "json"])


@click.command("repository:check")
@project_options
@click.option("--read-data", is_flag=True,
              help="Also read every pack and verify every chunk (reads the whole repository).")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def check(config_path, project, read_data, fmt) -> None:
    """Check the repository's structure (and, with --read-data, all of its data)."""
    ctx = load(config_path, project)
    report = integrity.check_repository(ctx, read_data=read_data,
                                        reporter=ConsoleReporter(verbose=fmt == "text"))
    print_report(report, f"repository {ctx.config.repository}", fmt)
    if not report.ok:
        raise IntegrityError(f"the repository at {ctx.config.repository} is damaged: "
                             f"{report.problems[0].key}: {report.problems[0].message}")


@click.command("repository:prune")
@project_options
@click.option("--dry-run", is_flag=True,
              help="Print what a prune would delete, repack and write; change nothing.")
def prune(config_path, project, dry_run) -> None:
    """Delete data that no snapshot references; repack partly used packs."""
    ctx = load(config_path, project)
    if dry_run:
        plan = integrity.plan_prune(ctx)
        for line in plan.lines():
            click.echo(line)
        stats = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in plan.stats().items())
        say(f"Dry run, nothing changed: a prune would free {human_size(plan.bytes_freed)} "
            f"({stats}).")
        return
    report = integrity.prune_repository(ctx, ConsoleReporter())
    freed = report.stats.get("bytes_freed", 0)
    say(f"Pruned the repository: {human_size(freed)} freed.")


COMMANDS = [check, prune]
