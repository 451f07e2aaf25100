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
from functions.jobs.errors import JobInputError
from functions.jobs.formats.archive import ExportArchive, ExportWriter
from functions.jobs.formats.limits import ImportLimits
from infra.catalog import AUTHORIZER_FUNCTION, all_routes
from infra.local.gateway import Gateway
from shared.aws import client
from shared.tables import JOBS
from tests.fakes import job_contexts as fakes
from tests.integration.conftest import User, error_code, register
from tests.unit.test_jobs_imports import chatgpt_conversation_with_an_edit

BUCKET = "stratus-test-exports"


@pytest.fixture
def api(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with the jobs routes, the export bucket, a state machine per workflow, and the fake contexts."""
    fakes.install(monkeypatch)
    monkeypatch.setenv("EXPORT_BUCKET", BUCKET)
    client("s3").create_bucket(Bucket=BUCKET)
    stepfunctions = client("stepfunctions")
    for kind, variable in service.WORKFLOW_VARIABLES.items():
        machine = stepfunctions.create_state_machine(
            name=f"stratus-test-{kind}-held",
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/stratus-test-jobs",
        )
        monkeypatch.setenv(variable, machine["stateMachineArn"])
    gateway = Gateway(all_routes(), authorizer=AUTHORIZER_FUNCTION, stage="test")
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


# Imports ----------------------------------------------------------------------------------------------------


def stratus_archive() -> bytes:
    """A Stratus export with a bad item of each kind among good ones."""
    sink = io.BytesIO()
    with ExportWriter(sink, user_id="01J00000000000000000000OLD", exported_at=datetime.now(UTC)) as writer:
        writer.write_context("projects", [{"id": "P1", "name": "Thesis", "createdAt": at(0), "updatedAt": at(0)}])
        writer.write_conversations([
            {"id": "C1", "title": "First", "createdAt": at(1), "projectId": "P1", "messages": [
                {"role": "user", "content": "hi", "createdAt": at(1)},
                {"role": "robot", "content": "beep", "createdAt": at(2)},
                {"role": "assistant", "content": "hello", "createdAt": at(3)},
            ]},
            {"id": "C2", "title": "Undated", "messages": [{"role": "user", "content": "when?", "createdAt": at(4)}]},
            {"id": "C3", "title": "Third", "createdAt": at(5),
             "messages": [{"role": "user", "content": "again", "createdAt": at(5)}]},
        ])  # fmt: skip
        writer.write_context("prompts", [
            {"id": "R1", "title": "Summarize", "content": "Sum it up"},
            {"id": "R2", "title": "refused by the context", "content": "x"},
        ])  # fmt: skip
        writer.write_context("memories", [
            {"id": "M1", "content": "Likes tea", "createdAt": at(6)},
            {"id": "M2", "content": "", "createdAt": at(7)},
        ])  # fmt: skip
    return sink.getvalue()


def upload_import(api: TestClient, person: User, import_format: str, content: bytes) -> str:
    created = api.post("/api/v1/users/import", headers=person.auth, json={"format": import_format})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["uploadMethod"], body["maxBytes"]) == ("PUT", service.DEFAULT_LIMITS.max_bytes)
    assert datetime.fromisoformat(body["expiresAt"]) > datetime.now(UTC)
    assert requests.put(body["uploadUrl"], data=content, timeout=10).status_code == 200
    return str(body["jobId"])


def test_an_import_is_uploaded_started_and_read_page_by_page_into_counts_and_rejections(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = people["ana"]
    monkeypatch.setattr(tasks, "PAGE_ITEMS", 3)
    job_id = upload_import(api, ana, "stratus", stratus_archive())
    started = api.post(f"/api/v1/users/import/{job_id}/start", headers=ana.auth)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    assert execution_input(job_id) == {"kind": "import", "jobId": job_id, "userId": ana.id, "format": "stratus"}

    pages = run_import(job_id, ana.id, "stratus")
    assert [page["cursor"] for page in pages] == ["2", "4", "7", None]
    job = api.get(f"/api/v1/users/import/{job_id}", headers=ana.auth).json()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 2, "total": 2, "contexts": {"conversations": "done", "memories": "done"}}
    assert job["result"] == {
        "imported": {"conversations": 2, "messages": 3, "projects": 1, "prompts": 1, "memories": 1},
        "rejected": [
            {"item": "conversation 1, message 2", "reason": "its role is not user, assistant or system"},
            {"item": "conversation 2", "reason": "its createdAt is not a timestamp"},
            {"item": 'prompt "refused by the context"', "reason": "the context refused it"},
            {"item": "memory 2", "reason": "it has no content"},
        ],
        "rejectedMore": 0,
    }
    stored = fakes.user(ana.id).imported
    assert stored[f"{job_id}/ImportedConversation/C1"] == {
        "title": "First", "messages": [("user", "hi"), ("assistant", "hello")],
    }  # fmt: skip
    assert stored[f"{job_id}/ImportedMemory/M1"] == {"content": "Likes tea"}

    # A page run again, and its figures added again, change nothing.
    again = tasks.import_task({"action": "import", "jobId": job_id, "userId": ana.id, "format": "stratus",
                               "cursor": None}, None)  # fmt: skip
    assert again["cursor"] == pages[0]["cursor"]
    step("import-page", jobId=job_id, **again)
    assert api.get(f"/api/v1/users/import/{job_id}", headers=ana.auth).json()["result"] == job["result"]
    assert len(fakes.user(ana.id).imported) == len(stored)
    # Nothing landed in anyone else's account.
    assert fakes.user(people["ben"].id).imported == {}


def test_a_chatgpt_export_imports_only_the_branch_its_user_saw(api: TestClient, people: dict[str, User]) -> None:
    ana = people["ana"]
    conversations = [chatgpt_conversation_with_an_edit(), {"title": "No mapping", "create_time": 1.0}]
    job_id = upload_import(api, ana, "chatgpt", json.dumps(conversations).encode())
    assert api.post(f"/api/v1/users/import/{job_id}/start", headers=ana.auth).status_code == 202
    run_import(job_id, ana.id, "chatgpt")
    result = api.get(f"/api/v1/users/import/{job_id}", headers=ana.auth).json()["result"]
    assert result["imported"] == {"conversations": 1, "messages": 4, "projects": 0, "prompts": 0, "memories": 0}
    assert [rejected["item"] for rejected in result["rejected"]] == ['conversation 2 "No mapping"']
    (conversation,) = fakes.user(ana.id).imported.values()
    assert conversation["messages"] == [
        ("user", "What is 2+2?"), ("assistant", "It is 4."), ("user", "And plus 2?"), ("assistant", "It is 6."),
    ]  # fmt: skip


def test_an_import_starts_only_once_its_file_is_uploaded_and_within_max_bytes(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = people["ana"]
    created = api.post("/api/v1/users/import", headers=ana.auth, json={"format": "claude"}).json()
    early = api.post(f"/api/v1/users/import/{created['jobId']}/start", headers=ana.auth)
    assert (early.status_code, error_code(early)) == (422, "upload_missing")
    assert api.get(f"/api/v1/users/import/{created['jobId']}", headers=ana.auth).json()["status"] == "queued"
    unknown = api.post("/api/v1/users/import", headers=ana.auth, json={"format": "docx"})
    assert unknown.status_code == 422

    monkeypatch.setattr(service, "DEFAULT_LIMITS", ImportLimits(max_bytes=40))
    too_large = upload_import(api, ana, "chatgpt", b"[" + b" " * 48 + b"]")
    refused = api.post(f"/api/v1/users/import/{too_large}/start", headers=ana.auth)
    assert (refused.status_code, error_code(refused)) == (422, "import_too_large")
    job = api.get(f"/api/v1/users/import/{too_large}", headers=ana.auth).json()
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": "import_too_large",
        "message": "The file is 50 bytes, over the 40 bytes an import may be",
    }

    small = upload_import(api, ana, "chatgpt", b"[]")
    assert api.post(f"/api/v1/users/import/{small}/start", headers=ana.auth).status_code == 202
    twice = api.post(f"/api/v1/users/import/{small}/start", headers=ana.auth)
    assert (twice.status_code, error_code(twice)) == (409, "job_already_started")


# Failures and retries ---------------------------------------------------------------------------------------


def lambda_error(error: BaseException) -> dict[str, str]:
    """What a Catch hands the `fail` step for a Lambda task that raised `error`."""
    cause = {"errorMessage": str(error), "errorType": type(error).__name__,
             "stackTrace": ['  File "/var/task/functions/jobs/tasks.py", line 80, in import_task\n']}  # fmt: skip
    return {"Error": type(error).__name__, "Cause": json.dumps(cause)}


def test_a_file_that_is_not_what_it_claims_fails_the_job_with_the_readers_reason(
    api: TestClient, people: dict[str, User]
) -> None:
    ana = people["ana"]
    job_id = upload_import(api, ana, "chatgpt", b"this is not JSON at all")
    api.post(f"/api/v1/users/import/{job_id}/start", headers=ana.auth)
    step("begin", jobId=job_id, kind="import")
    with pytest.raises(JobInputError) as raised:
        tasks.import_task({"action": "import", "jobId": job_id, "userId": ana.id, "format": "chatgpt"}, None)
    step("fail", jobId=job_id, error=lambda_error(raised.value))

    job = api.get(f"/api/v1/users/import/{job_id}", headers=ana.auth).json()
    assert job["status"] == "failed"
    assert job["error"] == {"code": raised.value.code, "message": raised.value.message}
    assert "JSON" in job["error"]["message"]
    assert fakes.user(ana.id).imported == {}


def test_an_internal_failure_shows_a_generic_message_and_frees_the_user(
    api: TestClient, people: dict[str, User]
) -> None:
    ana = people["ana"]
    job_id = api.post("/api/v1/users/export", headers=ana.auth).json()["jobId"]
    step("begin", jobId=job_id, kind="export")
    step("context-started", jobId=job_id, context="conversations")
    step("fail", jobId=job_id, context="conversations", error=lambda_error(KeyError("EXPORT_BUCKET")))

    job = api.get(f"/api/v1/users/export/{job_id}", headers=ana.auth).json()
    assert job["status"] == "failed"
    assert job["error"] == {"code": steps.FAILED_CODE, "message": steps.FAILED_MESSAGE}
    assert job["progress"]["contexts"] == {"conversations": "failed", "memories": "queued"}
    assert job["result"] is None
    # A timeout has no Lambda cause at all.
    assert api.post("/api/v1/users/export", headers=ana.auth).status_code == 202
    other = api.get("/api/v1/users/jobs", headers=ana.auth).json()["items"][0]["jobId"]
    step("fail", jobId=other, error={"Error": "States.Timeout", "Cause": ""})
    assert api.get(f"/api/v1/users/export/{other}", headers=ana.auth).json()["error"]["code"] == steps.FAILED_CODE


def test_every_step_run_twice_changes_nothing(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = people["ana"]
    give_data(ana.id)
    job_id = api.post("/api/v1/users/export", headers=ana.auth).json()["jobId"]
    for _ in range(2):
        step("begin", jobId=job_id, kind="export")
    for context in ("conversations", "memories"):
        for _ in range(2):
            step("context-started", jobId=job_id, context=context)
            context_page(monkeypatch, action="export", jobId=job_id, userId=ana.id, context=context, cursor=None,
                         page=0)  # fmt: skip
            step("context-done", jobId=job_id, context=context)
    mid = api.get(f"/api/v1/users/export/{job_id}", headers=ana.auth).json()
    assert mid["progress"]["done"] == 2
    assert set(mid["progress"]["contexts"].values()) == {"done"}
    step("assemble-export", jobId=job_id, userId=ana.id)
    first = api.get(f"/api/v1/users/export/{job_id}", headers=ana.auth).json()["result"]
    step("assemble-export", jobId=job_id, userId=ana.id)
    for _ in range(2):
        step("finish", jobId=job_id)
    step("fail", jobId=job_id, error={"Error": "States.Timeout", "Cause": ""})  # too late: it ended
    job = api.get(f"/api/v1/users/export/{job_id}", headers=ana.auth).json()
    assert job["status"] == "succeeded"
    assert job["error"] is None
    assert (job["result"]["sizeBytes"], job["result"]["counts"]) == (first["sizeBytes"], first["counts"])
    assert job["result"]["counts"]["memories"] == 2
    assert requests.get(job["result"]["downloadUrl"], timeout=10).status_code == 200


# Deletion, archiving, the tasks' own checks -----------------------------------------------------------------


def test_a_deletion_removes_the_users_jobs_files_and_lock_but_keeps_its_own_record(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, ana, ben = people["admin"], people["ana"], people["ben"]
    for person in (ana, ben):
        give_data(person.id)
        run_export(monkeypatch, api.post("/api/v1/users/export", headers=person.auth).json()["jobId"], person.id)
    upload_import(api, ana, "chatgpt", b"[]")
    api.post("/api/v1/users/export", headers=ana.auth)  # still running: it holds the lock

    job_id = service.start_deletion(ana.id)
    assert execution_input(job_id) == {"kind": "deletion", "jobId": job_id, "userId": ana.id}
    monkeypatch.setattr(tasks, "PAGE_ITEMS", 1)
    step("begin", jobId=job_id, kind="deletion")
    contexts = job_contexts("deletion")
    for context in [c for c in contexts if not c.last] + [c for c in contexts if c.last]:
        step("context-started", jobId=job_id, context=context.name)
        cursor, deleted = None, 0
        while True:
            page = context_page(monkeypatch, action="delete", jobId=job_id, userId=ana.id, context=context.name,
                                cursor=cursor)  # fmt: skip
            deleted += page["deleted"]
            if (cursor := page["cursor"]) is None:
                break
        step("context-done", jobId=job_id, context=context.name, count=deleted)
    step("finish", jobId=job_id)

    table = JOBS.name_from_env()
    dynamodb = client("dynamodb")
    left = dynamodb.query(TableName=table, IndexName="gsi1", KeyConditionExpression="gsi1pk = :u",
                          ExpressionAttributeValues={":u": {"S": f"USER#{ana.id}"}})["Items"]  # fmt: skip
    assert [item["jobId"]["S"] for item in left] == [job_id]
    lock = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"USER#{ana.id}"}, "sk": {"S": "LOCK#export"}})
    assert "Item" not in lock
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys
    assert all(ben.id in key for key in keys)
    assert fakes.user(ana.id).conversations == []
    assert fakes.user(ben.id).conversations != []
    (seen,) = api.get("/api/v1/admin/jobs", headers=admin.auth, params={"userId": ana.id}).json()["items"]
    assert (seen["kind"], seen["status"]) == ("deletion", "succeeded")
    # The jobs context removed three jobs (two exports, an import) and two files (an archive, an upload).
    assert seen["result"] == {"deleted": {"conversations": 3, "memories": 2, "jobs": 5}}


def test_a_scheduled_archiving_run_gets_its_record_from_its_first_step(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = "e5a8b0d4-schedule-9f3c"
    step("begin", jobId=run, kind="archive")
    step("context-started", jobId=run, context="conversations")
    now = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    page = context_page(monkeypatch, action="archive", jobId=run, context="conversations", cursor=None,
                        now=now.isoformat())  # fmt: skip
    assert page == {"cursor": None, "archived": 1}
    (archived_at,) = fakes.ARCHIVED_AT
    assert archived_at == now
    step("context-done", jobId=run, context="conversations", count=page["archived"])
    step("finish", jobId=run)
    job = api.get(f"/api/v1/admin/jobs/{run}", headers=people["admin"].auth).json()
    assert (job["kind"], job["status"], job["userId"]) == ("archive", "succeeded", None)
    assert job["result"] == {"archived": {"conversations": 1}}


def test_a_context_task_refuses_the_pages_of_another_context(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.install(monkeypatch)
    monkeypatch.setenv("JOB_CONTEXT", "memories")
    with pytest.raises(ValueError, match="memories"):
        tasks.context_task({"action": "delete", "jobId": "J", "userId": "U", "context": "conversations"}, None)


def test_an_import_page_reports_100_rejected_items_and_counts_the_rest(
    api: TestClient, people: dict[str, User]
) -> None:
    ana = people["ana"]
    unreadable = [{"title": f"Broken {n}", "create_time": 1.0} for n in range(150)]
    job_id = upload_import(api, ana, "chatgpt", json.dumps([chatgpt_conversation_with_an_edit(), *unreadable]).encode())
    api.post(f"/api/v1/users/import/{job_id}/start", headers=ana.auth)
    (page,) = run_import(job_id, ana.id, "chatgpt")
    assert (len(page["rejected"]), page["rejectedMore"]) == (100, 50)
    result = api.get(f"/api/v1/users/import/{job_id}", headers=ana.auth).json()["result"]
    assert result["imported"]["conversations"] == 1
    assert (len(result["rejected"]), result["rejectedMore"]) == (100, 50)
    assert result["rejected"][0]["item"] == 'conversation 2 "Broken 0"'
