"""Mount snapshots against restic and borg on the same files: medians of N rounds, in one run.

    .venv/bin/python bench/media.py [--gib 1.0] [--runs 3] [--workdir /tmp/snapkeep-bench]
    .venv/bin/python bench/media.py --trees OLD/src NEW/src [--gib 1.0] [--runs 3]

Generates a media tree (random-byte "images" of 50 KB–2 MB, about 2,000 per GiB, plus 5,000
small text files). Each round gives every tool a fresh repository and measures: first
snapshot, unchanged re-run, re-run after changing 1 % of the files (the same files for every
tool of that round), restore, restore into an empty mount; repository size and bytes each
re-run added; peak RSS of each timed process. snapkeep restores in place (the live mount is
replaced: staging, swap, then the previous tree is deleted), so its "restore" also deletes
the previous 1 GiB tree, which restic and borg (restoring into an empty directory) never
do; "restore into an empty mount" removes the mount directory first (untimed), so every
tool does the same work (for restic and borg it is a second restore into an empty target).
Tools run in alternating order (snapkeep first in odd rounds, last in even ones), and right
before each timed run its inputs (the media tree; for a restore also the tool's repository)
are read fully, so every tool starts from the same warm page cache (this
container cannot drop caches). snapkeep runs from compiled bytecode, as an installed
package does (``PYTHONDONTWRITEBYTECODE`` is removed from its environment and its package
is byte-compiled before the runs). Every figure is the median of ``--runs`` rounds with its
spread (min–max); ratios are medians over medians. snapkeep's peak RSS is also taken once
at half the data size, to show that it stays flat. The reference tools are Debian's
``restic`` and ``borgbackup`` (each skipped if missing).

A/B mode (``--trees OLD/src NEW/src``, e.g. ``git archive main | tar -x -C /tmp/old`` for
OLD): no reference tools; snapkeep runs from each source tree (``PYTHONPATH`` = the tree,
checked by printing each tree's ``snapkeep.__file__``; a missing ``_rowpump`` is built into
the tree), alternating, and the table gives NEW, OLD and NEW / OLD.

The output starts with the command that reproduces the run and the machine, and ends with a
markdown table ready to paste in a note. Not part of the test suite.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from measure import (
    Row,
    Samples,
    Timed,
    media_arguments,
    print_header,
    print_table,
    round_order,
    timed,
    warm,
)
from trees import check_trees, tree_env

ENV = {**os.environ, "RESTIC_PASSWORD": "bench", "BORG_PASSPHRASE": "bench",
       "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "SNAPKEEP_DEBUG": "1"}
for k in [k for k in ENV if k.startswith("SNAPKEEP_") and k != "SNAPKEEP_DEBUG"]:
    del ENV[k]
# snapkeep runs from compiled bytecode, as an installed package does (pip writes the .pyc
# files at install time): with this set, every run compiled ~110 modules from source, ~0.1 s.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
MIB = 2**20
ROWS = [Row("first snapshot (s)", "first"), Row("unchanged re-run (s)", "unchanged"),
        Row("1 % changed re-run (s)", "changed"), Row("restore (s)", "restore"),
        Row("restore into an empty mount (s)", "restore_empty"),
        Row("repository (MiB)", "size", MIB, 1),
        Row("added, unchanged (KiB)", "added_unchanged", 1024, 1),
        Row("added, 1 % changed (MiB)", "added_changed", MIB, 1),
        Row("peak RSS, first snapshot (MiB)", "rss_first", MIB, 0),
        Row("peak RSS, restore (MiB)", "rss_restore", MIB, 0)]


def generate(media: Path, gib: float, rng: random.Random, texts: int) -> list[Path]:
    """Random-byte images totalling ``gib`` under ``media``, plus ``texts`` small files."""
    target = int(gib * (1 << 30))
    files: list[Path] = []
    total, i = 0, 0
    while total < target:
        d = media / f"{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(50_000, 2_000_000)
        p = d / f"img{i:06d}.jpg"
        p.write_bytes(os.urandom(size))
        files.append(p)
        total += size
        i += 1
    text = media / "text"
    text.mkdir(parents=True, exist_ok=True)
    for j in range(texts):
        p = text / f"note{j:05d}.txt"
        p.write_text(f"note {j}\n" + "lorem ipsum dolor sit amet " * rng.randint(1, 40))
        files.append(p)
    return files


def change_one_percent(files: list[Path], rng: random.Random) -> int:
    changed = 0
    for p in rng.sample(files, max(1, len(files) // 100)):
        size = p.stat().st_size
        p.write_bytes(os.urandom(size))
        changed += size
    return changed


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Snapkeep:
    """snapkeep from the installed package, or from a source tree (A/B mode). Its config
    and state live in ``home`` and are moved into the app only while one of its commands
    runs, so that two trees can take turns on the same app."""

    STATE = ("snapkeep.toml", ".snapkeep")

    def __init__(self, work: Path, app: Path, name: str = "snapkeep",
                 tree: Path | None = None) -> None:
        self.name, self.app = name, app
        self.home = work / f"{name}-home"
        self.repo = work / f"{name}-repo"
        self.env = tree_env(tree, ENV) if tree else ENV
        self.sk = [sys.executable, "-m", "snapkeep"]
        compile_tree(self.env)

    @contextmanager
    def _in_app(self) -> Iterator[None]:
        for n in self.STATE:
            if (self.home / n).exists():
                (self.home / n).rename(self.app / n)
        try:
            yield
        finally:
            self.home.mkdir(parents=True, exist_ok=True)
            for n in self.STATE:
                if (self.app / n).exists():
                    (self.app / n).rename(self.home / n)

    def fresh(self) -> None:
        for p in (self.home, self.repo):
            shutil.rmtree(p, ignore_errors=True)
        with self._in_app():
            timed([*self.sk, "init", "--project-id", "bench", "-e", "main", "--mount",
                   "pub/media"], self.app, self.env)
            cfg = self.app / "snapkeep.toml"
            cfg.write_text(re.sub(r"(?m)^# repository = .*$", f'repository = "{self.repo}"',
                                  cfg.read_text()))
            shutil.rmtree(self.app / ".snapkeep" / "repository", ignore_errors=True)
            timed([*self.sk, "init"], self.app, self.env)

    def backup(self) -> Timed:
        with self._in_app():
            return timed([*self.sk, "snapshot:create", "--live", "-e", "main"], self.app,
                         self.env)

    def restore(self, target: Path) -> Timed:
        # snapkeep restores in place (staging + swap): restore into the app itself.
        with self._in_app():
            return timed([*self.sk, "snapshot:restore", "--yes", "-e", "main"], self.app,
                         self.env)

    def restore_empty(self, target: Path) -> Timed:
        """A restore with the mount directory removed first (untimed): nothing to delete."""
        shutil.rmtree(self.app / "pub" / "media")
        return self.restore(target)


def compile_tree(env: dict[str, str]) -> None:
    """Write the .pyc files of the snapkeep that ``env`` imports (untimed)."""
    probe = "import snapkeep, os; print(os.path.dirname(snapkeep.__file__))"
    pkg = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", pkg], env=env, check=True)


class Restic:
    name = "restic"

    def __init__(self, work: Path, app: Path) -> None:
        self.app, self.repo = app, work / "restic-repo"

    def fresh(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)
        timed(["restic", "init", "--repo", str(self.repo)], env=ENV)

    def backup(self) -> Timed:
        return timed(["restic", "--repo", str(self.repo), "backup", "--quiet", "pub/media"],
                     self.app, ENV)

    def restore(self, target: Path) -> Timed:
        return timed(["restic", "--repo", str(self.repo), "restore", "latest", "--target",
                      str(target)], env=ENV)

    restore_empty = restore  # its target is always empty


class Borg:
    name = "borg"

    def __init__(self, work: Path, app: Path) -> None:
        self.app, self.repo, self.n = app, work / "borg-repo", 0

    def fresh(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)
        timed(["borg", "init", "--encryption=repokey", str(self.repo)], env=ENV)

    def backup(self) -> Timed:
        self.n += 1
        return timed(["borg", "create", "--compression", "zstd,3",
                      f"{self.repo}::s{self.n}", "pub/media"], self.app, ENV)

    def restore(self, target: Path) -> Timed:
        target.mkdir(parents=True, exist_ok=True)
        return timed(["borg", "extract", f"{self.repo}::s{self.n}"], target, ENV)

    restore_empty = restore  # its target is always empty


Tool = Snapkeep | Restic | Borg


def backups(key: str, order: list[Tool], media: Path, samples: Samples) -> None:
    """One timed backup per tool (cache warmed first), and the bytes it added."""
    for t in order:
        before = du(t.repo)
        warm([media])
        r = t.backup()
        samples.add(t.name, key, r.seconds)
        samples.add(t.name, f"added_{key}", du(t.repo) - before)
        if key == "first":
            samples.add(t.name, "rss_first", r.rss)


def one_round(n: int, tools: list[Tool], work: Path, files: list[Path], media: Path,
              samples: Samples, rng: random.Random) -> None:
    order = round_order(tools, n)
    for t in order:
        t.fresh()
    backups("first", order, media, samples)
    backups("unchanged", order, media, samples)
    samples.add("data", "changed_bytes", change_one_percent(files, rng))
    backups("changed", order, media, samples)
    for t in order:
        target = work / f"restore-{t.name}"
        warm([media, t.repo])
        r = t.restore(target)
        samples.add(t.name, "restore", r.seconds)
        samples.add(t.name, "rss_restore", r.rss)
        shutil.rmtree(target, ignore_errors=True)
        warm([t.repo])
        samples.add(t.name, "restore_empty", t.restore_empty(target).seconds)
        shutil.rmtree(target, ignore_errors=True)
        samples.add(t.name, "size", du(t.repo))
    print(f"round {n} (order {', '.join(t.name for t in order)}): " + "; ".join(
        f"{t.name} {samples.values[(t.name, 'first')][-1]:.2f} / "
        f"{samples.values[(t.name, 'unchanged')][-1]:.2f} / "
        f"{samples.values[(t.name, 'changed')][-1]:.2f} / "
        f"{samples.values[(t.name, 'restore')][-1]:.2f} / "
        f"{samples.values[(t.name, 'restore_empty')][-1]:.2f} s" for t in tools), flush=True)


def half_size_rss(work: Path, app: Path, tools: list[Snapkeep]) -> dict[str, int]:
    """Peak RSS of each snapkeep's first snapshot of ``app`` into a fresh repository."""
    rss: dict[str, int] = {}
    for t in tools:
        probe = Snapkeep(work / "rss", app, t.name)
        probe.env = t.env
        probe.fresh()
        rss[t.name] = probe.backup().rss
        shutil.rmtree(work / "rss")
    return rss


