"""Mount snapshots against restic and borg on the same files, in one run.

    .venv/bin/python bench/media.py [--gib 1.0] [--workdir /tmp/snapkeep-bench]

Generates a media tree (random-byte "images" of 50 KB–2 MB, about 2,000 per GiB, plus 5,000
small text files), then for snapkeep, restic and borg (Debian packages `restic`,
`borgbackup`; skipped if missing) measures: first snapshot, unchanged re-run, re-run after
changing 1 % of the files, restore; repository size and bytes each re-run added; peak RSS
of snapkeep's first snapshot at half and full size. Prints figures and ratios.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "RESTIC_PASSWORD": "bench", "BORG_PASSPHRASE": "bench",
       "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "SNAPKEEP_DEBUG": "1"}
for k in [k for k in ENV if k.startswith("SNAPKEEP_") and k != "SNAPKEEP_DEBUG"]:
    del ENV[k]


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


def run(cmd: list[str], cwd: Path | None = None) -> float:
    # Each measurement starts with no dirty pages left by the previous one: snapkeep syncs
    # before its restore cut-over, and would otherwise wait for the other tools' writes.
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - t


def peak_rss_mib(cmd: list[str], cwd: Path) -> float:
    wrapper = ("import resource,subprocess,sys;"
               "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,"
               "stderr=subprocess.DEVNULL);"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=cwd, env=ENV, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip()) / 1024


class Snapkeep:
    name = "snapkeep"

    def __init__(self, work: Path, app: Path) -> None:
        self.app = app
        self.repo = work / "snapkeep-repo"
        self.sk = [sys.executable, "-m", "snapkeep"]

    def setup(self) -> None:
        subprocess.run([*self.sk, "init", "--project-id", "bench", "-e", "main",
                        "--mount", "pub/media"], cwd=self.app, env=ENV, check=True,
                       capture_output=True)
        cfg = self.app / "snapkeep.toml"
        cfg.write_text(re.sub(r"(?m)^# repository = .*$", f'repository = "{self.repo}"',
                              cfg.read_text()))
        shutil.rmtree(self.app / ".snapkeep" / "repository", ignore_errors=True)
        subprocess.run([*self.sk, "init"], cwd=self.app, env=ENV, check=True,
                       capture_output=True)

    def backup(self) -> float:
        return run([*self.sk, "snapshot:create", "--live", "-e", "main"], self.app)

    def restore(self, target: Path) -> float:
        # snapkeep restores in place (staging + swap): restore into the app itself.
        return run([*self.sk, "snapshot:restore", "--yes", "-e", "main"], self.app)


class Restic:
    name = "restic"

    def __init__(self, work: Path, app: Path) -> None:
        self.app, self.repo = app, work / "restic-repo"

    def setup(self) -> None:
        run(["restic", "init", "--repo", str(self.repo)])

    def backup(self) -> float:
        return run(["restic", "--repo", str(self.repo), "backup", "--quiet", "pub/media"],
                   self.app)

    def restore(self, target: Path) -> float:
        return run(["restic", "--repo", str(self.repo), "restore", "latest", "--target",
                    str(target)])


class Borg:
    name = "borg"

    def __init__(self, work: Path, app: Path) -> None:
        self.app, self.repo, self.n = app, work / "borg-repo", 0

    def setup(self) -> None:
        run(["borg", "init", "--encryption=repokey", str(self.repo)])

    def backup(self) -> float:
        self.n += 1
        return run(["borg", "create", "--compression", "zstd,3",
                    f"{self.repo}::s{self.n}", "pub/media"], self.app)

    def restore(self, target: Path) -> float:
        target.mkdir(parents=True, exist_ok=True)
        return run(["borg", "extract", f"{self.repo}::s{self.n}"], target)


def first_snapshot_rss(work: Path, app: Path) -> float:
    """Peak RSS (MiB) of snapkeep's first snapshot of ``app`` into a fresh repository."""
    tool = Snapkeep(work / "rss", app)
    (work / "rss").mkdir(parents=True)
    tool.setup()
    rss = peak_rss_mib([*tool.sk, "snapshot:create", "--live", "-e", "main"], app)
    for p in (app / "snapkeep.toml", app / ".snapkeep", work / "rss"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return rss


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--workdir", default="/tmp/snapkeep-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    app = work / "app"
    rng = random.Random(7)

    # Peak RSS of a first snapshot at half size, then at full size: it must not grow.
    files = generate(app / "pub" / "media" / "catalog", args.gib / 2, rng, 2500)
    rss_half = first_snapshot_rss(work, app)
    files += generate(app / "pub" / "media" / "more", args.gib / 2, rng, 2500)
    rss_full = first_snapshot_rss(work, app)
    data_bytes = du(app / "pub" / "media")
    entries = sum(1 for _ in (app / "pub" / "media").rglob("*"))
    print(f"data: {data_bytes / 2**30:.2f} GiB in {entries} entries")

    tools = [Snapkeep(work, app)]
    tools += [t(work, app) for t, exe in ((Restic, "restic"), (Borg, "borg"))
              if shutil.which(exe)]
    for t in tools:
        t.setup()
    results: dict[str, dict[str, float]] = {t.name: {} for t in tools}
    for t in tools:
        results[t.name]["first"] = t.backup()
        results[t.name]["size1"] = du(t.repo)
    for t in tools:
        results[t.name]["unchanged"] = t.backup()
        results[t.name]["added_unchanged"] = du(t.repo) - results[t.name]["size1"]
    changed = change_one_percent(files, rng)
    for t in tools:
        before = du(t.repo)
        results[t.name]["changed"] = t.backup()
        results[t.name]["added_changed"] = du(t.repo) - before
    for t in tools:
        target = work / f"restore-{t.name}"
        results[t.name]["restore"] = t.restore(target)
        shutil.rmtree(target, ignore_errors=True)
        results[t.name]["size"] = du(t.repo)

    names = [t.name for t in tools]
    print(f"\n{'':28}" + "".join(f"{n:>12}" for n in names) +
          "".join(f"{'sk/' + n:>12}" for n in names[1:]))
    rows = [("first snapshot (s)", "first"), ("unchanged re-run (s)", "unchanged"),
            ("1% changed re-run (s)", "changed"), ("restore (s)", "restore")]
    for label, key in rows:
        vals = [results[n][key] for n in names]
        print(f"{label:28}" + "".join(f"{v:12.2f}" for v in vals) +
              "".join(f"{vals[0] / v:12.2f}" for v in vals[1:]))
    for label, key in (("repository (MiB)", "size"),
                       ("added, unchanged (MiB)", "added_unchanged"),
                       ("added, 1% changed (MiB)", "added_changed")):
        vals = [results[n][key] / 2**20 for n in names]
        print(f"{label:28}" + "".join(f"{v:12.1f}" for v in vals) +
              "".join(f"{(vals[0] / v if v else 0):12.2f}" for v in vals[1:]))
    first = results["snapkeep"]["size1"]
    sk = results["snapkeep"]
    print(f"\nsnapkeep: unchanged re-run added {100 * sk['added_unchanged'] / first:.3f} % of "
          f"the first snapshot; 1 % re-run added {sk['added_changed'] / 2**20:.1f} MiB for "
          f"{changed / 2**20:.1f} MiB of changed files")
    print(f"snapkeep peak RSS: {rss_half:.0f} MiB at {args.gib / 2:.2f} GiB, "
          f"{rss_full:.0f} MiB at {args.gib:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
