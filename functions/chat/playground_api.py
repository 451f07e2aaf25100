"""The playground's routes: a comparison of models streamed as server-sent events, and the caller's past
comparisons. The fixed path `/sessions` is declared before `/sessions/{sessionId}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from functions.chat import playground
from functions.chat.playground_models import ComparisonEvent, ComparisonRequest, PlaygroundSession
from functions.chat.sse import EventStream
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import event_stream, refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
SessionId = Annotated[str, Path(alias="sessionId", max_length=26)]

router = APIRouter(prefix="/api/v1/ai/playground", tags=["playground"])


@router.post(
    "",
    # What the document says of the response (an `EventStream` is sent; its signature is not one FastAPI reads).
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            ComparisonEvent,
            "`session`, then per model (`model` as the request named it, `index` its place in `models`) `status`, "
            "`content`, `metrics` and an `error` if it failed; last `end`",
        ),
        **refusals(403, 422, 429),
    },
)
async def compare_models(principal: CurrentPrincipal, body: ComparisonRequest) -> EventStream:
    """Send one prompt to every model at once; refusals (permission, an unknown model, limits) answer before the
    stream starts, and nothing is generated or counted then."""
    comparison = await playground.start_comparison(principal, body)
    return EventStream(comparison.events)


@router.get("/sessions", response_model=Page[PlaygroundSession], responses=refusals(400))
def list_sessions(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[PlaygroundSession]:
    items, next_cursor = playground.list_sessions(principal, limit=limit, cursor=cursor)
    return Page(items=[PlaygroundSession.model_validate(item) for item in items], next_cursor=next_cursor)


@router.get("/sessions/{sessionId}", response_model=PlaygroundSession, responses=refusals(404))
def get_session(principal: CurrentPrincipal, session_id: SessionId) -> PlaygroundSession:
    return PlaygroundSession.model_validate(playground.get_session(principal, session_id))


@router.delete("/sessions/{sessionId}", status_code=status.HTTP_204_NO_CONTENT, responses=refusals(404))
def delete_session(principal: CurrentPrincipal, session_id: SessionId) -> Response:
    playground.delete_session(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
