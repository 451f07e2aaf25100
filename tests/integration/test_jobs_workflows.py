"""The real workflows, executed by moto's Step Functions from the definitions local mode provisions, their Lambda
tasks in the catalog's handlers: what an account deletion leaves behind, anywhere in the stage."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi.testclient import TestClient

from infra.local.stepfunctions import ACCOUNT_ID, finished_execution
from shared.aws import client
from shared.tables import TABLES
from tests.integration.conftest import PASSWORD, User, register
from tests.integration.test_revocation import api_key, bearer


def post(api: TestClient, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/api/v1{path}", headers=user.auth, json=body)
    assert response.status_code in (200, 201, 202), response.text
    return dict(response.json())


def execution_of(workflow: str, job_id: str) -> dict[str, Any]:
    machine = os.environ[f"{workflow.upper()}_WORKFLOW_ARN"]
    execution = machine.replace(":stateMachine:", ":execution:") + f":{job_id}"
    return finished_execution(client("stepfunctions"), execution)


def items_naming(user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every item of every table with the user's id in any attribute, read from moto's own memory: stronger than
    any Query, as it also sees what no index would find."""
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[ACCOUNT_ID][os.environ["AWS_REGION"]]
    found = []
    for spec in TABLES:
        table = backend.get_table(spec.name_from_env())
        for item in table.all_items():
            document = item.to_json()["Attributes"]
            if user_id in json.dumps(document):
                found.append((spec.context, document))
    return found


def objects_naming(user_id: str) -> list[str]:
    s3 = client("s3")
    keys = []
    for variable in ("PAYLOAD_BUCKET", "EXPORT_BUCKET"):
        listed = s3.list_objects_v2(Bucket=os.environ[variable]).get("Contents", [])
        keys += [entry["Key"] for entry in listed if user_id in entry["Key"]]
    return keys


def test_an_account_deletion_leaves_nothing_of_the_user_anywhere_but_their_words_in_others_conversations(
    api: TestClient,
) -> None:
    register(api, "admin@example.com")
    leaver, friend = register(api, "leaver@example.com"), register(api, "friend@example.com")
    # Their own history, one large message in the payload bucket.
    project = post(api, leaver, "/projects", {"name": "Garden"})
    own = post(api, leaver, "/conversations", {"title": "Tomatoes", "projectId": project["id"]})
    for content in ("When do I plant?", "soil " * 100_000):
        post(api, leaver, f"/conversations/{own['id']}/messages", {"content": content})
    post(api, leaver, "/prompts", {"title": "Weekly", "content": "Plan my week"})
    post(api, leaver, "/memories", {"content": "Grows tomatoes"})
    api_key(api, leaver, ["ai.chat"])
    # Their words in a friend's shared project, and the friend sharing their own project with them.
    shared = post(api, friend, "/projects", {"name": "Allotment"})
    post(api, friend, f"/projects/{shared['id']}/members", {"email": leaver.email, "role": "editor"})
    friends = post(api, friend, "/conversations", {"title": "Beans", "projectId": shared["id"]})
    post(api, leaver, f"/conversations/{friends['id']}/messages", {"content": "Beans need poles"})
    # A finished export: an archive in the export bucket and a job record.
    export = api.post("/api/v1/users/export", headers=leaver.auth).json()
    assert execution_of("export", export["jobId"])["status"] == "SUCCEEDED"
    assert items_naming(leaver.id)
    assert objects_naming(leaver.id)

    accepted = api.request("DELETE", "/api/v1/users/account", headers=leaver.auth, json={"password": PASSWORD})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobId"]
    assert execution_of("deletion", job_id)["status"] == "SUCCEEDED"

    # What stays, by design: the revocation that refuses their old credentials until they expire, and the
    # deletion job itself, which admins see.
    left = [
        (context, item["pk"])
        for context, item in items_naming(leaver.id)
        if item["pk"] not in ({"S": "REVOCATIONS"}, {"S": f"JOB#{job_id}"})
    ]
    assert left == []
    assert objects_naming(leaver.id) == []
    kept = api.get(f"/api/v1/conversations/{friends['id']}/messages", headers=friend.auth).json()["items"]
    assert [message["content"] for message in kept] == ["Beans need poles"]
    assert kept[0]["authorId"] != leaver.id
    admin_view = api.get(f"/api/v1/admin/jobs/{job_id}", headers=login_headers(api, "admin@example.com")).json()
    assert (admin_view["kind"], admin_view["status"]) == ("deletion", "succeeded")
    assert register(api, "leaver@example.com").id != leaver.id
    assert api.get("/api/v1/auth/me", headers=bearer(leaver.access_token)).status_code == 401


def login_headers(api: TestClient, email: str) -> dict[str, str]:
    signed_in = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    return {"authorization": f"Bearer {signed_in['accessToken']}"}
