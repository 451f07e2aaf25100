"""Agents through API Gateway events on moto: the stage's agents and who may change and use them; documents
uploaded through their presigned URLs (moto takes the PUT, its notification runs the processor on a thread, as
S3 does in AWS), processed into the agent's S3 Vectors index and found by a paraphrase; what a bad upload ends
as; deleting a document or an agent removing its vectors."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from functions.agents import store
from shared.aws import client
from tests.fakes import documents as files
from tests.fakes.anthropic_server import FakeAnthropic
from tests.integration.conftest import User, error_code, login, register
from tests.sse import sse_events

AGENTS = "/api/v1/agents"
PDF, DOCX = "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN, HTML = "text/markdown", "text/html"


@pytest.fixture
def people(api: TestClient) -> dict[str, User]:
    """An admin (the first user), a member and a viewer."""
    admin = register(api, "admin@example.com")
    member = register(api, "ada@example.com")
    viewer = register(api, "vic@example.com")
    demoted = api.put(f"/api/v1/admin/users/{viewer.id}/roles", headers=admin.auth, json={"roles": ["viewer"]})
    assert demoted.status_code == 200, demoted.text
    return {"admin": admin, "member": member, "viewer": login(api, "vic@example.com")}


def create_agent(api: TestClient, user: User, **body: Any) -> dict[str, Any]:
    response = api.post(AGENTS, headers=user.auth, json={"name": "Support", "instructions": "Answer briefly.", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def start_upload(api: TestClient, user: User, agent_id: str, **body: Any) -> Any:
    return api.post(f"{AGENTS}/{agent_id}/documents", headers=user.auth, json=body)


def upload(
    api: TestClient, user: User, agent_id: str, data: bytes, content_type: str, *, file_name: str = "doc",
    declared_type: str | None = None, declared_size: int | None = None,
) -> str:  # fmt: skip
    """Declare a document, PUT its bytes to the presigned URL; its document id."""
    declared = {"fileName": file_name, "contentType": declared_type or content_type}
    response = start_upload(api, user, agent_id, **declared, sizeBytes=declared_size or len(data))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["uploadMethod"] == "PUT"
    assert body["maxBytes"] == 25 * 1024 * 1024
    put = requests.put(body["uploadUrl"], data=data, headers={"content-type": content_type}, timeout=30)
    assert put.status_code == 200, put.text
    return str(body["documentId"])


def document(api: TestClient, user: User, agent_id: str, document_id: str) -> dict[str, Any]:
    response = api.get(f"{AGENTS}/{agent_id}/documents/{document_id}", headers=user.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def processed(api: TestClient, user: User, agent_id: str, document_id: str) -> dict[str, Any]:
    """The document once processing has ended (a guard against a hang, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while (current := document(api, user, agent_id, document_id))["status"] in ("uploading", "processing"):
        assert time.monotonic() < deadline, f"still {current['status']}: {current}"
        time.sleep(0.05)
    return current


def search(api: TestClient, user: User, agent_id: str, query: str, **extra: Any) -> Any:
    return api.post(f"{AGENTS}/{agent_id}/search", headers=user.auth, json={"query": query, **extra})


def index_keys(agent: dict[str, Any]) -> list[str]:
    """Every vector key in the agent's index, read with ListVectors."""
    from functions.agents import vectors

    stored = store.get_agent(agent["agentId"])
    name = vectors.index_name(agent["agentId"], int(stored.index_generation))
    s3vectors = client("s3vectors")
    keys: list[str] = []
    arguments: dict[str, Any] = {"vectorBucketName": os.environ["VECTOR_BUCKET"], "indexName": name}
    while True:
        page = s3vectors.list_vectors(**arguments)
        keys += [vector["key"] for vector in page.get("vectors", [])]
        if not page.get("nextToken"):
            return keys
        arguments["nextToken"] = page["nextToken"]


def index_names() -> list[str]:
    page = client("s3vectors").list_indexes(vectorBucketName=os.environ["VECTOR_BUCKET"])
    return [index["indexName"] for index in page.get("indexes", [])]


# Agents and who may do what -------------------------------------------------------------------------------------


def test_an_admin_creates_changes_lists_and_deletes_an_agent(api: TestClient, people: dict[str, User]) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin, model="claude-sonnet-4-6", temperature=0.2, knowledge={"topK": 7})
    assert agent["knowledge"] == {"enabled": True, "topK": 7, "minScore": None}
    assert (agent["status"], agent["mcpServers"], agent["index"]) == ("active", [], None)
    second = create_agent(api, admin, name="Sales")
    first_page = api.get(AGENTS, headers=admin.auth, params={"limit": 1})
    assert first_page.status_code == 200
    assert [item["agentId"] for item in first_page.json()["items"]] == [agent["agentId"]]
    rest = api.get(AGENTS, headers=admin.auth, params={"cursor": first_page.json()["nextCursor"]})
    assert [item["agentId"] for item in rest.json()["items"]] == [second["agentId"]]

    changed = api.put(
        f"{AGENTS}/{agent['agentId']}", headers=admin.auth,
        json={"instructions": "Cite the handbook.", "temperature": None, "status": "inactive"},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["instructions"] == "Cite the handbook."
    assert changed.json()["temperature"] is None
    assert changed.json()["model"] == "claude-sonnet-4-6"
    assert changed.json()["status"] == "inactive"

    deleted = api.delete(f"{AGENTS}/{agent['agentId']}", headers=admin.auth)
    assert deleted.status_code == 204
    gone = api.get(f"{AGENTS}/{agent['agentId']}", headers=admin.auth)
    assert gone.status_code == 404
    assert error_code(gone) == "not_found"


def test_members_use_agents_but_cannot_change_them_or_upload_and_viewers_cannot_search(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, member, viewer = people["admin"], people["member"], people["viewer"]
    agent = create_agent(api, admin)
    path = f"{AGENTS}/{agent['agentId']}"
    refused = [
        api.post(AGENTS, headers=member.auth, json={"name": "Mine"}),
        api.put(path, headers=member.auth, json={"name": "Renamed"}),
        api.delete(path, headers=member.auth),
        start_upload(api, member, agent["agentId"], fileName="a.md", contentType=MARKDOWN, sizeBytes=10),
        api.post(AGENTS, headers=viewer.auth, json={"name": "Mine"}),
        search(api, viewer, agent["agentId"], "anything"),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    assert {error_code(response) for response in refused} == {"permission_denied"}
    for user in (member, viewer):
        assert api.get(path, headers=user.auth).json()["name"] == "Support"
        assert [item["agentId"] for item in api.get(AGENTS, headers=user.auth).json()["items"]] == [agent["agentId"]]
    # Nothing indexed yet: a member's search finds nothing, and says so with an empty list.
    found = search(api, member, agent["agentId"], "anything")
    assert (found.status_code, found.json()) == (200, {"items": []})
    assert api.get(path, headers=admin.auth).json()["name"] == "Support"


def test_a_token_of_another_stage_is_refused(api: TestClient, people: dict[str, User]) -> None:
    from shared.auth.keys import key_ring
    from shared.auth.tokens import issue_token
    from shared.settings import settings_from_environ

    admin = people["admin"]
    agent = create_agent(api, admin)
    other_stage = settings_from_environ({**os.environ, "STAGE": "other"})
    foreign = issue_token(
        key_ring(), other_stage, token_type="access", subject=admin.id,
        claims={"sid": "x", "roles": ["admin"], "perms": ["*"]},
    )  # fmt: skip
    headers = {"authorization": f"Bearer {foreign.token}"}
    for response in (
        api.get(AGENTS, headers=headers),
        api.get(f"{AGENTS}/{agent['agentId']}", headers=headers),
        api.post(AGENTS, headers=headers, json={"name": "Intruder"}),
        api.delete(f"{AGENTS}/{agent['agentId']}", headers=headers),
    ):
        assert response.status_code == 401, response.text
    assert api.get(f"{AGENTS}/{agent['agentId']}", headers=admin.auth).status_code == 200


@pytest.fixture
def public_hosts() -> Iterator[None]:
    """Every MCP server host resolves to a public address (none is called)."""
    from functions.mcp import service as mcp_service

    async def resolve(_host: str, _port: int) -> list[str]:
        return ["93.184.216.34"]

    previous = mcp_service.use_resolver(resolve)
    yield
    mcp_service.use_resolver(previous)


@pytest.mark.usefixtures("public_hosts")
def test_agent_settings_are_validated(api: TestClient, people: dict[str, User]) -> None:
    admin, member = people["admin"], people["member"]
    for body in (
        {"name": "A", "knowledge": {"topK": 21}},
        {"name": "A", "knowledge": {"topK": 0}},
        {"name": "A", "knowledge": {"minScore": 1.5}},
        {"name": ""},
        {"name": "A", "temperature": "hot"},
        {"name": "A", "mcpServers": ["01JUNKNOWNSERVER0000000000"]},
    ):
        response = api.post(AGENTS, headers=admin.auth, json=body)
        assert response.status_code == 422, (body, response.text)
        assert error_code(response) == "validation_error"
    stage_server = api.post(
        "/api/v1/mcp/servers", headers=admin.auth,
        json={"name": "tools", "type": "http", "scope": "stage", "config": {"url": "https://tools.example.com/mcp"}},
    )  # fmt: skip
    own_server = api.post(
        "/api/v1/mcp/servers", headers=member.auth,
        json={"name": "mine", "type": "http", "config": {"url": "https://mine.example.com/mcp"}},
    )  # fmt: skip
    assert stage_server.status_code == own_server.status_code == 201, (stage_server.text, own_server.text)
    agent = create_agent(api, admin, mcpServers=[stage_server.json()["id"]])
    assert agent["mcpServers"] == [stage_server.json()["id"]]
    # A user's own server is theirs alone: no agent of the stage may name it.
    refused = api.put(
        f"{AGENTS}/{agent['agentId']}", headers=admin.auth, json={"mcpServers": [own_server.json()["id"]]}
    )
    assert refused.status_code == 422
    assert error_code(refused) == "validation_error"


# Uploads refused before they start -------------------------------------------------------------------------------


def test_an_upload_over_25_mb_or_of_an_unsupported_type_is_refused(api: TestClient, people: dict[str, User]) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin)
    too_large = start_upload(
        api, admin, agent["agentId"], fileName="big.pdf", contentType=PDF, sizeBytes=26 * 1024 * 1024
    )
    assert too_large.status_code == 413
    assert error_code(too_large) == "payload_too_large"
    unsupported = start_upload(api, admin, agent["agentId"], fileName="a.png", contentType="image/png", sizeBytes=10)
    assert unsupported.status_code == 422
    assert error_code(unsupported) == "unsupported_type"
    listed = api.get(f"{AGENTS}/{agent['agentId']}/documents", headers=admin.auth)
    assert listed.json()["items"] == []


def test_an_upload_link_used_after_its_expiry_reads_as_failed(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin)
    response = start_upload(api, admin, agent["agentId"], fileName="late.md", contentType=MARKDOWN, sizeBytes=100)
    document_id = response.json()["documentId"]
    assert document(api, admin, agent["agentId"], document_id)["status"] == "uploading"
    later = store.now() + timedelta(minutes=16)
    monkeypatch.setattr(store, "now", lambda: later)
    expired = document(api, admin, agent["agentId"], document_id)
    assert expired["status"] == "failed"
    assert expired["error"]["code"] == "upload_expired"


# Processing and search -------------------------------------------------------------------------------------------


FACTS = {
    "pdf": "The Zorbel lighthouse keeper feeds exactly forty-two herons every Tuesday at dawn.",
    "docx": "Quarterly invoices from the Vantrel foundry are settled in copper ingots, never in cash.",
    "markdown": "The Ostrava archive keeps its rarest maps in a freezer set to minus eighteen degrees.",
    "html": "Employees of Pellucid Dynamics may bring one tortoise to the office on Fridays.",
}
PARAPHRASES = {
    "pdf": "How many birds does the lighthouse keeper give food to each week?",
    "docx": "What do the foundry's customers pay their invoices with?",
    "markdown": "At what temperature are the archive's rare maps stored?",
    "html": "Which pet may staff bring to work at the end of the week?",
}
FILLER = [
    "The cafeteria opens at eight and serves soup until two in the afternoon.",
    "Parking permits are renewed each January through the facilities desk.",
]


def markdown_text(heading: str, paragraphs: list[str]) -> bytes:
    return "\n\n".join([f"# {heading}", *paragraphs]).encode()


def html_text(heading: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><title>{heading}</title><style>.x {{ color: red }}</style>"
        f"<script>window.track = 1;</script></head><body><h1>{heading}</h1>{body}</body></html>"
    ).encode()


def knowledge_files() -> dict[str, tuple[bytes, str]]:
    """A document of each format holding one fact the model cannot know, beside ordinary filler."""
    docx_blocks: list[files.DocxBlock] = [("heading", "Finance"), ("paragraph", FACTS["docx"])]
    docx_blocks += [("paragraph", filler) for filler in FILLER]
    return {
        "pdf": (files.pdf_document([["# Operations", *FILLER], ["# Lighthouse", FACTS["pdf"]]]), PDF),
        "docx": (files.docx_document(docx_blocks), DOCX),
        "markdown": (markdown_text("Archive", [FACTS["markdown"], *FILLER]), MARKDOWN),
        "html": (html_text("Office rules", [FACTS["html"], *FILLER]), HTML),
    }


def test_documents_of_every_format_become_ready_and_a_paraphrase_finds_the_right_chunk_first(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, member = people["admin"], people["member"]
    agent = create_agent(api, admin)
    ids = {}
    for kind, (data, content_type) in knowledge_files().items():
        ids[kind] = upload(api, admin, agent["agentId"], data, content_type, file_name=f"facts.{kind}")
    for document_id in ids.values():
        done = processed(api, admin, agent["agentId"], document_id)
        assert done["status"] == "ready", done
        assert done["chunks"] >= 1
        assert done["processedAt"]
    assert processed(api, admin, agent["agentId"], ids["pdf"])["pages"] == 2
    for kind, question in PARAPHRASES.items():
        found = search(api, member, agent["agentId"], question)
        assert found.status_code == 200, found.text
        best = found.json()["items"][0]
        assert best["documentId"] == ids[kind], (question, found.json())
        assert best["fileName"] == f"facts.{kind}"
        assert best["chunkId"].startswith(ids[kind] + ":")
        assert FACTS[kind].split()[1] in best["snippet"]
    pdf_hit = search(api, member, agent["agentId"], PARAPHRASES["pdf"]).json()["items"][0]
    assert pdf_hit["page"] == 2
    shown = api.get(f"{AGENTS}/{agent['agentId']}", headers=admin.auth).json()
    assert shown["index"]["generation"] == 1
    assert shown["index"]["offline"] is True
    assert len(index_keys(agent)) == sum(
        processed(api, admin, agent["agentId"], document_id)["chunks"] for document_id in ids.values()
    )


def test_a_deleted_document_is_no_longer_found_and_a_deleted_agent_leaves_no_index(
    api: TestClient, people: dict[str, User]
) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin)
    data, content_type = knowledge_files()["markdown"]
    kept_data, kept_type = knowledge_files()["html"]
    removed = upload(api, admin, agent["agentId"], data, content_type, file_name="archive.md")
    kept = upload(api, admin, agent["agentId"], kept_data, kept_type, file_name="rules.html")
    assert processed(api, admin, agent["agentId"], removed)["status"] == "ready"
    assert processed(api, admin, agent["agentId"], kept)["status"] == "ready"
    assert search(api, admin, agent["agentId"], PARAPHRASES["markdown"]).json()["items"][0]["documentId"] == removed

    assert api.delete(f"{AGENTS}/{agent['agentId']}/documents/{removed}", headers=admin.auth).status_code == 204
    hits = search(api, admin, agent["agentId"], PARAPHRASES["markdown"]).json()["items"]
    assert hits, "the other document is still searched"
    assert all(hit["documentId"] == kept for hit in hits)
    assert not [key for key in index_keys(agent) if key.startswith(removed)]
    assert api.get(f"{AGENTS}/{agent['agentId']}/documents/{removed}", headers=admin.auth).status_code == 404

    index = f"agent-{agent['agentId'].lower()}-1"
    assert index in index_names()
    assert api.delete(f"{AGENTS}/{agent['agentId']}", headers=admin.auth).status_code == 204
    assert index not in index_names()
    objects = client("s3").list_objects_v2(
        Bucket=os.environ["DOCUMENTS_BUCKET"], Prefix=f"documents/{agent['agentId']}/"
    )
    assert objects.get("KeyCount", 0) == 0
    assert api.get(f"{AGENTS}/{agent['agentId']}/documents/{kept}", headers=admin.auth).status_code == 404


def test_bad_files_end_failed_with_a_reason_and_none_stays_processing(api: TestClient, people: dict[str, User]) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin)
    pdf = files.pdf_document([["A perfectly ordinary page of text about gardening."]])
    cases = {
        "encrypted": upload(api, admin, agent["agentId"], files.encrypted_pdf(), PDF),
        "corrupt": upload(api, admin, agent["agentId"], files.truncated_pdf(), PDF),
        "wrong_type": upload(api, admin, agent["agentId"], files.png_bytes(), DOCX),
        "wrong_size": upload(api, admin, agent["agentId"], pdf, PDF, declared_size=len(pdf) + 10),
        "wrong_content_type": upload(api, admin, agent["agentId"], pdf, "text/plain", declared_type=PDF),
    }
    outcomes = {case: processed(api, admin, agent["agentId"], document_id) for case, document_id in cases.items()}
    assert {case: outcome["status"] for case, outcome in outcomes.items()} == dict.fromkeys(cases, "failed")
    codes = {case: outcome["error"]["code"] for case, outcome in outcomes.items()}
    assert codes == {
        "encrypted": "encrypted", "corrupt": "corrupt", "wrong_type": "wrong_type", "wrong_size": "wrong_size",
        "wrong_content_type": "wrong_type",
    }  # fmt: skip
    assert all(outcome["error"]["message"] for outcome in outcomes.values())
    listed = api.get(f"{AGENTS}/{agent['agentId']}/documents", headers=admin.auth).json()["items"]
    assert {item["status"] for item in listed} == {"failed"}


def test_a_second_upload_to_the_same_link_replaces_the_chunks_and_never_duplicates_them(
    api: TestClient, people: dict[str, User]
) -> None:
    admin = people["admin"]
    agent = create_agent(api, admin)
    data = markdown_text("Handbook", [f"Rule {n}: {FILLER[n % 2]} {FACTS['markdown']}" for n in range(40)])
    response = start_upload(api, admin, agent["agentId"], fileName="h.md", contentType=MARKDOWN, sizeBytes=len(data))
    body = response.json()
    for _ in range(2):
        put = requests.put(body["uploadUrl"], data=data, headers={"content-type": MARKDOWN}, timeout=30)
        assert put.status_code == 200
        done = processed(api, admin, agent["agentId"], body["documentId"])
        assert done["status"] == "ready"
    keys = index_keys(agent)
    assert len(keys) == len(set(keys)) == done["chunks"] > 1
    # Processed again on request: the same chunks, still once each.
    again = api.post(f"{AGENTS}/{agent['agentId']}/documents/{body['documentId']}/process", headers=admin.auth)
    assert again.status_code == 202, again.text
    assert processed(api, admin, agent["agentId"], body["documentId"])["status"] == "ready"
    assert sorted(index_keys(agent)) == sorted(keys)


def test_a_member_cannot_reprocess_and_a_document_never_uploaded_cannot_be(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, member = people["admin"], people["member"]
    agent = create_agent(api, admin)
    response = start_upload(api, admin, agent["agentId"], fileName="a.md", contentType=MARKDOWN, sizeBytes=10)
    path = f"{AGENTS}/{agent['agentId']}/documents/{response.json()['documentId']}"
    assert api.post(f"{path}/process", headers=member.auth).status_code == 403
    assert api.delete(path, headers=member.auth).status_code == 403
    never = api.post(f"{path}/process", headers=admin.auth)
    assert never.status_code == 409
    assert error_code(never) == "document_not_uploaded"


def test_a_new_embedder_asks_for_reprocessing_and_processing_moves_every_document_to_a_new_index(
    api: TestClient, people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.agents import service
    from shared.llm.embeddings import forget_stage_embedder
    from shared.settings import get_settings

    admin = people["admin"]
    agent = create_agent(api, admin)
    ids = {}
    for kind in ("markdown", "html"):
        data, content_type = knowledge_files()[kind]
        ids[kind] = upload(api, admin, agent["agentId"], data, content_type, file_name=f"facts.{kind}")
        assert processed(api, admin, agent["agentId"], ids[kind])["status"] == "ready"
    first = api.get(f"{AGENTS}/{agent['agentId']}", headers=admin.auth).json()["index"]

    monkeypatch.setenv("EMBEDDING_MODEL", "offline/hashing")
    get_settings.cache_clear()
    forget_stage_embedder()
    try:
        refused = search(api, admin, agent["agentId"], PARAPHRASES["markdown"])
        assert refused.status_code == 409
        assert error_code(refused) == "reprocess_required"
        chat_agent = service.agent_for_chat(_principal(admin), agent["agentId"])
        assert service.retrieve(chat_agent, PARAPHRASES["markdown"]) == []

        path = f"{AGENTS}/{agent['agentId']}/documents/{ids['markdown']}/process"
        assert api.post(path, headers=admin.auth).status_code == 202
        for document_id in ids.values():
            assert processed(api, admin, agent["agentId"], document_id)["status"] == "ready"
        moved = api.get(f"{AGENTS}/{agent['agentId']}", headers=admin.auth).json()["index"]
        assert (first["embedder"], first["generation"]) != (moved["embedder"], moved["generation"])
        assert moved == {"embedder": "offline/hashing", "dimension": 256, "offline": True, "generation": 2}
        assert f"agent-{agent['agentId'].lower()}-1" not in index_names()
        # The document nobody asked to reprocess was moved too: both are searched in the new index.
        found = {
            hit["documentId"] for hit in search(api, admin, agent["agentId"], "archive maps tortoise").json()["items"]
        }
        assert found == set(ids.values())
        assert len(index_keys(agent)) == sum(
            processed(api, admin, agent["agentId"], document_id)["chunks"] for document_id in ids.values()
        )
    finally:
        monkeypatch.delenv("EMBEDDING_MODEL")
        get_settings.cache_clear()
        forget_stage_embedder()


def _principal(user: User) -> Any:
    from shared.auth.principal import Principal

    return Principal(user_id=user.id, roles=("admin",), permissions=frozenset({"*"}), auth_type="token")


# The jobs workflows ---------------------------------------------------------------------------------------------


def test_a_users_export_holds_the_agents_they_created_and_their_deletion_keeps_the_agents(
    api: TestClient, people: dict[str, User]
) -> None:
    from functions.agents import jobs
    from tests.integration.jobs_pages import delete_all, export_all

    admin, member = people["admin"], people["member"]
    created = [create_agent(api, admin, name=f"Agent {n}") for n in range(3)]
    data, content_type = knowledge_files()["markdown"]
    document_id = upload(api, admin, created[0]["agentId"], data, content_type, file_name="archive.md")
    assert processed(api, admin, created[0]["agentId"], document_id)["status"] == "ready"

    exported, pages = export_all(jobs.export_page, admin.id, jobs.EXPORT_STEM, limit=2)
    assert pages == 2
    assert [agent["agentId"] for agent in exported] == [agent["agentId"] for agent in created]
    assert [document["fileName"] for document in exported[0]["documents"]] == ["archive.md"]
    assert exported[0]["documents"][0]["status"] == "ready"
    assert export_all(jobs.export_page, member.id, jobs.EXPORT_STEM, limit=2) == ([], 1)

    deleted, _ = delete_all(jobs.delete_page, admin.id, limit=2)
    assert deleted == 3
    assert export_all(jobs.export_page, admin.id, jobs.EXPORT_STEM, limit=2) == ([], 1)
    # The agents stay with the stage, documents and all; they no longer name who created them.
    assert [agent["agentId"] for agent in api.get(AGENTS, headers=member.auth).json()["items"]] == [
        agent["agentId"] for agent in created
    ]
    assert store.get_agent(created[0]["agentId"]).created_by is None
    assert search(api, member, created[0]["agentId"], PARAPHRASES["markdown"]).json()["items"][0]["documentId"] == (
        document_id
    )


# Grounded chat on the real pipeline ------------------------------------------------------------------------------

FACT = "The Zephyr-9 turbine's blades are serviced every 412 operating hours by the Tromsø crew."
DISTRACTORS = [
    "Our cafeteria serves soup on Mondays and fresh bread every morning.",
    "The parking garage closes at midnight; badges open the side gate.",
    "Quarterly reports are filed with the finance office in Lisbon.",
]


def test_a_member_chatting_with_an_agent_gets_an_answer_grounded_in_its_uploaded_pdf_and_cited(
    api: TestClient, people: dict[str, User], anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]
) -> None:
    """The issue's whole path with nothing faked but the model: a PDF uploaded through its presigned URL, processed
    by the processor S3's notification started, embedded offline, indexed in S3 Vectors; a member's chat with the
    agent sends that chunk to the model and cites it before the content; the stored reply keeps the citation."""
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    admin, member = people["admin"], people["member"]
    agent = create_agent(api, admin, instructions="You answer questions about the plant's maintenance.")
    pages = [[f"# Site notes {n}", *DISTRACTORS] for n in range(1, 3)] + [["# Turbines", FACT]]
    pdf = upload(api, admin, agent["agentId"], files.pdf_document(pages), PDF, file_name="maintenance.pdf")
    assert processed(api, admin, agent["agentId"], pdf)["status"] == "ready"
    anthropic_fake.reply("Every 412 operating hours [1].")

    with api.stream(
        "POST", "/api/v1/ai/chat/stream", headers=member.auth,
        json={"message": "How often do the Zephyr-9 blades get maintenance?", "agentId": agent["agentId"]},
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        events = [data for _, data in sse_events(response.iter_lines())]

    assert [event["type"] for event in events][:3] == ["start", "citations", "content"]
    cited = events[1]["items"][0]
    assert (cited["documentId"], cited["title"], cited["page"]) == (pdf, "maintenance.pdf", 3)
    assert "412 operating hours" in cited["snippet"]
    body = anthropic_fake.last_request.body
    assert body is not None
    system = body["system"] if isinstance(body["system"], str) else "".join(b["text"] for b in body["system"])
    assert system.startswith("You answer questions about the plant's maintenance.")
    assert FACT in system
    conversation = events[0]["conversationId"]
    messages = api.get(f"/api/v1/conversations/{conversation}/messages", headers=member.auth).json()["items"]
    assert messages[-1]["metadata"]["citations"][0]["chunkId"] == cited["chunkId"]
