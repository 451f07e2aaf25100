"""What each app's OpenAPI document says a route can answer: the refusals every route of its kind can answer,
added by the app factory, the route's own, all in the error shape, and event streams described event by event."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import Field

from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import ApiModel
from shared.http.responses import event_stream, refusals
from shared.settings import settings_from_environ

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


class Note(ApiModel):
    text: str


class Tick(ApiModel):
    type: Literal["tick"]
    at: int


class Done(ApiModel):
    type: Literal["done"]
    note: Note


public = APIRouter(prefix="/api/v1")
protected = APIRouter(prefix="/api/v1")


@public.get("/plain")
def plain() -> dict[str, str]:
    return {}


@public.post("/login", responses=refusals(429))
def login(body: Note) -> dict[str, str]:
    return {}


@protected.get("/notes/{noteId}", responses=refusals(404, meaning={404: "No such note"}))
def get_note(_: CurrentPrincipal, noteId: str) -> Note:  # noqa: N803 - the path's own name
    return Note(text=noteId)


@protected.post("/ticks", response_class=StreamingResponse, responses={200: event_stream(Tick | Done, "Ticks")})
def ticks(_: CurrentPrincipal) -> StreamingResponse:
    return StreamingResponse(iter(()))


TickOrDone = Annotated[Tick | Done, Field(discriminator="type")]
OnlyDone = Annotated[Done, Field(description="The last event")]


@protected.get("/tagged-ticks", response_class=StreamingResponse, responses={200: event_stream(TickOrDone, "Ticks")})
def tagged_ticks(_: CurrentPrincipal) -> StreamingResponse:
    return StreamingResponse(iter(()))


@protected.get("/done", response_class=StreamingResponse, responses={200: event_stream(OnlyDone, "Done")})
def done(_: CurrentPrincipal) -> StreamingResponse:
    return StreamingResponse(iter(()))


def document() -> dict[str, Any]:
    app = create_app(
        title="test", public=[public], protected=[protected], settings=settings_from_environ({"STAGE": "test"})
    )
    return app.openapi()


def responses_of(path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = document()["paths"][path][method]["responses"]
    return responses


def error_statuses(responses: dict[str, Any]) -> set[str]:
    return {
        status
        for status, response in responses.items()
        if response.get("content", {}).get("application/json", {}).get("schema") == ERROR_REF
    }


def test_a_public_route_without_input_documents_only_the_body_limit_and_a_server_error() -> None:
    responses = responses_of("/api/v1/plain", "get")
    assert set(responses) == {"200", "413", "500"}
    assert error_statuses(responses) == {"413", "500"}


def test_a_route_with_a_body_documents_malformed_json_validation_and_its_own_refusals() -> None:
    responses = responses_of("/api/v1/login", "post")
    assert error_statuses(responses) == {"400", "413", "422", "429", "500"}
    assert responses["429"]["headers"]["Retry-After"]["required"] is True


def test_a_protected_route_documents_401_and_its_own_meaning_of_a_status() -> None:
    responses = responses_of("/api/v1/notes/{noteId}", "get")
    assert error_statuses(responses) == {"401", "404", "413", "422", "500"}
    assert responses["404"]["description"] == "No such note"


def test_no_route_documents_fastapis_own_validation_shape() -> None:
    schemas = document()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorBody"]["required"]) == {"error"}
    assert set(schemas["ErrorInfo"]["required"]) == {"code", "message", "requestId"}


def test_an_event_stream_is_described_event_by_event_with_every_schema_inlined() -> None:
    responses = responses_of("/api/v1/ticks", "post")
    stream = responses["200"]["content"]["text/event-stream"]["schema"]
    assert stream["required"] == ["data"]
    data = stream["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    events = data["contentSchema"]["anyOf"]
    assert [event["properties"]["type"]["const"] for event in events] == ["tick", "done"]
    assert events[1]["properties"]["note"]["required"] == ["text"]  # the nested model, inlined
    assert "$ref" not in str(data)
    assert "application/json" not in responses["200"].get("content", {})


def test_identity_schemas_say_what_the_password_policy_and_the_service_enforce() -> None:
    from functions.identity import passwords
    from functions.identity.api import app
    from shared.auth.principal import PERMISSIONS

    schemas = app.openapi()["components"]["schemas"]
    for model in ("RegisterRequest", "ResetPasswordRequest"):
        password = schemas[model]["properties"]["password"]
        assert (password["minLength"], password["maxLength"]) == (passwords.MIN_LENGTH, passwords.MAX_LENGTH)
    for model in ("RegisterRequest", "InviteUserRequest"):
        assert schemas[model]["properties"]["email"]["format"] == "email"
    for model in ("ApiKeyCreate", "RoleCreate"):
        assert set(schemas[model]["properties"]["permissions"]["items"]["enum"]) == {"*", *PERMISSIONS}


def test_two_streams_of_annotated_event_types_each_get_their_own_events() -> None:
    def events_of(path: str) -> Any:
        content = responses_of(path, "get")["200"]["content"]["text/event-stream"]
        return content["schema"]["properties"]["data"]["contentSchema"]

    tagged = events_of("/api/v1/tagged-ticks")
    assert [event["properties"]["type"]["const"] for event in tagged["oneOf"]] == ["tick", "done"]
    assert "discriminator" not in tagged  # its mapping would name definitions that were inlined
    assert events_of("/api/v1/done")["properties"]["type"]["const"] == "done"
