"""``…/backups/{id}/export``: download a snapshot as files the stock tools read.

``GET …/export`` lists the parts (``database.sql.zst``, ``mounts/<mount>.tar.zst``) with
their URLs; ``GET`` on a part streams it, produced as it is sent (zstd over the SQL
script or the tar), recorded as an export activity that ends with the download. Every
endpoint needs Admin on the environment. The layout: docs/export-import.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from snapkeep.api.deps import ProjectContext, environment
from snapkeep.api.schemas import ErrorOut, project_path
from snapkeep.api.streaming import download
from snapkeep.services.transfer import export_import as transfer

router = APIRouter(prefix="/api/projects/{project}/environments/{env}/backups/{backup_id}/export",
                   tags=["backups"],
                   responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                              404: {"model": ErrorOut}})

_STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"application/zstd": {}},
                 "description": "the part, zstd-compressed, streamed as it is produced"},
           409: {"model": ErrorOut, "description": "the environment runs another activity"}}


class ExportPartOut(BaseModel):
    name: str = Field(description="database.sql.zst or mounts/<mount>.tar.zst")
    url: str


class ExportOut(BaseModel):
    """What an export of the backup holds."""

    snapshot_id: str
    environment: str
    created_at: str
    database: bool
    mounts: list[str]
    parts: list[ExportPartOut]
    metadata: dict[str, Any] = Field(description="snapkeep-export.json without `files` (a "
                                     "client writing the parts into a directory adds them)")


def _base(project: str, env: str, backup_id: str) -> str:
    return f"{project_path(project)}/environments/{env}/backups/{backup_id}/export"


@router.get("", response_model=ExportOut)
def export_listing(env: str, backup_id: str, ctx: ProjectContext) -> ExportOut:
    """The downloadable parts of the backup's export (needs Admin on the environment)."""
    facts = transfer.export_facts(ctx, environment(ctx, env), backup_id)
    parts = facts.pop("parts")
    base = _base(ctx.config.id, env, facts["snapshot_id"])
    return ExportOut(snapshot_id=facts["snapshot_id"], environment=facts["environment"],
                     created_at=facts["created_at"], database=facts["database"],
                     mounts=facts["mounts"], metadata=facts,
                     parts=[ExportPartOut(name=p, url=f"{base}/{p}") for p in parts])


def _stream(ctx: ProjectContext, env: str, backup_id: str, part: str) -> StreamingResponse:
    return download(*transfer.stream_export(ctx, environment(ctx, env), backup_id, part))


@router.get("/database.sql.zst", response_class=StreamingResponse, responses=_STREAM)
def export_database(env: str, backup_id: str, ctx: ProjectContext) -> StreamingResponse:
    """The database as a SQL script for the stock client (``zstd -dc … | mariadb NEWDB``)."""
    return _stream(ctx, env, backup_id, "database.sql.zst")


@router.get("/mounts/{mount:path}.tar.zst", response_class=StreamingResponse,
            responses=_STREAM)
def export_mount(env: str, backup_id: str, mount: str, ctx: ProjectContext) -> StreamingResponse:
    """One mount as a pax tar (``tar --zstd -xpf … -C DEST``)."""
    return _stream(ctx, env, backup_id, f"mounts/{mount}.tar.zst")
