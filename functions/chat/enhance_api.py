"""Text enhancement routes: field types, sessions (create, stream, read, cancel) and the caller's usage.

The stream route takes a one-use stream ticket as well as the usual credential (`StreamCaller`), so it sits on
a router of its own that the app mounts without the blanket authentication of the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response

from functions.chat.enhance_models import (
    EnhanceCreated,
    EnhanceRequest,
    EnhanceSessionPublic,
    EnhanceStreamEvent,
    EnhanceUsageReport,
    FieldTypePublic,
)
from functions.chat.sse import EventStream
from functions.chat.tickets import REFUSED_STREAM_CALLER, StreamCaller
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import event_stream, refusals
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.chat import enhance
else:
    enhance = LazyModule("functions.chat.enhance")

router = APIRouter(prefix="/api/v1/ai", tags=["enhance"])
stream_router = APIRouter(prefix="/api/v1/ai", tags=["enhance"])

SessionId = Annotated[str, Path(alias="sessionId", max_length=26)]


@router.get("/enhance/field-types", response_model=Page[FieldTypePublic])
def field_types(_: CurrentPrincipal) -> Page[FieldTypePublic]:
    """The field types this stage knows, each with its label and the context keys its template uses."""
    return Page(items=[FieldTypePublic.model_validate(entry) for entry in enhance.field_type_list()])


@router.post("/enhance", status_code=201, response_model=EnhanceCreated, responses=refusals(403, 422))
def create_session(principal: CurrentPrincipal, body: EnhanceRequest) -> EnhanceCreated:
    """A pending session for one field's text; nothing is generated until its stream is read."""
    session = enhance.create_session(principal, body)
    return EnhanceCreated(
        session_id=session.session_id, status=session.status, stream_path=enhance.stream_path(session.session_id)
    )


@stream_router.get(
    "/stream/{sessionId}",
    response_class=Response,
    responses={
        200: event_stream(
            EnhanceStreamEvent,
            "The session's events, each with an SSE id `<sessionId>:<seq>`: `start`, `content`, `usage`, an "
            "`error` if the provider failed, and `end`. The first reader starts the generation; a later one (or "
            "one reconnecting with `Last-Event-ID` or `?after=`) gets what was produced after that point, then "
            "the rest. After the stream's log has expired, a finished session's stored result, without ids",
        ),
        **refusals(401, 403, 404, 422, 429, meaning={401: REFUSED_STREAM_CALLER}),
    },
)
async def stream_session(
    principal: StreamCaller,
    session_id: SessionId,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="last-event-id", max_length=64)] = None,
) -> Response:
    """The session's stream (with the usual credential, or a stream ticket in `?ticket=`)."""
    return EventStream(await enhance.open_session_stream(principal, session_id, last_event_id, after))


@router.get("/session/{sessionId}", response_model=EnhanceSessionPublic, responses=refusals(404))
def get_session(principal: CurrentPrincipal, session_id: SessionId) -> EnhanceSessionPublic:
    """The session's status and timings; its result and usage once generation has ended (its stream has the text
    as it comes)."""
    return EnhanceSessionPublic.model_validate(enhance.session_of(principal.user_id, session_id).public())


@router.delete(
    "/session/{sessionId}",
    response_model=EnhanceSessionPublic,
    responses=refusals(404, 409, meaning={409: "The session has already ended (`session_ended`)"}),
)
async def cancel_session(principal: CurrentPrincipal, session_id: SessionId) -> EnhanceSessionPublic:
    """Cancel the session: a pending one at once; a generating one stops within a second, keeping its partial
    result (in the answer once stored, which is almost always). An ended session is a 409 `session_ended`."""
    session = await enhance.cancel_session(principal.user_id, session_id)
    return EnhanceSessionPublic.model_validate(session.public())


@router.get("/usage", response_model=EnhanceUsageReport)
def usage(principal: CurrentPrincipal, days: Annotated[int, Query(ge=1, le=90)] = 30) -> EnhanceUsageReport:
    """The caller's enhancement usage over the last `days` days: sessions, tokens and cost by day and by field
    type."""
    return EnhanceUsageReport.model_validate(enhance.usage_report(principal.user_id, days))
