"""``POST …/environments/{env}/backups/import``: a new snapshot from an uploaded directory.

The body is an uncompressed tar stream of an import directory (docs/export-import.md):
an export (``snapkeep-export.json``, ``database.sql.zst``, ``mounts/<mount>.tar.zst``), or
one SQL dump with mount directories or tars. The token (``gate``), the role, the
environment, the server's readiness and the upload's declared size (``?size=`` or
Content-Length, which bounds what it may hold) are checked before a byte of it is read;
the body is then extracted as it arrives (a piece at a time: never the whole upload in
memory) into a staging directory by ``services.upload``, and the import activity starts
from there. ``?check=true`` runs only the first checks, so a client learns of a refusal
before it sends anything.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response, status
from starlette.requests import ClientDisconnect

from snapkeep.api.deps import ProjectContext, environment
from snapkeep.api.schemas import ActivityOut, ErrorOut
from snapkeep.services.transfer import upload

log = logging.getLogger("snapkeep.api")

# its body streams into the staging directory, bounded by the declared size (not gate's limit)
UPLOAD_PATH = re.compile(r"/api/projects/[^/]+/environments/[^/]+/backups/import")

router = APIRouter(prefix="/api/projects/{project}/environments/{env}/backups/import",
                   tags=["backups"],
                   responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                              404: {"model": ErrorOut}})

_BODY = {"requestBody": {
    "required": True,
    "description": "An uncompressed tar (`application/x-tar`) of the import directory, "
                   "streamed (chunked transfer encoding is fine).",
    "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}}


class _Body(io.RawIOBase):
    """The request body as a file for the extraction, which runs in a worker thread: each
    read takes the next piece from the event loop, so one piece at a time is held. Raises
    ClientDisconnect when the client goes away."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._piece = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._piece and not self._ended:
            piece = anyio.from_thread.run(self._next)
            if piece is None:
                self._ended = True
            else:
                self._piece = memoryview(piece)
        n = min(len(buf), len(self._piece))
        buf[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None


@router.post("", response_model=ActivityOut, status_code=status.HTTP_202_ACCEPTED,
             openapi_extra=_BODY,
             responses={204: {"description": "`check=true`: an upload would be taken now"},
                        400: {"model": ErrorOut, "description": "the body is no tar, or "
                              "holds an absolute name, `..`, a link outside a mount's "
                              "directory, a device or a FIFO, or more than its `size`"},
                        411: {"model": ErrorOut, "description": "neither `size` nor "
                              "Content-Length says how big the upload is"},
                        409: {"model": ErrorOut, "description": "the environment is "
                              "inactive or busy"},
                        507: {"model": ErrorOut, "description": "`size` is more than the "
                              "server has room for"},
                        422: {"model": ErrorOut, "description": "the directory is no "
                              "import (no SQL dump, a mount the environment lacks, a part "
                              "of the wrong size)"}})
async def import_backup(env: str, ctx: ProjectContext, request: Request, response: Response,
                        threads: int | None = Query(None, ge=1, le=64),
                        check: bool = Query(False),
                        size: int | None = Query(None, ge=0, description=(
                            "the bytes of file content in the tar (or send a Content-Length): "
                            "required to upload (411 without either); refused with 507 "
                            "before the body is read when the server has no room for it, "
                            "and with 400 if the tar holds more"))) -> Any:
    """Make a new snapshot of the environment from the uploaded directory (needs Admin on
    the environment, which must be active); answers the import activity, running."""
    e = environment(ctx, env)
    length = request.headers.get("content-length", "")
    if size is None and length.isdigit():
        size = int(length)  # the tar's own bytes bound its content
    if check:
        await anyio.to_thread.run_sync(upload.check_upload, ctx, e, size)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    up = await anyio.to_thread.run_sync(upload.Upload.begin, ctx, e, size)
    try:
        body = cast(BinaryIO, _Body(request.stream()))  # a RawIOBase: a binary file to read
        await anyio.to_thread.run_sync(up.receive, body)
        start = functools.partial(up.start, threads=threads, stop=request.app.state.stop)
        a = await anyio.to_thread.run_sync(start)
    except ClientDisconnect:
        log.info("an upload to %s stopped: the client went away", env)
        return Response(status_code=400)  # nobody reads it
    finally:
        with anyio.CancelScope(shield=True):  # also when the request is cancelled
            await anyio.to_thread.run_sync(up.discard)
    out = ActivityOut.of(a, ctx.config.id)
    response.headers["Location"] = out.links["self"]
    return out
