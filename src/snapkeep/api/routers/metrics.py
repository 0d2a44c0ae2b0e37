"""``GET /metrics``: Prometheus metrics in the text exposition format 0.0.4.

Authenticated like the API (``Authorization: Bearer sk_…``); a token sees the
environments its user may read. What is measured is ``services/metrics.py``; this
module only writes it out.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from snapkeep.api.deps import base_context, bearer
from snapkeep.errors import AuthenticationError
from snapkeep.services import metrics, projects
from snapkeep.services.identity import auth
from snapkeep.services.metrics import Family, Labels

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["server"])


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus text format; see docs/hooks.md"},
                       401: {"description": "no token, or one that is unknown or revoked"}})
def get_metrics(request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None,
                                       Depends(bearer)]) -> Response:
    """Snapshots, activities, durations, last successes per environment; the repository's
    size and the webhook outbox; on a server of several projects, of each project (the
    ``project`` label). Needs an API token (as the API does)."""
    base = base_context(request)
    try:
        actor = auth.actor_for_token(base, credentials.credentials if credentials else None)
    except AuthenticationError as e:  # /metrics is outside /api: answer as a scraper expects
        return PlainTextResponse(e.message + "\n", status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    served = list(getattr(request.app.state, "projects", {}).values()) or [base]
    if len(served) == 1:
        return Response(render(metrics.collect(base.for_actor(actor))), media_type=CONTENT_TYPE)
    # each project as the asker sees it, with their roles there; with several projects,
    # only those they have a role in
    asked = [c for c in (ctx.for_actor(projects.actor_in(ctx, actor)) for ctx in served)
             if projects.may_see(c.actor)]
    return Response(render(metrics.collect_projects(asked)), media_type=CONTENT_TYPE)


def render(families: list[Family]) -> str:
    """``families`` in the text exposition format 0.0.4."""
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.type}")
        for s in f.samples:
            lines.append(f"{f.name}{s.suffix}{_labels(s.labels)} {_value(s.value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 2**53):
        return str(int(v))
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))
