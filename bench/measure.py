"""What every bench shares so that its figures are honest and reproducible.

Each figure is the median of N rounds, printed with its spread (min–max); the tools run in
alternating order (as listed in odd rounds, reversed in even ones) and each tool's timed run
is preceded by the same cache warm-up (this container cannot drop the page cache, so every
input is read fully first); ratios are taken between medians. The header names the command
line that reproduces the run and the machine it ran on; the closing markdown table is ready
to paste in a note.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
WARM_NOTE = ("page cache: warm for every tool (inputs read fully right before each timed "
             "run; dropping caches is not possible in this container)")


@dataclass
class Timed:
    seconds: float
    rss: int  # peak RSS in bytes of the largest process of the tree that was run
    output: str  # stdout then stderr


def timed(cmd: Sequence[str] | str, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Timed:
    """Run ``cmd`` (a shell pipeline if a string) after a sync, so that it starts with no
    dirty pages left by the step before; raise SystemExit with its output if it fails."""
    os.sync()
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=cwd,
                                env=env, shell=isinstance(cmd, str))
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        err.seek(0)
        out += err.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd} failed with {code}:\n{out[-3000:]}")
    return Timed(elapsed, usage.ru_maxrss * 1024, out)


def warm(paths: Iterable[Path]) -> int:
    """Read every file under ``paths`` fully (into the page cache); return the bytes read."""
    total = 0
    for top in paths:
        files = [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file())
        for p in files:
            try:
                with p.open("rb", buffering=0) as f:
                    while chunk := f.read(1 << 20):
                        total += len(chunk)
            except OSError:  # a socket, a file removed meanwhile: nothing to warm
                pass
    return total


def round_order(items: Sequence[T], round_no: int) -> list[T]:
    """``items`` as given in odd rounds (1, 3, …), reversed in even ones."""
    return list(items) if round_no % 2 else list(reversed(items))


@dataclass
class Samples:
    """Values per (tool, measurement), one per round."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, tool: str, key: str, value: float) -> None:
        self.values[(tool, key)].append(value)

    def median(self, tool: str, key: str) -> float:
        v = self.values.get((tool, key))
        return statistics.median(v) if v else float("nan")

    def cell(self, tool: str, key: str, scale: float = 1.0, digits: int = 2) -> str:
        """``median (min–max)``, each value divided by ``scale``."""
        v = [x / scale for x in self.values.get((tool, key), [])]
        if not v:
            return "–"
        med = statistics.median(v)
        if len(v) == 1:
            return f"{med:.{digits}f}"
        return f"{med:.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f})"

    def ratio(self, tool: str, ref: str, key: str) -> str:
        a, b = self.median(tool, key), self.median(ref, key)
        return f"{a / b:.2f}×" if b and b == b and a == a else "–"


@dataclass
class Row:
    label: str
    key: str
    scale: float = 1.0
    digits: int = 2


def print_table(samples: Samples, rows: Sequence[Row], tools: Sequence[str],
                title: str) -> None:
    """The figures as a markdown table: one column per tool, then the first tool's ratio to
    each other tool (medians over medians)."""
    first, refs = tools[0], tools[1:]
    head = ["", *tools, *(f"{first} / {r}" for r in refs)]
    print(f"\n{title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        cells = [samples.cell(t, row.key, row.scale, row.digits) for t in tools]
        ratios = [samples.ratio(first, r, row.key) for r in refs]
        print(f"| {row.label} | " + " | ".join(cells + ratios) + " |")


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def print_header(versions: Mapping[str, Sequence[str]], notes: Sequence[str] = (),
                 warm_note: str = WARM_NOTE) -> None:
    """The command that reproduces this run, the machine, the reference tools' versions."""
    repo = Path(__file__).resolve().parents[1]
    argv = [os.path.relpath(sys.executable, repo), os.path.relpath(sys.argv[0], repo),
            *sys.argv[1:]]
    print(f"reproduce: cd {shlex.quote(str(repo))} && {shlex.join(argv)}")
    commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "src", "bench"],
                           capture_output=True, text=True).stdout.strip()
    print(f"checkout: {commit[:90]}{' (with uncommitted changes)' if dirty else ''}")
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: nproc {os.cpu_count()}, RAM {int(mem) / 2**20:.1f} GiB, "
          f"{cpu}, Linux {platform.release()}, "
          f"Python {platform.python_version()}; load average at start {load}")
    for name, cmd in versions.items():
        print(f"  {name}: {tool_version(cmd)}")
    for note in (warm_note, *notes):
        print(note)
    print(flush=True)


def media_arguments(doc: str, runs: int, workdir: str) -> argparse.ArgumentParser:
    """The options every media-tree bench takes: its size, the rounds, where it works, and
    the A/B mode."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--workdir", default=workdir)
    ap.add_argument("--trees", nargs=2, type=Path, metavar=("OLD", "NEW"),
                    help="A/B: run snapkeep from these two src directories instead")
    return ap
