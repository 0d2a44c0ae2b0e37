"""The restore cut-over journal: what a killed restore was swapping, so the next command
can settle it — everything back to the previous data, or (once every part was swapped
in) everything kept new. Never a mix of old and new.

``.snapkeep/journal/<env>.json`` is written before the first swap, marked ``swapped`` when
the last swap returned (the commit point of a restore), and removed after ``finish``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from snapkeep.engines import volumes
from snapkeep.services.context import Context

CUTOVER, SWAPPED = "cutover", "swapped"


class CutoverJournal:
    def __init__(self, ctx: Context, environment: str) -> None:
        self.path = ctx.state_path("journal", f"{environment}.json")

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # torn write of the journal itself: nothing was swapped yet

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def begin(self, snapshot_id: str, mounts: list[dict[str, Any]]) -> None:
        self._write({"snapshot": snapshot_id, "phase": CUTOVER, "mounts": mounts})

    def mark_swapped(self) -> None:
        data = self.read() or {}
        data["phase"] = SWAPPED
        self._write(data)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def recover(ctx: Context, environment: str, log: Callable[[str], None]) -> bool:
    """Settle the cut-over a killed restore left; True if there was one."""
    journal = CutoverJournal(ctx, environment)
    data = journal.read()
    if data is None:
        return False
    keep_new = data.get("phase") == SWAPPED
    for record in data.get("mounts", []):
        volumes.recover_cutover(record, keep_new=keep_new)
    log(f"An interrupted restore of snapshot {data.get('snapshot')} was "
        f"{'completed' if keep_new else 'rolled back'} for the mounts.")
    journal.clear()
    return True
