"""The activity feed, one activity's page (with Cancel), and the JSON its progress bar
polls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from snapkeep.policy import Action, may
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities.info import MAX_LINE_ID
from snapkeep.services.identity import auth
from snapkeep.web.render import guarded, guarded_json, render, to_activity
from snapkeep.web.session import ContextFactory, signed_in
from snapkeep.web.views import (
    MAX_PAGE,
    activity_feed,
    activity_json,
    outcome,
    type_label,
)


def add_routes(router: APIRouter, ctx_factory: ContextFactory) -> None:
    @router.get("/activities", include_in_schema=False)
    @guarded
    def feed(request: Request, environment: str | None = None,
             page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1) -> Response:
        console = signed_in(request, ctx_factory)
        chosen = environment or None
        if chosen is not None:
            console.ctx.config.environment(chosen)  # an unknown name says which exist
        rows, shown = activity_feed(console.ctx, chosen, page)
        return render(request, "activities.html", feed=rows, page_info=shown,
                      environments=list(console.ctx.config.environments), chosen=chosen,
                      outcome=outcome, type_label=type_label)

    @router.get("/activities/{activity_id}", include_in_schema=False)
    @guarded
    def activity_page(request: Request, activity_id: str) -> Response:
        console = signed_in(request, ctx_factory)
        a = activities.get_activity(console.ctx, activity_id)
        lines = activities.activity_log(console.ctx, activity_id)
        return render(request, "activity.html", a=a, lines=lines,
                      state=activity_json(a, []), outcome=outcome(a), label=type_label(a),
                      can_cancel=may(console.actor, a.environment, Action.ACTIVITY_CANCEL))

    @router.post("/activities/{activity_id}/cancel", include_in_schema=False)
    @guarded
    def cancel(request: Request, activity_id: str,
               csrf_token: str | None = Form(None)) -> Response:
        """Cancel the activity (Admin): a queued one ends now, a running one at its next
        safe point; back to its page, which shows that."""
        console = signed_in(request, ctx_factory)
        auth.check_csrf(console.csrf, csrf_token)
        a = activities.cancel_activity(console.ctx, activity_id)
        return to_activity(a.id)

    @router.get("/console/activities/{activity_id}.json", include_in_schema=False)
    @guarded_json
    def activity_state(request: Request, activity_id: str,
                       after: Annotated[int, Query(ge=0, le=MAX_LINE_ID)] = 0,
                       ) -> Response:
        """The activity and its log lines after line ``after``: console.js polls this."""
        console = signed_in(request, ctx_factory)
        a = activities.get_activity(console.ctx, activity_id)
        lines = activities.activity_log(console.ctx, activity_id, after_id=after)
        return JSONResponse(activity_json(a, lines), headers={"Cache-Control": "no-store"})
