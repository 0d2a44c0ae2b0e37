"""The in-memory Index: claims, packs of live sessions, superseded index files."""

from snapkeep.repository.index import Index, Location
from snapkeep.repository.packs import Entry, PackBuilder

A, B, C = "a" * 64, "b" * 64, "c" * 64


def doc(*packs, supersedes=()):
    return {"version": 1, "supersedes": list(supersedes),
            "packs": [{"id": pid, "size": 100, "chunks": [[c, 0, 10, 8] for c in cids]}
                      for pid, cids in packs]}


def written(index, pack_id, user, *cids):
    b = PackBuilder()
    for c in cids:
        b.add(c, b"x" * 10, 8)
        index.add_pending(c, b, user)
    index.pack_written(pack_id, 100, b)
    return [Entry(c, 0, 10, 8) for c in cids]


def test_a_claim_finds_pending_and_written_chunks_and_records_the_session():
    index = Index()
    b = PackBuilder()
    b.add(A, b"x" * 10, 8)
    index.add_pending(A, b, "s1")
    assert index.claim(A, "s2") and index.users_of(b) == {"s1", "s2"}
    assert index.claim_many([A, B], "s3") == [B]
    index.pack_written("p1", 100, b)
    assert index.pending(A) is None and index.lookup(A) == Location("p1", 0, 10, 8)
    assert index.not_written([A, B]) == [B]


def test_a_discarded_session_gets_back_only_the_unindexed_packs_no_one_else_used():
    index = Index()
    mine = written(index, "p1", "s1", A)
    shared = written(index, "p2", "s1", B)
    index.claim(B, "s2")  # another live session dedups against p2
    indexed = written(index, "p3", "s1", C)
    gone, left = index.discard_session("s1", {"p1": mine, "p2": shared})
    assert gone == ["p1"] and left == 1  # p3 is named by an index file: left for prune
    assert index.lookup(A) is None and index.lookup(B) is not None
    assert index.lookup(C) is not None and indexed


def test_a_write_without_a_session_keeps_the_pack():
    index = Index()
    entries = written(index, "p1", "s1", A)
    assert index.claim(A, None)
    assert index.discard_session("s1", {"p1": entries}) == ([], 0)
    assert index.lookup(A) is not None


def test_index_files_superseded_by_a_newer_one_are_dropped_with_their_packs():
    index = Index()
    index.add_files({"i1": doc(("p1", [A]), ("p2", [B]))})
    index.add_files({"i2": doc(("p2", [B]), supersedes=["i1"])})
    assert index.lookup(A) is None and index.lookup(B) == Location("p2", 0, 10, 8)
    view = index.view()
    assert view.pack_sizes == {"p2": 100} and view.superseded == {"i1"}
    assert view.files == {"i1", "i2"}  # still stored: prune deletes it
