"""Types of the C extension ``_ibdpages.c`` (its header comment describes the API)."""

from typing_extensions import Buffer

def leaves(pages: Buffer, first_no: int, page_size: int, index_id: Buffer,
           free: Buffer) -> tuple[bytes, int, int]: ...
def chain(packed: Buffer) -> int | None: ...
