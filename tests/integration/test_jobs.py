"""The jobs context on moto: its routes through the local gateway, and its task and step functions called with
the contract's events in the order a workflow calls them (the state machines themselves are tested on their
synthesized definitions). The contexts are test-only fakes (tests.fakes.job_contexts); the files are real."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from functions.jobs import service, steps, tasks
from functions.jobs.contexts import job_contexts
from functions.jobs.formats.archive import ExportArchive
from infra.catalog import API_PREFIX, AUTHORIZER_FUNCTION, FunctionSpec, Route, all_routes
from infra.local.gateway import Gateway
from shared.aws import client
from shared.tables import JOBS
from tests.fakes import job_contexts as fakes
from tests.integration.conftest import User, error_code, register

BUCKET = "stratus-test-exports"
JOBS_ROUTES = [
    ("POST", "/users/export"), ("GET", "/users/export/{jobId}"), ("GET", "/users/jobs"), ("POST", "/users/import"),
    ("POST", "/users/import/{jobId}/start"), ("GET", "/users/import/{jobId}"), ("GET", "/admin/jobs"),
    ("GET", "/admin/jobs/{jobId}"), ("POST", "/admin/jobs/archive"),
]  # fmt: skip
JOBS_FUNCTION = FunctionSpec(
    name="jobs",
    handler="functions.jobs.handler.lambda_handler",
    app="functions.jobs.api:app",
    description="Jobs",
    routes=tuple(Route(method, API_PREFIX + path) for method, path in JOBS_ROUTES),
    tables=(JOBS,),
)


@pytest.fixture
def api(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with the jobs routes, the export bucket, a state machine per workflow, and the fake contexts."""
    fakes.install(monkeypatch)
    monkeypatch.setenv("EXPORT_BUCKET", BUCKET)
    client("s3").create_bucket(Bucket=BUCKET)
    stepfunctions = client("stepfunctions")
    for kind, variable in service.WORKFLOW_VARIABLES.items():
        machine = stepfunctions.create_state_machine(
            name=f"stratus-test-{kind}",
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/stratus-test-jobs",
        )
        monkeypatch.setenv(variable, machine["stateMachineArn"])
    routes = [*all_routes(), *((route, JOBS_FUNCTION) for route in JOBS_FUNCTION.routes)]
    gateway = Gateway(routes, authorizer=AUTHORIZER_FUNCTION, stage="test")
    with TestClient(gateway, base_url="http://127.0.0.1") as test_client:
        yield test_client
    gateway.close()


@pytest.fixture
def people(api: TestClient) -> dict[str, User]:
    """The stage's first account (an admin), then two members."""
    return {name: register(api, f"{name}@example.com") for name in ("admin", "ana", "ben")}


def execution_input(job_id: str) -> dict[str, Any]:
    stepfunctions = client("stepfunctions")
    for kind, variable in service.WORKFLOW_VARIABLES.items():
        arn = os.environ[variable]
        for execution in stepfunctions.list_executions(stateMachineArn=arn)["executions"]:
            if execution["name"] == job_id:
                described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
                return {"kind": kind, **json.loads(described["input"])}
    raise AssertionError(f"no execution is named {job_id}")


def step(action: str, **event: Any) -> dict[str, Any]:
    return steps.lambda_handler({"action": action, **event}, None)


def context_page(monkeypatch: pytest.MonkeyPatch, **event: Any) -> dict[str, Any]:
    monkeypatch.setenv("JOB_CONTEXT", event["context"])
    return tasks.context_task(event, None)


def run_export(monkeypatch: pytest.MonkeyPatch, job_id: str, user_id: str) -> None:
    """What the export workflow does: begin, each context's pages, the archive, the end."""
    step("begin", jobId=job_id, kind="export")
    for context in job_contexts("export"):
        step("context-started", jobId=job_id, context=context.name)
        cursor, page = None, 0
        while True:
            answer = context_page(
                monkeypatch, action="export", jobId=job_id, userId=user_id, context=context.name, cursor=cursor,
                page=page,
            )  # fmt: skip
            cursor, page = answer["cursor"], answer["page"]
            if cursor is None:
                break
        step("context-done", jobId=job_id, context=context.name)
    step("assemble-export", jobId=job_id, userId=user_id)
    step("finish", jobId=job_id)


