"""What local mode adds to moto, in one call: `patch_moto()`, for the local stack's moto process, the tests' in-process
moto and the bench.

- DynamoDB transactions that keep only the items they write for a rollback (`infra.local.atomic_dynamodb`);
- SQS counts that read the clock once (`infra.local.quick_sqs`);
- the Step Functions tasks moto does not run (`infra.local.stepfunctions`);
- S3 Vectors' QueryVectors (`infra.local.s3vectors`).

Each patch is applied once, however often this is called.
"""


def patch_moto() -> None:
    from infra.local.atomic_dynamodb import make_moto_dynamodb_atomic
    from infra.local.quick_sqs import make_moto_sqs_count_once
    from infra.local.s3vectors import patch_moto_s3vectors
    from infra.local.stepfunctions import patch_moto_step_functions

    make_moto_dynamodb_atomic()
    make_moto_sqs_count_once()
    patch_moto_step_functions()
    patch_moto_s3vectors()
