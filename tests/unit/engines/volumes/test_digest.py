"""The canonical tree line a mount digest hashes: the stored line without cache keys."""

import dataclasses

from snapkeep.engines.volumes.digest import TreeDigest, canonical
from snapkeep.engines.volumes.tree import DIR, FILE, SYMLINK, Entry, encode_entry
from snapkeep.repository.blobs import BlobRef


def test_cutting_the_cache_keys_out_of_a_line_equals_encoding_without_them():
    blob = BlobRef(3, (("ab" * 32, 3),))
    odd = [b'x,"ino":5', b'a,"ctime_ns":-1,', b'\\",\\"ino\\":7', b"\xe9,\"ino\":1", b"ino"]
    entries = [Entry(b"", DIR, 0o755, 0, 0, 1, 0)]
    for i, name in enumerate(odd):
        entries += [
            Entry(name, FILE, 0o644, 1, 2, 10 + i, 3, blob=blob, ino=99 + i, ctime_ns=-5),
            Entry(name + b"2", FILE, 0o644, 1, 2, 10 + i, 3, blob=blob),
            Entry(name + b"3", SYMLINK, 0o777, 1, 2, 10, 9, target=b',"ino":1'),
        ]
    for e in entries:
        line = encode_entry(e)
        assert canonical(line) == encode_entry(dataclasses.replace(e, ino=None, ctime_ns=None))
        if e.ino is not None:
            assert canonical(line) != line


def test_a_batch_of_lines_gives_the_digest_of_its_lines_one_by_one():
    blob = BlobRef(3, (("ab" * 32, 3),))
    lines = [encode_entry(Entry(b"", DIR, 0o755, 0, 0, 1, 0))]
    lines += [encode_entry(Entry(f"f{i}".encode(), FILE, 0o644, 1, 2, 10 + i, 3, blob=blob,
                                 ino=99 + i, ctime_ns=-5)) for i in range(50)]
    one, batched = TreeDigest(), TreeDigest()
    for line in lines:
        one.add_line(line)
    batched.add_lines(b"".join(lines[:7]))
    batched.add_lines(b"".join(lines[7:]))
    assert batched.hexdigest() == one.hexdigest()
    other = TreeDigest()
    other.add_lines(b"".join(lines[1:]))
    assert other.hexdigest() != one.hexdigest()