def run_import(job_id: str, user_id: str, import_format: str) -> list[dict[str, Any]]:
    """What the import workflow does: begin, the page loop (task, then its figures), the end; the pages."""
    step("begin", jobId=job_id, kind="import")
    pages, cursor = [], None
    while True:
        page = tasks.import_task(
            {"action": "import", "jobId": job_id, "userId": user_id, "format": import_format, "cursor": cursor}, None
        )
        step("import-page", jobId=job_id, **page)
        pages.append(page)
        cursor = page["cursor"]
        if cursor is None:
            break
    step("finish", jobId=job_id)
    return pages


def _query(url: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in urlsplit(url).query.split("&"))


def link_lifetime(url: str) -> timedelta:
    query = _query(url)
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=1)
    return timedelta(seconds=int(query["X-Amz-Expires"]))


def signature_holds(url: str) -> bool:
    """Whether a presigned GET's Signature Version 4 matches its URL, as S3 checks it."""
    parts, query = urlsplit(url), _query(url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-SignedHeaders"] == "host"
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "X-Amz-Signature")
    canonical = f"GET\n{parts.path}\n{canonical_query}\nhost:{parts.netloc}\n\nhost\nUNSIGNED-PAYLOAD"
    scope = unquote(query["X-Amz-Credential"]).split("/", 1)[1]
    date, region, service_name, _ = scope.split("/")
    to_sign = f"AWS4-HMAC-SHA256\n{query['X-Amz-Date']}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (date, region, service_name, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), query["X-Amz-Signature"])


