"""Source trees for A/B runs: ``--trees OLD/src NEW/src`` runs snapkeep from each.

A tree is a ``src`` directory (of a worktree or of ``git archive main | tar -x -C /tmp/old``);
it is put first on ``PYTHONPATH`` for every snapkeep process of that side. An archived tree
lacks the built row pump (``_rowpump``, a C extension): it is built in place from the tree's
own ``_rowpump.c``. Before anything is timed, each tree is checked to be the one imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

PUMP_DIR = Path("snapkeep") / "engines" / "mysql"
PROBE = ("import snapkeep, importlib.util as u; s = u.find_spec('snapkeep.engines.mysql._rowpump');"
         "print(snapkeep.__file__); print(s.origin if s else 'none')")


def tree_env(tree: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with ``tree`` first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    # absolute: the snapkeep processes run in other directories
    rest = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([str(tree.resolve()), *rest])
    return env


def _pkg_config(*args: str) -> list[str]:
    for cmd in (["pkg-config", *args, "libmariadb"], ["mariadb_config", *args]):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            continue
    return []


def build_pump(tree: Path) -> None:
    """Compile the tree's ``_rowpump.c`` next to it, as setup.py does (-O2 against the MariaDB
    client library), if the tree has the source but no built module."""
    pump = tree / PUMP_DIR
    source = pump / "_rowpump.c"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if not source.is_file() or (pump / f"_rowpump{suffix}").exists():
        return
    include = sysconfig.get_paths()["include"]
    cmd = ["gcc", "-shared", "-fPIC", "-O2", f"-I{include}", *_pkg_config("--cflags"),
           str(source), "-o", str(pump / f"_rowpump{suffix}"), *_pkg_config("--libs")]
    print(f"building {source} into the tree", flush=True)
    subprocess.run(cmd, check=True)


def check_trees(trees: list[Path]) -> list[str]:
    """Build each tree's row pump if needed, check that each tree's snapkeep (and pump) is
    the one imported with its PYTHONPATH, print them; return a label per tree (OLD and NEW
    for two trees, as given)."""
    for tree in trees:
        if not (tree / "snapkeep" / "__init__.py").is_file():
            raise SystemExit(f"{tree} has no snapkeep package: pass the src directory")
        build_pump(tree)
        out = subprocess.run([sys.executable, "-c", PROBE], env=tree_env(tree), check=True,
                             capture_output=True, text=True).stdout.split("\n")
        module, pump = out[0], out[1]
        for path in (module, pump):
            if path != "none" and not Path(path).resolve().is_relative_to(tree.resolve()):
                raise SystemExit(f"PYTHONPATH={tree} imports {path}, not the tree's own")
        print(f"tree {tree}: snapkeep.__file__ = {module}; _rowpump = {pump}", flush=True)
    return ["OLD", "NEW"] if len(trees) == 2 else [str(tree) for tree in trees]
