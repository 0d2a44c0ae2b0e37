"""``/api/projects/{project}/activities``: list, read, follow the log of, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from snapkeep.api import logstream
from snapkeep.api.deps import ProjectContext, environment
from snapkeep.api.schemas import ActivityOut, ErrorOut
from snapkeep.policy import Action, may
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities.info import MAX_LINE_ID, ActivityInfo
from snapkeep.services.context import Context

router = APIRouter(prefix="/api/projects/{project}/activities", tags=["activities"],
                   responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut},
                              404: {"model": ErrorOut}})

State = Literal["pending", "in_progress", "complete", "cancelled"]
MAX_LIMIT = 500


def _may_read(ctx: Context, a: ActivityInfo) -> bool:
    return may(ctx.actor, a.environment, Action.ACTIVITY_READ)


@router.get("", response_model=list[ActivityOut])
def list_activities(ctx: ProjectContext,
                    environment_: Annotated[str | None, Query(alias="environment")] = None,
                    state: State | None = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
                    offset: Annotated[int, Query(ge=0)] = 0) -> list[ActivityOut]:
    """Recent activities, newest first: of one environment (needs Viewer on it), or of
    every environment the token's user may see; ``offset`` skips that many (next pages)."""
    env = environment(ctx, environment_).name if environment_ else None
    if env is not None and state is None:  # nothing to filter out: the catalog pages
        items = activities.list_activities(ctx, env, limit=limit, offset=offset)
        return [ActivityOut.of(a, ctx.config.id) for a in items]
    # The service has no state filter and lists every environment: read more and filter,
    # so ``limit`` and ``offset`` count only what this user may see.
    items = activities.list_activities(ctx, env, limit=MAX_LIMIT + offset)
    items = [a for a in items if (state is None or a.state == state) and _may_read(ctx, a)]
    return [ActivityOut.of(a, ctx.config.id) for a in items[offset:offset + limit]]


@router.get("/{activity_id}", response_model=ActivityOut)
def get_activity(activity_id: str, ctx: ProjectContext) -> ActivityOut:
    """One activity (needs Viewer on its environment)."""
    return ActivityOut.of(activities.get_activity(ctx, activity_id), ctx.config.id)


@router.get("/{activity_id}/log", response_class=StreamingResponse,
            responses={200: {"content": {logstream.MEDIA_TYPE: {}},
                             "description": "JSON lines; see docs/api.md"}})
def activity_log(activity_id: str, ctx: ProjectContext, request: Request,
                 after: Annotated[int, Query(ge=0, le=MAX_LINE_ID)] = 0,
                 follow: bool = True) -> StreamingResponse:
    """The activity's log as JSON lines, followed until it ends (``follow=false``: what
    is there now). The last line is ``{"sealed": true, …}`` once it has ended."""
    activities.get_activity(ctx, activity_id)  # 404/403 now, while a status can be sent
    lines = logstream.log_lines(ctx, activity_id, after=after, follow=follow,
                                stop=request.app.state.stop)
    return StreamingResponse(lines, media_type=logstream.MEDIA_TYPE,
                             headers={"Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})  # nginx: do not buffer


@router.post("/{activity_id}/cancel", response_model=ActivityOut,
             responses={409: {"model": ErrorOut,
                              "description": "the activity has completed already"}})
def cancel_activity(activity_id: str, ctx: ProjectContext) -> ActivityOut:
    """Cancel the activity (needs Admin on its environment): a pending one ends at once, a
    running one at its next safe point (a restore past its cut-over runs to its end)."""
    return ActivityOut.of(activities.cancel_activity(ctx, activity_id), ctx.config.id)
