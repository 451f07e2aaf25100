"""Agents on the running local stack over real HTTP: an admin creates an agent, uploads a PDF through its
presigned URL (a PUT straight to the stack's S3, whose notification reaches the processor through the gateway),
the document becomes ready and a paraphrase finds it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import LocalStack, running_stack
from tests.fakes.documents import pdf_document

pytestmark = pytest.mark.e2e

AGENTS = "/api/v1/agents"
FACT = "The Quillon observatory polishes its great telescope mirror with goat milk every leap year."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: its first account is the stage's admin."""
    with running_stack(tmp_path_factory.mktemp("agents-stack") / "local.log") as stack:
        yield stack


def signed_up(http: httpx.Client) -> dict[str, str]:
    email = f"agents-{uuid.uuid4().hex[:8]}@example.com"
    response = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


def test_a_pdf_uploaded_through_its_presigned_url_becomes_ready_and_is_found(stack: LocalStack) -> None:
    data = pdf_document(
        [["# Campus", "The cafeteria serves soup until two.", "Parking permits renew in January."], ["# Mirror", FACT]]
    )
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        admin = signed_up(http)  # the stage's first account
        created = http.post(AGENTS, headers=admin, json={"name": "Observatory", "instructions": "Answer from sources."})
        assert created.status_code == 201, created.text
        agent_id = created.json()["agentId"]
        declared = {"fileName": "observatory.pdf", "contentType": "application/pdf", "sizeBytes": len(data)}
        upload = http.post(f"{AGENTS}/{agent_id}/documents", headers=admin, json=declared)
        assert upload.status_code == 201, upload.text
        body = upload.json()
        put = httpx.put(body["uploadUrl"], content=data, headers={"content-type": "application/pdf"}, timeout=30)
        assert put.status_code == 200, put.text

        path = f"{AGENTS}/{agent_id}/documents/{body['documentId']}"
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
        while (document := http.get(path, headers=admin).json())["status"] in ("uploading", "processing"):
            assert time.monotonic() < deadline, document
            time.sleep(0.2)
        assert document["status"] == "ready", document
        assert document["pages"] == 2

        found = http.post(
            f"{AGENTS}/{agent_id}/search", headers=admin, json={"query": "What is the telescope mirror cleaned with?"}
        )
        assert found.status_code == 200, found.text
        best = found.json()["items"][0]
        assert (best["documentId"], best["fileName"], best["page"]) == (body["documentId"], "observatory.pdf", 2)
        assert "goat milk" in best["snippet"]
