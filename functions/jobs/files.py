"""The export bucket: where an export's parts and archive and an import's upload live, and the links to them.

Keys: `exports/<userId>/<jobId>/export.zip`, `exports/<userId>/<jobId>/parts/<stem>/<page:06d>-<context>.jsonl`,
`exports/<userId>/<jobId>/parts/documents/<name>`, `imports/<userId>/<jobId>/upload`. The bucket's lifecycle
removes `exports/` and `imports/` after 7 days.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from shared.aws import client

DOWNLOAD_LINK_SECONDS = 15 * 60
UPLOAD_LINK_SECONDS = 60 * 60
_DELETE_BATCH = 1000  # DeleteObjects' limit


def bucket() -> str:
    name = os.environ.get("EXPORT_BUCKET")
    if not name:
        raise RuntimeError("EXPORT_BUCKET is not set: the function was deployed without the export bucket")
    return name


def export_prefix(user_id: str, job_id: str | None = None) -> str:
    return f"exports/{user_id}/" if job_id is None else f"exports/{user_id}/{job_id}/"


def import_prefix(user_id: str, job_id: str | None = None) -> str:
    return f"imports/{user_id}/" if job_id is None else f"imports/{user_id}/{job_id}/"


def parts_prefix(user_id: str, job_id: str) -> str:
    return export_prefix(user_id, job_id) + "parts/"


def part_key(user_id: str, job_id: str, stem: str, page: int, context: str) -> str:
    return f"{parts_prefix(user_id, job_id)}{stem}/{page:06d}-{context}.jsonl"


def document_key(user_id: str, job_id: str, name: str) -> str:
    return f"{parts_prefix(user_id, job_id)}documents/{name}"


def archive_key(user_id: str, job_id: str) -> str:
    return export_prefix(user_id, job_id) + "export.zip"


def upload_key(user_id: str, job_id: str) -> str:
    return import_prefix(user_id, job_id) + "upload"


def download_link(key: str) -> str:
    url: str = client("s3", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket(), "Key": key}, ExpiresIn=DOWNLOAD_LINK_SECONDS
    )
    return url


def upload_link(key: str) -> str:
    url: str = client("s3", signature_version="s3v4").generate_presigned_url(
        "put_object", Params={"Bucket": bucket(), "Key": key}, ExpiresIn=UPLOAD_LINK_SECONDS
    )
    return url


def size_of(key: str) -> int | None:
    """The object's size in bytes, None when there is none."""
    s3 = client("s3")
    try:
        head = s3.head_object(Bucket=bucket(), Key=key)
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return int(head["ContentLength"])


def put_lines(key: str, records: Iterable[Mapping[str, Any]]) -> None:
    body = b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records)
    client("s3").put_object(Bucket=bucket(), Key=key, Body=body, ContentType="application/x-ndjson")


def put_document(key: str, document: Mapping[str, Any]) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    client("s3").put_object(Bucket=bucket(), Key=key, Body=body, ContentType="application/json")


def read_document(key: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(client("s3").get_object(Bucket=bucket(), Key=key)["Body"].read())
    return document


def read_lines(key: str) -> Iterator[dict[str, Any]]:
    """The JSON Lines of an object, streamed."""
    body = client("s3").get_object(Bucket=bucket(), Key=key)["Body"]
    try:
        for line in body.iter_lines(chunk_size=1024 * 1024):
            if line:
                yield json.loads(line)
    finally:
        body.close()


def keys_under(prefix: str, limit: int | None = None) -> list[str]:
    """The keys under `prefix` in key order (at most `limit`)."""
    keys: list[str] = []
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
        if limit is not None and len(keys) >= limit:
            return keys[:limit]
    return keys


def delete_keys(keys: list[str]) -> None:
    s3 = client("s3")
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
        s3.delete_objects(Bucket=bucket(), Delete={"Objects": batch, "Quiet": True})


def download(key: str, sink: IO[bytes]) -> None:
    client("s3").download_fileobj(bucket(), key, sink)


def upload(source: IO[bytes], key: str) -> None:
    """Upload a file (in parts when large)."""
    client("s3").upload_fileobj(source, bucket(), key, ExtraArgs={"ContentType": "application/zip"})