def at(minutes: int) -> str:
    return (datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat()


def give_data(user_id: str) -> None:
    data = fakes.user(user_id)
    data.projects = [{"id": "P1", "name": "Thesis", "createdAt": at(0), "updatedAt": at(0)}]
    data.conversations = [
        {"id": "C1", "title": "Long one", "createdAt": at(1), "projectId": "P1",
         "messages": [{"seq": n, "role": "user" if n % 2 else "assistant", "content": f"line {n}",
                       "createdAt": at(1 + n)} for n in range(1, 8)]},
        {"id": "C2", "title": "Short one", "createdAt": at(20),
         "messages": [{"seq": 1, "role": "user", "content": "hello", "createdAt": at(20)}]},
    ]  # fmt: skip
    data.memories = [
        {"id": "M1", "content": "Likes tea", "createdAt": at(30), "updatedAt": at(30)},
        {"id": "M2", "content": "Lives in Lisbon", "createdAt": at(31), "updatedAt": at(31)},
    ]
    data.profile = {"email": "ana@example.com", "name": "Ana"}


# Exports ----------------------------------------------------------------------------------------------------


def test_an_export_runs_context_by_context_to_one_archive_behind_a_short_link(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = people["ana"]
    give_data(ana.id)
    started = api.post("/api/v1/users/export", headers=ana.auth)
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["kind"], job["status"], job["userId"]) == ("export", "queued", ana.id)
    assert execution_input(job["jobId"]) == {"kind": "export", "jobId": job["jobId"], "userId": ana.id}

    step("begin", jobId=job["jobId"], kind="export")
    step("context-started", jobId=job["jobId"], context="conversations")
    running = api.get(f"/api/v1/users/export/{job['jobId']}", headers=ana.auth).json()
    assert running["status"] == "running"
    assert running["progress"] == {
        "done": 0,
        "total": 2,
        "contexts": {"conversations": "running", "memories": "queued"},
    }
    assert running["result"] is None

    run_export(monkeypatch, job["jobId"], ana.id)
    done = api.get(f"/api/v1/users/export/{job['jobId']}", headers=ana.auth).json()
    assert done["status"] == "succeeded"
    assert done["finishedAt"]
    assert done["progress"] == {"done": 2, "total": 2, "contexts": {"conversations": "done", "memories": "done"}}
    result = done["result"]
    assert result["counts"] == {
        "conversations": 2, "messages": 8, "projects": 1, "prompts": 0, "memories": 2, "usage": 0, "mcp-servers": 0,
    }  # fmt: skip
    expires_in = datetime.fromisoformat(result["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=14) < expires_in <= timedelta(minutes=15)

    download = requests.get(result["downloadUrl"], timeout=10)
    assert download.status_code == 200
    assert len(download.content) == result["sizeBytes"]
    with ExportArchive.open(io.BytesIO(download.content)) as archive:
        assert archive.manifest.user_id == ana.id
        conversations = [(c["title"], [m["content"] for m in c["messages"]]) for c in archive.records("conversations")]
        assert conversations == [("Long one", [f"line {n}" for n in range(1, 8)]), ("Short one", ["hello"])]
        assert [m["content"] for m in archive.records("memories")] == ["Likes tea", "Lives in Lisbon"]
        assert archive.document("profile.json") == {"email": "ana@example.com", "name": "Ana"}
    # The parts are gone; the archive stays (the bucket's lifecycle removes it after 7 days).
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == [f"exports/{ana.id}/{job['jobId']}/export.zip"]
    # The job listing tells the size, never the link.
    listed = api.get("/api/v1/users/jobs", headers=ana.auth).json()["items"]
    assert [j["jobId"] for j in listed] == [job["jobId"]]
    assert "downloadUrl" not in listed[0]["result"]


def test_the_download_link_names_only_its_own_archive_and_expires_in_15_minutes(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, ben = people["ana"], people["ben"]
    jobs = {}
    for person in (ana, ben):
        give_data(person.id)
        jobs[person.id] = api.post("/api/v1/users/export", headers=person.auth).json()["jobId"]
        run_export(monkeypatch, jobs[person.id], person.id)
    url = api.get(f"/api/v1/users/export/{jobs[ana.id]}", headers=ana.auth).json()["result"]["downloadUrl"]
    assert urlsplit(url).path.endswith(f"/exports/{ana.id}/{jobs[ana.id]}/export.zip")
    assert requests.get(url, timeout=10).status_code == 200
    assert link_lifetime(url) == timedelta(minutes=15)
    # moto does not check signatures: S3's own check, done here, refuses the link's signature on any other key.
    assert signature_holds(url)
    for other in (f"exports/{ben.id}/{jobs[ben.id]}", f"exports/{ana.id}/{jobs[ben.id]}"):
        assert not signature_holds(url.replace(f"exports/{ana.id}/{jobs[ana.id]}", other))


def test_one_running_export_per_user_until_it_ends_or_its_lock_expires(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, ben = people["ana"], people["ben"]
    first = api.post("/api/v1/users/export", headers=ana.auth).json()
    second = api.post("/api/v1/users/export", headers=ana.auth)
    assert second.status_code == 409
    assert error_code(second) == "job_in_progress"
    assert api.post("/api/v1/users/export", headers=ben.auth).status_code == 202  # others are not held up

    run_export(monkeypatch, first["jobId"], ana.id)
    after_success = api.post("/api/v1/users/export", headers=ana.auth)
    assert after_success.status_code == 202

    # A job that never ends: once its lock has expired, the next export runs.
    lock = {"pk": {"S": f"USER#{ana.id}"}, "sk": {"S": "LOCK#export"}}
    held = client("dynamodb").get_item(TableName=JOBS.name_from_env(), Key=lock)["Item"]
    assert held["jobId"]["S"] == after_success.json()["jobId"]
    assert api.post("/api/v1/users/export", headers=ana.auth).status_code == 409
    client("dynamodb").update_item(
        TableName=JOBS.name_from_env(), Key=lock, UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": {"N": str(int(datetime.now(UTC).timestamp()) - 1)}},
    )  # fmt: skip
    assert api.post("/api/v1/users/export", headers=ana.auth).status_code == 202


def test_another_users_job_is_not_found(api: TestClient, people: dict[str, User]) -> None:
    ana, ben = people["ana"], people["ben"]
    export = api.post("/api/v1/users/export", headers=ana.auth).json()["jobId"]
    upload = api.post("/api/v1/users/import", headers=ana.auth, json={"format": "chatgpt"}).json()["jobId"]
    for method, path in (
        ("GET", f"/users/export/{export}"),
        ("GET", f"/users/import/{upload}"),
        ("POST", f"/users/import/{upload}/start"),
        ("GET", "/users/export/01J0000000000000000000000Z"),
    ):
        response = api.request(method, "/api/v1" + path, headers=ben.auth)
        assert (response.status_code, error_code(response)) == (404, "job_not_found"), path
    # A job of one kind is not found through the other kind's route.
    assert api.get(f"/api/v1/users/import/{export}", headers=ana.auth).status_code == 404
    assert api.get("/api/v1/users/jobs", headers=ben.auth).json()["items"] == []


def test_admins_list_the_stages_jobs_by_user_and_kind_page_by_page(api: TestClient, people: dict[str, User]) -> None:
    admin, ana, ben = people["admin"], people["ana"], people["ben"]
    made = [
        api.post("/api/v1/users/export", headers=ana.auth).json()["jobId"],
        api.post("/api/v1/users/import", headers=ana.auth, json={"format": "claude"}).json()["jobId"],
        api.post("/api/v1/users/import", headers=ben.auth, json={"format": "stratus"}).json()["jobId"],
    ]
    archive = api.post("/api/v1/admin/jobs/archive", headers=admin.auth)
    assert archive.status_code == 202
    assert archive.json()["kind"] == "archive"
    made.append(archive.json()["jobId"])
    assert execution_input(made[-1]) == {"kind": "archive", "jobId": made[-1]}

    def listed(query: str = "", **params: Any) -> list[str]:
        response = api.get(f"/api/v1/admin/jobs{query}", headers=admin.auth, params=params)
        assert response.status_code == 200, response.text
        return [job["jobId"] for job in response.json()["items"]]

    assert listed() == made[::-1]
    assert listed(userId=ana.id) == made[1::-1]
    assert listed(kind="import") == [made[2], made[1]]
    assert listed(userId=ana.id, kind="import") == [made[1]]
    pages, cursor = [], None
    while True:
        body = api.get("/api/v1/admin/jobs", headers=admin.auth, params={"limit": 3, "cursor": cursor}).json()
        pages.append([job["jobId"] for job in body["items"]])
        if not (cursor := body["nextCursor"]):
            break
    assert [job for page in pages for job in page] == made[::-1]
    assert len(pages[0]) == 3
    one = api.get(f"/api/v1/admin/jobs/{made[0]}", headers=admin.auth).json()
    assert (one["userId"], one["kind"]) == (ana.id, "export")

    for path in ("/admin/jobs", f"/admin/jobs/{made[0]}"):
        refused = api.get("/api/v1" + path, headers=ana.auth)
        assert refused.status_code == 403
        assert error_code(refused) == "permission_denied"
    assert api.post("/api/v1/admin/jobs/archive", headers=ana.auth).status_code == 403
    user_cursor = api.get("/api/v1/admin/jobs", headers=admin.auth, params={"limit": 1, "userId": ana.id}).json()
    crossed = api.get("/api/v1/admin/jobs", headers=admin.auth, params={"cursor": user_cursor["nextCursor"]})
    assert crossed.status_code == 400
    assert error_code(crossed) == "invalid_cursor"


def test_a_job_whose_workflow_cannot_start_is_failed_and_holds_nothing(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = people["ana"]
    workflow = os.environ["EXPORT_WORKFLOW_ARN"]
    monkeypatch.setenv("EXPORT_WORKFLOW_ARN", workflow.replace("stratus-test-export", "gone"))
    refused = api.post("/api/v1/users/export", headers=ana.auth)
    assert refused.status_code == 503
    assert error_code(refused) == "job_not_started"
    (job,) = api.get("/api/v1/users/jobs", headers=ana.auth).json()["items"]
    assert job["status"] == "failed"
    assert job["error"] == {"code": "job_not_started", "message": service.NOT_STARTED_MESSAGE}
    monkeypatch.setenv("EXPORT_WORKFLOW_ARN", workflow)
    assert api.post("/api/v1/users/export", headers=ana.auth).status_code == 202  # the lock went with it
