"""A restore run as a child process (``python -c RESTORE repo desc.json port db then``),
so a test can kill it at a chosen point; ``then`` is ``finish`` or ``rollback``."""

from __future__ import annotations

import textwrap

RESTORE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from snapkeep.engines.mysql import MySQLTarget, prepare_restore
    from snapkeep.progress import NullReporter
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend

    repo_dir, desc_file, port, db, then = sys.argv[1:]
    target = MySQLTarget("127.0.0.1", int(port), "root", None, db)
    repo = Repository.open(LocalBackend(repo_dir))
    p = prepare_restore(target, json.loads(Path(desc_file).read_text()), repo,
                        NullReporter(), threads=2)
    p.swap()
    if then == "rollback":
        p.rollback()
    else:
        p.finish()
""")
