"""Streaming a service's byte iterator as an HTTP response body (exports, for the API and
the console)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
from fastapi.responses import StreamingResponse


async def relay(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The service's iterator, read in a worker thread; closed when the client goes away
    (the response task is cancelled), which ends the export activity at once."""
    it = iter(chunks)
    done = object()
    try:
        while True:
            piece = await anyio.to_thread.run_sync(next, it, done)
            if piece is done:
                return
            yield piece  # type: ignore[misc]
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):  # runs even as the response is cancelled
                await anyio.to_thread.run_sync(close)


def download(filename: str, chunks: Iterator[bytes]) -> StreamingResponse:
    """An attachment named ``filename`` streamed from ``chunks`` (zstd data)."""
    return StreamingResponse(relay(chunks), media_type="application/zstd",
                             headers={"Content-Disposition":
                                      f'attachment; filename="{filename}"'})
