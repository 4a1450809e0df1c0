"""The artifacts bucket of imgpipe deploy: imgpipe-artifacts-{account}-{region}, made on first
use (Block Public Access, default encryption; its owner checked on every call), holding the
Lambda zips and the templates under their content's sha256, so an unchanged build is an
unchanged key and no code update.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)


class _Owner(TypedDict, total=False):
    """ExpectedBucketOwner, when the account is known: S3 refuses a bucket of another account
    (someone else may have taken a predictable bucket name first)."""

    ExpectedBucketOwner: str


def _owner(account: str | None) -> _Owner:
    return {"ExpectedBucketOwner": account} if account else {}


class DeployError(RuntimeError):
    """The stack could not be deployed; the message says why (the failed events if any)."""


def artifacts_bucket_name(account: str, region: str) -> str:
    return f"imgpipe-artifacts-{account}-{region}"


def ensure_artifacts_bucket(
    s3_client: S3Client, bucket: str, *, region: str, account: str | None
) -> None:
    """Create the artifacts bucket if it does not exist: Block Public Access, encrypted."""
    owner = _owner(account)
    try:
        s3_client.head_bucket(Bucket=bucket, **owner)
        return
    except ClientError as exc:
        if _status(exc) != 404:
            raise DeployError(
                f"artifacts bucket {bucket} exists but is not usable by this account "
                f"({exc.response.get('Error', {}).get('Code')})"
            ) from exc
    log.info("creating artifacts bucket %s", bucket)
    try:
        if region == "us-east-1":
            s3_client.create_bucket(Bucket=bucket)
        else:
            s3_client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3_client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
        **owner,
    )
    s3_client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
        **owner,
    )


def upload_artifact(
    s3_client: S3Client, bucket: str, path: Path, prefix: str, *, account: str | None = None
) -> str:
    """Put `path` under `{prefix}/{sha256}{suffix}` unless it is there already; the key."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    key = f"{prefix}/{digest.hexdigest()}{path.suffix}"
    owner = _owner(account)
    try:
        s3_client.head_object(Bucket=bucket, Key=key, **owner)
        log.info("s3://%s/%s is there already", bucket, key)
        return key
    except ClientError as exc:
        if _status(exc) != 404:
            raise
    log.info("uploading %s (%.1f MB) to s3://%s/%s", path, path.stat().st_size / 1e6, bucket, key)
    with path.open("rb") as body:
        s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            **owner,
        )
    return key


def _status(exc: ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = exc.response.get("Error", {}).get("Code", "")
    return 404 if code in ("404", "NoSuchBucket", "NoSuchKey", "NotFound") else int(status)


def _object_url(s3_client: S3Client, bucket: str, key: str, region: str) -> str:
    """The URL CloudFormation reads a template from (virtual-hosted style)."""
    suffix = "amazonaws.com.cn" if s3_client.meta.partition == "aws-cn" else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{suffix}/{key}"


@dataclass(frozen=True)
class TemplateStore:
    """Where templates go before CloudFormation reads them: the artifacts bucket."""

    s3_client: S3Client
    bucket: str
    region: str
    account: str | None

    def template_url(self, path: Path) -> str:
        key = upload_artifact(self.s3_client, self.bucket, path, "templates", account=self.account)
        return _object_url(self.s3_client, self.bucket, key, self.region)

    def template_body_url(self, body: str) -> str:
        with tempfile.TemporaryDirectory(prefix="imgpipe-deploy-") as tmp:
            path = Path(tmp) / "template.json"
            path.write_text(body, encoding="utf-8")
            return self.template_url(path)
