"""Damaging a repository on disk the way a bad disk would, for integrity tests."""

from __future__ import annotations

from pathlib import Path

from snapkeep.repository import Repository


def flip_chunk_byte(repo: Repository, repo_dir: Path, chunk_id: str) -> None:
    """Flip one byte in the middle of ``chunk_id``'s sealed bytes in its pack file."""
    repo.flush()
    location = repo.locate_chunk(chunk_id)
    assert location is not None, f"chunk {chunk_id} is not in the repository"
    key, offset, length = location
    pack = repo_dir / key
    raw = bytearray(pack.read_bytes())
    raw[offset + length // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
