"""The volume tree's JSON-lines encoding: exact, stable, and refusing unsafe input."""

from __future__ import annotations

import io
import json

import pytest

from snapkeep.engines.volumes.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    cache_line,
    cache_lines,
    decode_entry,
    decode_tree,
    encode_entry,
    encode_tree,
)
from snapkeep.errors import IntegrityError
from snapkeep.repository.blobs import BlobRef

ROOT = Entry(b"", DIR, 0o755, 0, 0, 1_700_000_000_123_456_789, 0)


def _entries() -> list[Entry]:
    return [
        ROOT,
        Entry(b"a", DIR, 0o1777, 33, 33, 5, 0),
        Entry(b"a/big.bin", FILE, 0o4755, 33, 33, 6, 3,
              blob=BlobRef(3, (("ab" * 32, 2), ("cd" * 32, 1)))),
        Entry(b"a b", FILE, 0o600, 0, 0, 7, 0, blob=BlobRef(0, ())),
        Entry(b"latin1-\xe9", SYMLINK, 0o777, 0, 0, 8, 6, target=b"../\xff\xfe.x"),
        Entry(b"new\nline", SYMLINK, 0o777, 0, 0, 9, 11, target=b"/etc/passwd"),
        Entry(b"\xe2\x98\x83 snow", DIR, 0o555, 1, 2, 10, 0),
    ]


def _decode(data: bytes) -> list[Entry]:
    return list(decode_tree(io.BytesIO(data)))


def test_a_tree_decodes_to_exactly_the_entries_that_were_encoded():
    entries = _entries()
    assert sorted(_decode(encode_tree(entries)), key=lambda e: e.parts) == \
        sorted(entries, key=lambda e: e.parts)


def test_the_same_tree_always_encodes_to_the_same_bytes_whatever_the_input_order():
    entries = _entries()
    assert encode_tree(entries) == encode_tree(list(reversed(entries)))


def test_tree_order_keeps_a_directorys_contents_right_after_it():
    paths = [e.path for e in _decode(encode_tree(_entries()))]
    assert paths[:4] == [b"", b"a", b"a/big.bin", b"a b"]


def test_a_line_is_compact_sorted_ascii_json():
    line = encode_entry(Entry(b"\xe2\x98\x83", FILE, 0o644, 1, 2, 3, 0, blob=BlobRef(0, ())))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    obj = json.loads(line)
    assert list(obj) == sorted(obj)
    assert obj["path"] == "\u2603"
    assert b" " not in line


def test_names_that_are_not_utf8_are_stored_as_base64_and_come_back_byte_exact():
    entry = Entry(b"latin1-\xe9", SYMLINK, 0o777, 0, 0, 8, 6, target=b"../\xff\xfe.x")
    obj = json.loads(encode_entry(entry))
    assert "path" not in obj and "target" not in obj
    assert obj["path_b64"] and obj["target_b64"]
    assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize("path", ["../etc", "a/../../b", "/etc/passwd", "a//b", "./a", "a/.",
                                  "a\u0000b"])
def test_an_entry_with_an_unsafe_path_is_refused(path):
    line = json.dumps({"path": path, "type": "dir", "mode": 0o755, "uid": 0, "gid": 0,
                       "mtime_ns": 0, "size": 0}).encode()
    with pytest.raises(ValueError):
        decode_entry(line)


@pytest.mark.parametrize("change", [
    {"type": "socket"}, {"mode": 0o17777}, {"size": -1}, {"mode": "755"}, {"uid": True},
    {"path_b64": "***"},
])
def test_a_malformed_entry_is_refused(change):
    obj = {"path": "x", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime_ns": 0,
           "size": 0}
    obj.update(change)
    if "path_b64" in change:
        del obj["path"]
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


def test_a_file_whose_size_does_not_match_its_content_is_refused():
    line = encode_entry(Entry(b"f", FILE, 0o644, 0, 0, 0, 3, blob=BlobRef(3, (("aa", 3),))))
    obj = json.loads(line)
    obj["size"] = 4
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


