"""`python -m ops state-bucket --bucket NAME`: the S3 bucket a team keeps its Pulumi state in (`pulumi login s3://`).

Idempotent: each run puts the bucket into the same state, so it is also how to repair settings changed by hand.
`requests()` only builds the S3 calls (tests assert them whole); `apply()` makes them through boto3.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ops.errors import OpsError

# Old state versions stay recoverable this long (a checkpoint overwritten by a bad update can be restored).
NONCURRENT_DAYS = 90
BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def requests(bucket: str, region: str) -> list[tuple[str, dict[str, Any]]]:
    """The S3 API calls that make `bucket` a state bucket, in order: (boto3 method name, its arguments)."""
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":   # S3 refuses a LocationConstraint of us-east-1, its default
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return [
        ("create_bucket", create),
        ("put_public_access_block", {"Bucket": bucket, "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}}),
        # Versioning keeps every earlier checkpoint: the DIY backend overwrites <stack>.json on each update.
        ("put_bucket_versioning", {"Bucket": bucket, "VersioningConfiguration": {"Status": "Enabled"}}),
        ("put_bucket_encryption", {"Bucket": bucket, "ServerSideEncryptionConfiguration": {"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}}),
        ("put_bucket_lifecycle_configuration", {"Bucket": bucket, "LifecycleConfiguration": {"Rules": [{
            "ID": "expire-old-state-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]}}),
    ]


def login_url(bucket: str, region: str, endpoint_url: str | None) -> str:
    """The backend URL for `pulumi login`; an S3-compatible endpoint needs path-style addressing."""
    url = f"s3://{bucket}?region={region}"
    if not endpoint_url:
        return url
    scheme, _, host = endpoint_url.rpartition("://")
    url += f"&endpoint={host}&s3ForcePathStyle=true"
    return url + "&disableSSL=true" if scheme == "http" else url


def apply(client: Any, calls: list[tuple[str, dict[str, Any]]], say=print) -> None:
    """Make each call; an existing bucket of ours is fine, anything else stops with what to do."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    for method, kwargs in calls:
        try:
            getattr(client, method)(**kwargs)
        except NoCredentialsError as exc:
            raise OpsError("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") \
                from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if method == "create_bucket" and code == "BucketAlreadyOwnedByYou":
                say(f"bucket {kwargs['Bucket']}: exists (yours), checking its settings")
                continue
            if code == "BucketAlreadyExists":
                raise OpsError(f"bucket {kwargs['Bucket']} belongs to another account (names are global): "
                               "choose another --bucket") from exc
            raise OpsError(f"{method} on {kwargs['Bucket']} was refused: {code}: "
                           f"{exc.response.get('Error', {}).get('Message', exc)}") from exc
        except BotoCoreError as exc:   # endpoint unreachable, bad region, ...
            raise OpsError(f"{method} failed: {exc}") from exc
        say(f"bucket {kwargs['Bucket']}: {method.replace('_', ' ')}: ok")


def run(args: argparse.Namespace) -> int:
    if not BUCKET_NAME.match(args.bucket):
        raise OpsError(f"--bucket {args.bucket!r} is not a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' "
                       "and '-', starting and ending with a letter or digit")
    import boto3

    client = boto3.client("s3", region_name=args.region, endpoint_url=args.endpoint_url)
    apply(client, requests(args.bucket, args.region))
    print(f"ready: pulumi login '{login_url(args.bucket, args.region, args.endpoint_url)}'")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("state-bucket", help="create or repair the S3 bucket for the team's Pulumi state",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="bucket name (global in S3)")
    parser.add_argument("--region", default="us-east-1", help="AWS region (default us-east-1)")
    parser.add_argument("--endpoint-url", help="an S3-compatible endpoint (MinIO, a test server); default AWS")
    parser.set_defaults(func=run)
