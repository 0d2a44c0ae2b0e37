"""Presenting results: tables in the hosted CLI's shape, and the activity progress bar.

Data goes to stdout; messages, progress and errors go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import click

from snapkeep.services.activities.info import ActivityInfo

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def say(message: str = "") -> None:
    """A message for the person (stderr)."""
    click.echo(message, err=True)


def timestamp(t: datetime | None) -> str:
    """A time as listings print it (ISO 8601, to the second); "" for none."""
    return t.isoformat(timespec="seconds") if t else ""


def ascii_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                header: bool = True) -> str:
    widths = [len(h) if header else 0 for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule]
    if header:
        out += ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
                + " |", rule]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    out.append(rule)
    return "\n".join(out)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str,
          header: bool = True, json_rows: list[dict] | dict | None = None) -> str:
    if fmt == "json":
        return json.dumps(json_rows if json_rows is not None else
                          [dict(zip(headers, r, strict=True)) for r in rows], indent=2)
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        if header:
            w.writerow(headers)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    return ascii_table(headers, rows, header)


def print_listing(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str, *,
                  json_rows: list[dict], empty: str) -> None:
    """Print a listing in ``fmt``; as a table with no rows, the sentence ``empty`` (what
    to do to have some) instead."""
    if fmt == "table" and not rows:
        say(empty)
        return
    click.echo(table(headers, rows, fmt, json_rows=json_rows))


class ActivityDisplay:
    """Shows a running activity: its log lines and a bar with elapsed time and state.

    On a terminal the bar is live (Rich); otherwise plain lines are printed.
    """

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.started = time.monotonic()
        self.percent = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.activity: ActivityInfo | None = None
        self.finished = False
        self._failed_line: str | None = None

    def __enter__(self) -> ActivityDisplay:
        if self.live:
            # here: only a live bar needs Rich; a command without a terminal (cron, a script)
            # does not pay for importing it (start-up, docs/performance.md)
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                BarColumn(bar_width=28), TimeElapsedColumn(),
                TextColumn("({task.fields[state]})"),
                console=Console(stderr=True, highlight=False, soft_wrap=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("", total=100, state="in progress")
        return self

    def on_start(self, activity: ActivityInfo) -> None:
        self.activity = activity
        self.on_log(f"Waiting for the activity {activity.id} ({activity.description}):")
        self.on_log("")

    def on_log(self, message: str) -> None:
        # The activity's closing "Failed: <error>" is held back: when the error reaches the
        # command it is printed once, as the "snapkeep: <error>" line (see __exit__).
        self._flush_failed()
        if message.startswith("Failed: "):
            self._failed_line = message
            return
        self._print(message)

    def _flush_failed(self) -> None:
        if self._failed_line is not None:
            line, self._failed_line = self._failed_line, None
            self._print(line)

    def _print(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False)
        else:
            say(message)

    def on_progress(self, percent: float) -> None:
        self.percent = percent
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=percent)

    def finish(self, state: str) -> None:
        self._flush_failed()
        self._stop()
        secs = int(time.monotonic() - self.started)
        filled = 28 if state == "complete" else int(28 * self.percent / 100)
        say(f"[{'=' * filled}{' ' * (28 - filled)}] {secs} secs ({state})")

    def _stop(self) -> None:
        self.finished = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __exit__(self, exc_type: object, exc: BaseException | None, *rest: object) -> None:
        if self.finished:
            return
        if exc is not None and self._failed_line is not None and (
                str(exc) in self._failed_line or isinstance(exc, KeyboardInterrupt)):
            self._failed_line = None  # the command prints this error itself
        if exc is not None and self.activity is None:
            self._flush_failed()
            self._stop()  # nothing started: no bar, the error line says what went wrong
            return
        self.finish("failed" if exc_type else "complete")
        if exc_type and self.activity is not None:
            say(f"Activity {self.activity.id} failed")


class ConsoleReporter:
    """A Reporter for commands that are not activities: log lines to stderr."""

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose

    def log(self, message: str) -> None:
        if self.verbose:
            say(message)

    def add_total(self, units: int) -> None:
        pass

    def advance(self, units: int) -> None:
        pass


def print_report(report, what: str, fmt: str = "text") -> None:
    """A maintenance report: its problems and notes; JSON on request."""
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    for p in report.problems:
        click.echo(f"problem: {p.key}: {p.message}")
    stats = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.stats.items())
    verdict = "no problems found" if report.ok else f"{len(report.problems)} problem(s) found"
    say(f"{what}: {verdict}" + (f" ({stats})" if stats else ""))