def test_a_tree_without_its_root_first_is_damaged():
    data = encode_entry(Entry(b"a", DIR, 0o755, 0, 0, 0, 0))
    with pytest.raises(IntegrityError, match="mount root"):
        _decode(data)
    with pytest.raises(IntegrityError, match="empty"):
        _decode(b"")


def test_a_tree_out_of_order_or_with_duplicates_is_damaged():
    a = Entry(b"a", DIR, 0o755, 0, 0, 0, 0)
    b = Entry(b"b", DIR, 0o755, 0, 0, 0, 0)
    for lines in ([ROOT, b, a], [ROOT, a, a]):
        with pytest.raises(IntegrityError, match="out of order"):
            _decode(b"".join(encode_entry(e) for e in lines))


def test_an_entry_inside_something_that_is_not_a_listed_directory_is_damaged():
    f = Entry(b"f", FILE, 0o644, 0, 0, 0, 0, blob=BlobRef(0, ()))
    for lines in ([ROOT, f, Entry(b"f/x", DIR, 0o755, 0, 0, 0, 0)],
                  [ROOT, Entry(b"d/x", DIR, 0o755, 0, 0, 0, 0)]):
        with pytest.raises(IntegrityError, match="parent"):
            _decode(b"".join(encode_entry(e) for e in lines))


def test_a_garbled_line_is_damage_naming_its_line_number():
    with pytest.raises(IntegrityError, match="line 2"):
        _decode(encode_entry(ROOT) + b"{not json\n")


def test_a_file_entry_keeps_its_inode_and_ctime_and_other_types_never_carry_them():
    f = Entry(b"f", FILE, 0o644, 0, 0, 5, 0, blob=BlobRef(0, ()), ino=123, ctime_ns=-7)
    obj = json.loads(encode_entry(f))
    assert (obj["ino"], obj["ctime_ns"]) == (123, -7)
    assert decode_entry(encode_entry(f)) == f
    d = Entry(b"d", DIR, 0o755, 0, 0, 5, 0, ino=9, ctime_ns=9)
    assert "ino" not in json.loads(encode_entry(d))


def test_a_format_1_file_entry_decodes_without_cache_keys():
    line = encode_entry(Entry(b"f", FILE, 0o644, 0, 0, 5, 0, blob=BlobRef(0, ())))
    assert b"ino" not in line
    entry = decode_entry(line)
    assert entry.ino is None and entry.ctime_ns is None


@pytest.mark.parametrize("keys", [{"ino": -1, "ctime_ns": 0}, {"ino": "1", "ctime_ns": 0},
                                  {"ino": 1, "ctime_ns": True}, {"ino": 1}, {"ctime_ns": 1}])
def test_bad_cache_keys_are_refused(keys):
    obj = json.loads(encode_entry(Entry(b"f", FILE, 0o644, 0, 0, 5, 0, blob=BlobRef(0, ()))))
    obj.update(keys)
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


def _format_3_entries() -> list[Entry]:
    return [
        Entry(b"", DIR, 0o755, 0, 0, 1, 0, xattrs=(("system.posix_acl_default", b"\x02\0"),)),
        Entry(b"a", FILE, 0o644, 0, 0, 2, 10, blob=BlobRef(3, (("ab" * 32, 3),)),
              extents=((2, 1), (7, 2)), xattrs=(("user.a", b"\xff"), ("user.b", b""))),
        Entry(b"hole", FILE, 0o644, 0, 0, 3, 1 << 30, blob=BlobRef(0, ()), extents=()),
        Entry(b"pipe", FIFO, 0o640, 5, 6, 4, 0, xattrs=(("trusted.x", b"1"),)),
        Entry(b"z", HARDLINK, 0o644, 0, 0, 2, 10, link=b"a"),
        Entry(b"z\xe9", HARDLINK, 0o644, 0, 0, 2, 10, link=b"a"),
    ]


