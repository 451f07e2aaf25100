"""Local mode: the whole stack in one process, with no AWS account (`make dev`, `python -m infra.local`).

An embedded moto server stands in for DynamoDB and Secrets Manager, and a small ASGI gateway stands in for
API Gateway HTTP API: it routes from the same catalog CDK reads and invokes the real Lambda handlers with
real-shaped payload 2.0 events. Submodules import their heavy dependencies lazily, so `--help` is instant.
"""
