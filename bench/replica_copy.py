"""Copying snapshots to a second repository: `snapkeep snapshot:copy` against `restic copy`.

    .venv/bin/python bench/replica_copy.py [--gib 1.0] [--runs 3] [--workdir /tmp/snapkeep-copy]

The data is the media tree of bench/media.py (random-byte "images" and small text files,
``--gib`` in all); the issue's 1 GiB bench shop database is not generated here (a copy
moves chunks, whatever they hold). Each round, both tools get a fresh primary holding one
snapshot of it and a fresh, empty second repository on the same disk, then:

- ``first copy``: the snapshot copied to the empty second repository
  (snapkeep: ``replica:init`` untimed, then ``snapshot:copy ID --to offsite``, which
  decrypts, re-encrypts under the replica's own key, reads back what it wrote, then lists
  it; restic: ``init --from-repo P --copy-chunker-params`` untimed, then
  ``copy --from-repo P``, which decrypts and re-encrypts under the second repository's key);
- ``1 % changed copy``: 1 % of the files rewritten, a second snapshot taken (untimed),
  and copied the same way; its ratio to the first copy is printed too (the issue: ≤ 0.1).

Tools alternate their order per round; the primary repository is read fully right before
each timed copy (a warm page cache for both). Medians of ``--runs`` rounds with their
spread; ratios are medians over medians. Not part of the test suite.
"""

from __future__ import annotations

import random
import shutil
import sys
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
from media import ENV, Restic, Snapkeep, change_one_percent, du, generate

ROWS = [Row("first copy (s)", "first"), Row("1 % changed copy (s)", "changed"),
        Row("1 % changed / first copy", "changed_ratio", 1.0, 3),
        Row("second repository (MiB)", "size", 2**20, 1)]


class SnapkeepCopy(Snapkeep):
    """snapkeep with a replica ``offsite`` in a directory beside its primary."""

    def __init__(self, work: Path, app: Path) -> None:
        super().__init__(work, app)
        self.second = work / "snapkeep-replica"

    def fresh(self) -> None:
        shutil.rmtree(self.second, ignore_errors=True)
        super().fresh()
        with self._in_app():
            cfg = self.app / "snapkeep.toml"
            cfg.write_text(cfg.read_text() + f'\n[replicas.offsite]\nlocation = "{self.second}"\n')
            timed([*self.sk, "replica:init", "offsite"], self.app, self.env)

    def copy(self) -> Timed:
        with self._in_app():
            return timed([*self.sk, "snapshot:copy", "--all", "--to", "offsite", "-e", "main"],
                         self.app, self.env)


class ResticCopy(Restic):
    def __init__(self, work: Path, app: Path) -> None:
        super().__init__(work, app)
        self.second = work / "restic-second"

    def fresh(self) -> None:
        super().fresh()
        shutil.rmtree(self.second, ignore_errors=True)
        timed(["restic", "init", "--repo", str(self.second), "--from-repo", str(self.repo),
               "--copy-chunker-params"], env={**ENV, "RESTIC_FROM_PASSWORD": "bench"})

    def copy(self) -> Timed:
        return timed(["restic", "--repo", str(self.second), "copy", "--from-repo",
                      str(self.repo)], env={**ENV, "RESTIC_FROM_PASSWORD": "bench"})


Tool = SnapkeepCopy | ResticCopy


def one_round(n: int, tools: list[Tool], files: list[Path], media: Path, samples: Samples,
              rng: random.Random) -> None:
    order = round_order(tools, n)
    for t in order:
        t.fresh()
        t.backup()
    for t in order:
        warm([t.repo])
        samples.add(t.name, "first", t.copy().seconds)
    change_one_percent(files, rng)
    for t in order:
        t.backup()
    for t in order:
        warm([t.repo])
        samples.add(t.name, "changed", t.copy().seconds)
        samples.add(t.name, "size", du(t.second))
    for t in tools:
        first, changed = samples.values[(t.name, "first")][-1], \
            samples.values[(t.name, "changed")][-1]
        samples.add(t.name, "changed_ratio", changed / first)
    print(f"round {n}: " + ", ".join(
        f"{t.name} first {samples.values[(t.name, 'first')][-1]:.2f} s, changed "
        f"{samples.values[(t.name, 'changed')][-1]:.2f} s" for t in order), flush=True)


def main() -> int:
    args = media_arguments(__doc__ or "", runs=3, workdir="/tmp/snapkeep-copy").parse_args()
    if args.trees:
        raise SystemExit("bench/replica_copy.py has no A/B mode")
    if not shutil.which("restic"):
        raise SystemExit("restic is not installed: it is this bench's reference")
    print_header({"restic": ["restic", "version"]},
                 [f"rounds: {args.runs}; order alternated per round; both second "
                  "repositories on the same local disk as the primaries"])
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    app = work / "app"
    rng = random.Random(11)
    media = app / "pub" / "media"
    files = generate(media / "catalog", args.gib, rng, 5000)
    print(f"data: {du(media) / 2**30:.2f} GiB in {sum(1 for _ in media.rglob('*'))} entries",
          flush=True)
    tools: list[Tool] = [SnapkeepCopy(work, app), ResticCopy(work, app)]
    samples = Samples()
    for n in range(1, args.runs + 1):
        one_round(n, tools, files, media, samples, rng)
    print_table(samples, ROWS, [t.name for t in tools],
                f"snapshot copy of {args.gib:g} GiB of media, median (min–max) of {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