def test_format_3_entries_round_trip_exactly_and_canonically():
    entries = _format_3_entries()
    data = encode_tree(entries)
    assert _decode(data) == entries
    assert encode_tree(reversed(entries)) == data
    objs = [json.loads(line) for line in data.splitlines()]
    assert objs[0]["xattrs"] == {"system.posix_acl_default": "AgA="}
    assert objs[1]["extents"] == [[2, 1], [7, 2]] and list(objs[1]["xattrs"]) == \
        ["user.a", "user.b"]
    assert objs[2]["extents"] == [] and objs[2]["blob"]["size"] == 0
    assert objs[4]["link"] == "a" and "blob" not in objs[4] and "xattrs" not in objs[4]
    assert "extents" not in json.loads(encode_entry(ROOT))


@pytest.mark.parametrize("change", [
    {"extents": [[0, 1], [1, 2]]},  # touching: not the filesystem's extents
    {"extents": [[7, 2], [2, 1]]},  # out of order
    {"extents": [[2, 1], [7, 4]]},  # past the size
    {"extents": [[2, 0], [7, 3]]},  # empty
    {"extents": [[0, 10]]},  # no hole
    {"extents": [[2, 2], [7, 2]]},  # not what the blob holds
    {"extents": "0-1"},
    {"xattrs": {}}, {"xattrs": {"user.a": "***"}}, {"xattrs": {"user.a": 1}},
    {"xattrs": ["user.a", "AA=="]},
])
def test_bad_extents_or_xattrs_are_refused(change):
    obj = json.loads(encode_entry(_format_3_entries()[1]))
    obj.update(change)
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


@pytest.mark.parametrize("link", ["z", "zz", "a/../b", "/a", "", None])
def test_a_hard_link_must_name_a_safe_path_before_its_own(link):
    obj = json.loads(encode_entry(_format_3_entries()[4]))
    if link is None:
        del obj["link"]
    else:
        obj["link"] = link
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


def test_a_hard_link_entry_has_no_xattrs_of_its_own():
    obj = json.loads(encode_entry(_format_3_entries()[4]))
    obj["xattrs"] = {"user.a": "AA=="}
    with pytest.raises(ValueError):
        decode_entry(json.dumps(obj).encode())


def _cache_tree() -> list[bytes]:
    blob = BlobRef(3, (("ab" * 32, 3),))
    return [encode_entry(e) for e in (
        Entry(b"", DIR, 0o755, 0, 0, 1, 0),
        Entry(b"a", FILE, 0o644, 1, 2, 10, 3, blob=blob, ino=7, ctime_ns=11),
        Entry(b"b\xff", FILE, 0o644, 1, 2, 10, 3, blob=blob, ino=8, ctime_ns=12),
        Entry(b"c", FILE, 0o644, 1, 2, 10, 3, blob=blob),  # format 1: no cache keys
        Entry(b"d", SYMLINK, 0o777, 1, 2, 10, 1, target=b"a"),
    )]


def test_cache_lines_decodes_a_batch_as_cache_line_decodes_each_line():
    lines = _cache_tree()
    assert cache_lines(lines) == [cache_line(line) for line in lines]
    assert [f[0] if f else None for f in cache_lines(lines)] == [None, b"a", b"b\xff", None,
                                                                 None]


@pytest.mark.parametrize("bad", [b'{"type":"file"},{"type":"file"}\n', b"[1]\n", b"\n",
                                 b'{"type":"file","ino":1,"ctime_ns":2}\n', b"\xff\n",
                                 b'{"type":"file","ino":1,"ctime_ns":2,"path":3}\n'])
def test_a_batch_with_a_bad_line_fails_as_that_line_does(bad):
    lines = _cache_tree()
    lines.insert(2, bad)
    with pytest.raises(ValueError):
        cache_line(bad)
    with pytest.raises(ValueError):
        cache_lines(lines)