def report(samples: Samples, names: list[str], gib: float, rss_half: dict[str, int],
           ab: bool) -> None:
    for name in rss_half:
        first = samples.median(name, "added_first")
        print(f"{name}: unchanged re-run added "
              f"{100 * samples.median(name, 'added_unchanged') / first:.3f} % of the first "
              f"snapshot; 1 % re-run added {samples.cell(name, 'added_changed', MIB, 1)} MiB "
              f"for {samples.cell('data', 'changed_bytes', MIB, 2)} MiB of changed files; "
              f"peak RSS {rss_half[name] / MIB:.0f} MiB at {gib / 2:.2f} GiB, "
              f"{samples.cell(name, 'rss_first', MIB, 0)} MiB at {gib:.2f} GiB")
    columns = list(reversed(names)) if ab else names
    title = ("NEW vs OLD, median (min–max) of the rounds; ratio = NEW / OLD" if ab else
             "median (min–max) of the rounds; ratios = snapkeep / tool, from the medians")
    print_table(samples, ROWS, columns, title)


def main() -> int:
    args = media_arguments(__doc__ or "", runs=3, workdir="/tmp/snapkeep-bench").parse_args()
    versions = {"restic": ["restic", "version"], "borg": ["borg", "--version"]}
    print_header({} if args.trees else versions,
                 [f"rounds: {args.runs}; order alternated per round"])
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    app = work / "app"
    rng = random.Random(7)
    if args.trees:
        sks = [Snapkeep(work, app, label, tree)
               for label, tree in zip(check_trees(args.trees), args.trees, strict=True)]
    else:
        sks = [Snapkeep(work, app)]

    media = app / "pub" / "media"
    files = generate(media / "catalog", args.gib / 2, rng, 2500)
    rss_half = half_size_rss(work, app, sks)
    files += generate(media / "more", args.gib / 2, rng, 2500)
    print(f"data: {du(media) / 2**30:.2f} GiB in {sum(1 for _ in media.rglob('*'))} entries",
          flush=True)

    tools: list[Tool] = list(sks)
    if not args.trees:
        tools += [t(work, app) for t, exe in ((Restic, "restic"), (Borg, "borg"))
                  if shutil.which(exe)]
    samples = Samples()
    for n in range(1, args.runs + 1):
        one_round(n, tools, work, files, media, samples, rng)
    report(samples, [t.name for t in tools], args.gib, rss_half, bool(args.trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
