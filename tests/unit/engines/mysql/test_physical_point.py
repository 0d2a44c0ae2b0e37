"""What a physical snapshot reads of mariadb-backup's copy at its BLOCK_COMMIT point, and
the check that its pages and its logical part are of one binlog position
(docs/physical.md, Consistency)."""

from __future__ import annotations

from snapkeep.engines.mysql.physical_dump import _one_point
from snapkeep.engines.mysql.physical_point import COMMITS_BLOCKED, Backup, binlog_info, copied
from tests.helpers.recording import Recorder


def test_binlog_info_is_read_from_either_file_name(tmp_path):
    assert binlog_info(tmp_path) is None  # log_bin off: no file
    (tmp_path / "xtrabackup_binlog_info").write_text("mysql-bin.000003\t4711\t0-1-42\n")
    assert binlog_info(tmp_path) == {"file": "mysql-bin.000003", "position": 4711,
                                     "gtid": "0-1-42"}
    (tmp_path / "mariadb_backup_binlog_info").write_text("mysql-bin.000004\t5\n")
    assert binlog_info(tmp_path) == {"file": "mysql-bin.000004", "position": 5, "gtid": ""}


def test_copied_counts_a_recopy_and_not_a_deleted_tablespace(tmp_path):
    (tmp_path / "a.ibd").write_bytes(b"")
    (tmp_path / "b.new").write_bytes(b"")
    (tmp_path / "c.ibd").write_bytes(b"")
    (tmp_path / "c.del").write_bytes(b"")
    assert [copied(tmp_path, f) for f in "abcd"] == [True, True, False, False]


def test_one_point_keeps_an_equal_position_and_drops_a_different_one():
    pages = {"file": "mysql-bin.000003", "position": 4711, "gtid": "0-1-42"}
    same = {"binlog": {"file": "mysql-bin.000003", "position": 4711, "gtid": "0-1-42",
                       "method": "binlog_snapshot"}}
    log = Recorder()
    _one_point(same, pages, log)
    assert same["binlog"]["position"] == 4711 and same["pages_binlog"] == pages
    assert not log.lines
    other = {"binlog": {**same["binlog"], "position": 9000}}
    _one_point(other, pages, log)
    assert "binlog" not in other and other["pages_binlog"] == pages
    assert "cannot be the base of a point-in-time restore" in log.lines[0]


def test_a_line_watcher_that_raises_is_dropped_and_the_stop_still_holds():
    """``Backup`` hands each output line to ``on_line`` (storing ahead): should that raise,
    it is called no more, and mariadb-backup is still stopped at its BLOCK_COMMIT line."""
    seen: list[str] = []

    def watcher(line: str) -> None:
        seen.append(line.strip())
        raise RuntimeError("a watcher's bug")

    # the sleep: still running when its stop line is read (a stop, not an end)
    script = (f'echo copying >&2; echo "[00] {COMMITS_BLOCKED}" >&2; sleep 2; '
              "echo after >&2")
    backup = Backup(["sh", "-c", script], "mariadb-backup --backup", "a test", watcher)
    try:
        with backup.hold(COMMITS_BLOCKED):
            assert backup.proc.poll() is None  # stopped there, not ended
        backup.finish()
    finally:
        backup.close()
    assert seen == ["copying"]
