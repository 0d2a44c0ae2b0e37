"""Binary-log archiving: the server's binlog streamed into the repository in segments
committed every ``interval`` seconds (docs/pitr.md).

Where it goes on: after the last record of the archive — a segment's file and end offset,
or a gap's next file — else at the start of the oldest binlog the server has. Segments are
whole events of one file, so a follower killed at any point (its open segment not
committed: nothing of it is recorded) or a server restarted resumes exactly at the first
event not archived: no gap, no event twice. A file the archive needs next that the server
has purged is a gap: recorded, reported, and the archive goes on at the oldest file left.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engines.mysql.binlog_checks import require_binlog
from snapkeep.engines.mysql.binlog_stream import (
    BinlogStream,
    Event,
    StreamError,
    binary_logs,
)
from snapkeep.engines.mysql.connect import DRIVER_ERRORS
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.seams import BinlogSink, SegmentWrite
from snapkeep.errors import BusyError, ServiceUnavailable
from snapkeep.progress import Reporter

DEFAULT_INTERVAL = 2.0
# A segment's events are kept in memory and stored at its commit, so the repository's
# shared lock is held only while one is stored (prune gets its turn in between); a
# segment is committed earlier when this much has come in.
MAX_SEGMENT_BYTES = 16 << 20
RETRY_SECONDS = 1.0  # between reconnection attempts (server restarted, network)
# what ends one connection's stream and is retried: a server restart, the network, a
# prune holding the repository (the server keeps the events meanwhile)
_RETRIED: tuple[type[BaseException], ...] = (ServiceUnavailable, BusyError, OSError,
                                             *DRIVER_ERRORS)


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class _Open:
    """The segment being received."""

    file: str
    start: int
    opened: float
    end: int = 0
    size: int = 0
    events: int = 0
    first_time: int | None = None
    last_time: int | None = None
    gtids: list[str] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)

    def add(self, ev: Event) -> None:
        self.data += ev.data
        self.end = ev.end
        self.size += len(ev.data)
        self.events += 1
        if ev.timestamp:
            # the latest, not the last: events a replay re-logs keep their old timestamps
            self.first_time = self.first_time or ev.timestamp
            self.last_time = max(self.last_time or 0, ev.timestamp)
        if ev.gtid:
            if not self.gtids:
                self.gtids.append(ev.gtid)
            self.gtids[1:] = [ev.gtid]

    def fields(self) -> dict[str, Any]:
        return {"file": self.file, "start": self.start, "end": self.end,
                "events": self.events,
                "first_time": _iso(self.first_time) if self.first_time else None,
                "last_time": _iso(self.last_time) if self.last_time else None,
                "gtid_first": self.gtids[0] if self.gtids else None,
                "gtid_last": self.gtids[-1] if self.gtids else None}


class Follower:
    """Archives ``target``'s binlog into ``sink`` until ``stop`` is set."""

    def __init__(self, target: MySQLTarget, sink: BinlogSink, reporter: Reporter, *,
                 server_id: int, interval: float = DEFAULT_INTERVAL,
                 stop: threading.Event | None = None) -> None:
        self.target, self.sink, self.reporter = target, sink, reporter
        self.server_id, self.interval = server_id, interval
        self.stop = stop or threading.Event()
        self.segments = 0  # committed by this follower

    def run(self) -> None:
        require_binlog(self.target)
        while not self.stop.is_set():
            try:
                self._follow_once()
            except StreamError:
                raise  # not what the file holds: retrying would archive it again
            except _RETRIED as e:
                if self.stop.is_set():
                    return
                self.reporter.log(f"binlog stream interrupted ({e}); reconnecting")
                self.stop.wait(RETRY_SECONDS)

    def start_position(self) -> tuple[str, int]:
        """Where the archive goes on; a purged file recorded as a gap first."""
        files = [name for name, _size in binary_logs(self.target)]
        if not files:
            raise ServiceUnavailable(f"{self.target.describe()} lists no binary logs")
        last = self.sink.last()
        if last is None:
            return files[0], 4
        if last.kind == "gap":
            file, pos = str(last.data["next_file"]), 4
        else:
            file, pos = last.file, last.end
        if file in files:
            return file, pos
        self.sink.record_gap({"file": file, "start": pos, "next_file": files[0]})
        self.reporter.log(
            f"binlogs purged on the server before they were archived: events from "
            f"{file}:{pos} to the start of {files[0]} are lost; the recoverable window now "
            f"starts at the next snapshot")
        return files[0], 4

    def _follow_once(self) -> None:
        file, pos = self.start_position()
        stream = BinlogStream(self.target, file, pos, server_id=self.server_id,
                              heartbeat=max(0.5, self.interval / 2))
        self.reporter.log(f"following the binlog of {self.target.describe()} from "
                          f"{file}:{pos}")
        seg: _Open | None = None
        try:
            for item in stream.events():
                if seg is not None and item.file != seg.file:
                    done, seg = seg, None
                    self._commit(done)  # a segment holds one file
                if isinstance(item, Event):
                    if seg is None:
                        seg = _Open(item.file, item.start, time.monotonic())
                    seg.add(item)
                if seg is not None and (time.monotonic() - seg.opened >= self.interval
                                        or seg.size >= MAX_SEGMENT_BYTES):
                    done, seg = seg, None
                    self._commit(done)
                if self.stop.is_set():
                    break
        finally:
            stream.close()
            if seg is not None:  # whole events only: what came in is archived
                self._commit(seg)

    def _commit(self, seg: _Open) -> None:
        """Store the segment's bytes, then its record (``BinlogSink``: after the data is
        durable), under the repository's shared lock for just that long."""
        writer: SegmentWrite = self.sink.begin_segment()
        try:
            writer.write(memoryview(seg.data))
        except BaseException:
            writer.abort()
            raise
        writer.commit(seg.fields())
        self.segments += 1
