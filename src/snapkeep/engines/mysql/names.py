"""Names of the helper databases a restore uses next to the live one.

``<db>__skshadow_<h>`` receives the snapshot's tables; ``<db>__skold_<h>`` keeps the
previous tables after the swap until the restore is finished; ``<db>__skjournal_<h>``
holds the cut-over journal (see ``journal.py``) from just before the swap until the
restore is finished or rolled back. ``<h>`` is a hash of the
full database name, so the names stay unique and within MariaDB's 64-character limit
when ``<db>`` has to be shortened, and ``cleanup_leftovers`` can find them exactly.
"""

from __future__ import annotations

import hashlib

MAX_IDENT = 64
SHADOW = "skshadow"
OLD = "skold"
JOURNAL = "skjournal"
IMPORT = "skimport"  # the scratch database an import loads a SQL file into


def _helper_name(database: str, kind: str) -> str:
    digest = hashlib.sha256(database.encode("utf-8")).hexdigest()[:8]
    suffix = f"__{kind}_{digest}"
    return database[: MAX_IDENT - len(suffix)] + suffix


def shadow_name(database: str) -> str:
    return _helper_name(database, SHADOW)


def old_name(database: str) -> str:
    return _helper_name(database, OLD)


def journal_name(database: str) -> str:
    return _helper_name(database, JOURNAL)


def import_name(database: str) -> str:
    """``<db>__skimport_<h>``: where an import loads a SQL file before snapshotting it."""
    return _helper_name(database, IMPORT)


DRILL = "skdrill"  # the scratch database a restore drill restores into
# A drill's scratch database is restored like a live one, with its own shadow, old and
# journal helpers (``<scratch>__skshadow_<h>``, 20 characters more at most): its name is
# kept short enough that theirs stay whole, so cleaning up by prefix finds them all.
_DRILL_MAX = MAX_IDENT - len(f"__{JOURNAL}_") - 8


def drill_name(database: str, token: str) -> str:
    """``<db>__skdrill_<token>``: where a restore drill of ``database`` restores into
    (``<db>`` shortened so the name and its restore helpers fit MariaDB's limit)."""
    suffix = f"__{DRILL}_{token}"
    return database[: _DRILL_MAX - len(suffix)] + suffix
