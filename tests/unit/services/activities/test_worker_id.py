"""The persistent worker ID: made once per state directory, kept across restarts, and
different for two state directories on one host (containers sharing a hostname)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from snapkeep.config import load_config
from snapkeep.services.activities import lease
from snapkeep.services.context import Context

TOML = ('[project]\nid = "shop"\nplan = "starter"\n\n'
        '[environments.dev]\nroot = "dev"\nmounts = ["data"]\n')


def context(d: Path) -> Context:
    d.mkdir()
    (d / "snapkeep.toml").write_text(TOML)
    return Context(load_config(str(d / "snapkeep.toml")))


def test_each_state_directory_has_its_own_persistent_worker_id(tmp_path):
    a, b = context(tmp_path / "a"), context(tmp_path / "b")
    wid = lease.machine_id(a)
    assert wid.startswith(socket.gethostname() + "/") and wid != lease.machine_id(b)
    assert (tmp_path / "a" / ".snapkeep" / "worker-id").read_text().strip() == wid
    # another process (a restart) reads the same ID
    code = ("import sys; from snapkeep.services.context import Context; "
            "from snapkeep.services.activities import lease; "
            "print(lease.machine_id(Context.load(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a" / "snapkeep.toml")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == wid
    me = lease.worker_id(a, 3)
    assert me == f"{wid}:{os.getpid()}:3"
    assert lease.parse_worker(me) == (wid, os.getpid())
    assert lease.worker_host(wid) == socket.gethostname()
    assert lease.runs_here(a, me) and not lease.runs_here(b, me)
    # a row written before persistent IDs (host:pid:n) is never judged by its pid
    assert not lease.runs_here(a, f"{socket.gethostname()}:{os.getpid()}:0")
