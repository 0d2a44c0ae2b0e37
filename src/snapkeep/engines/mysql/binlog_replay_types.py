"""The replayer's contract (docs/pitr.md "Restore to a point in time").

Two implementations share it: ``binlog_replay_tool`` (the stock ``mariadb-binlog | mariadb``
baseline) and ``binlog_replay`` (the fast one); the restore calls either through::

    def replay(target: MySQLTarget, pieces: Iterable[ReplayPiece], *, start_file: str,
               start_position: int, source_db: str, into_db: str,
               tables: set[str] | None, stop: ReplayStop, reporter: Reporter,
               threads: int = 1) -> ReplayResult
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReplayStop:
    """Where the replay ends: before the first transaction whose event timestamp (whole
    seconds) is >= ``before_time``, or right after the transaction of ``after_gtid``."""

    before_time: datetime | None = None
    after_gtid: str | None = None


@dataclass(frozen=True)
class ReplayPiece:
    """A segment's bytes ``[start, end)`` of binlog ``file``, in archive (seq) order."""

    file: str
    start: int
    end: int
    read: Callable[[], Iterable[bytes]]


@dataclass
class ReplayResult:
    transactions: int
    events: int
    last_time: datetime | None
    last_gtid: str | None
    reached_stop: bool
