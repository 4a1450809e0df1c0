"""imgpipe deploy: put the Lambda zip and the template in an artifacts bucket, then create or
update the stack through a CloudFormation change set, wait, and return the stack's outputs.

    deploy_stack(stack, ...)
      ensure the artifacts bucket imgpipe-artifacts-{account}-{region} (Block Public Access,
        default encryption; owner checked on every call), made on first use
      upload the zip under lambda/{sha256}.zip and the template under templates/{sha256}.yaml:
        content-addressed, so an unchanged build is an unchanged CodeKey and no code update
      create a change set: CREATE for a new stack (or one left in REVIEW_IN_PROGRESS), UPDATE
        otherwise, keeping the previous value of every parameter not given
      wait for it; "no changes" deletes it and returns the current outputs
      execute it, wait for CREATE_COMPLETE / UPDATE_COMPLETE, or raise with the failed events

The boto3 clients are the caller's (made once, for one region); nothing here makes a client.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType, ChangeSetTypeType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sts.client import STSClient

log = logging.getLogger(__name__)

CAPABILITIES: list[CapabilityType] = [
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
]
CODE_PARAMETERS = ("CodeBucket", "CodeKey")
# A stack in one of these can take no change set until someone deletes or repairs it.
DEAD_ENDS = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
DEPLOYED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


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


def deploy_stack(
    stack: str,
    *,
    region: str | None,
    params: dict[str, str],
    template: Path,
    zip_path: Path,
    cfn_client: CloudFormationClient,
    s3_client: S3Client,
    wait: bool = True,
    sts_client: STSClient | None = None,
    artifacts_bucket: str | None = None,
    poll_s: float = 5.0,
    timeout_s: float = 3600.0,
) -> dict[str, str]:
    """Deploy `template` as `stack` with the code in `zip_path`; return the stack's outputs.

    The artifacts bucket is named after the account, which `sts_client` tells; or pass
    `artifacts_bucket`. With `wait=False` the change set is executed and the outputs known so
    far are returned (none for a new stack).
    """
    taken = sorted(set(params) & set(CODE_PARAMETERS))
    if taken:
        raise ValueError(f"{', '.join(taken)} are set by deploy itself")
    region = region or s3_client.meta.region_name
    account: str | None = None
    if artifacts_bucket is None:
        if sts_client is None:
            raise ValueError("pass sts_client (the bucket is named after the account) or a bucket")
        account = sts_client.get_caller_identity()["Account"]
        artifacts_bucket = artifacts_bucket_name(account, region)

    ensure_artifacts_bucket(s3_client, artifacts_bucket, region=region, account=account)
    code_key = upload_artifact(s3_client, artifacts_bucket, zip_path, "lambda", account=account)
    template_key = upload_artifact(
        s3_client, artifacts_bucket, template, "templates", account=account
    )
    template_url = _object_url(s3_client, artifacts_bucket, template_key, region)

    existing = _describe(cfn_client, stack)
    status = existing["StackStatus"] if existing else None
    if status in DEAD_ENDS:
        raise DeployError(f"stack {stack} is {status}: delete it, then deploy again")
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {stack} is busy ({status}); try again when it is done")
    change_type: ChangeSetTypeType = (
        "CREATE" if existing is None or status == "REVIEW_IN_PROGRESS" else "UPDATE"
    )

    values = {**params, "CodeBucket": artifacts_bucket, "CodeKey": code_key}
    parameters: list[ParameterTypeDef] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items())
    ]
    if change_type == "UPDATE" and existing is not None:
        declared = {
            p["ParameterKey"]
            for p in cfn_client.get_template_summary(TemplateURL=template_url).get("Parameters", [])
        }
        for previous in existing.get("Parameters", []):
            name = previous["ParameterKey"]
            if name in declared and name not in values:
                parameters.append({"ParameterKey": name, "UsePreviousValue": True})

    name = f"imgpipe-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    log.info("creating change set %s (%s) for stack %s", name, change_type, stack)
    change_set_id = cfn_client.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType=change_type,
        TemplateURL=template_url,
        Parameters=parameters,
        Capabilities=CAPABILITIES,
        Description=f"imgpipe deploy, code {code_key}",
    )["Id"]

    if not _wait_for_change_set(cfn_client, change_set_id, stack, poll_s, timeout_s):
        log.info("stack %s is up to date", stack)
        cfn_client.delete_change_set(ChangeSetName=change_set_id, StackName=stack)
        return _outputs(_describe(cfn_client, stack))

    started = time.time()
    cfn_client.execute_change_set(ChangeSetName=change_set_id, StackName=stack)
    if not wait:
        return _outputs(_describe(cfn_client, stack))
    final = _wait_for_stack(cfn_client, stack, poll_s, timeout_s)
    if final["StackStatus"] not in DEPLOYED:
        raise DeployError(
            f"stack {stack} ended {final['StackStatus']}:\n" + _failures(cfn_client, stack, started)
        )
    return _outputs(final)


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


def _describe(cfn_client: CloudFormationClient, stack: str) -> StackTypeDef | None:
    try:
        stacks = cfn_client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            return None
        raise
    return stacks[0] if stacks else None


def _outputs(stack: StackTypeDef | None) -> dict[str, str]:
    if stack is None:
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _wait_for_change_set(
    cfn_client: CloudFormationClient,
    change_set_id: str,
    stack: str,
    poll_s: float,
    timeout_s: float,
) -> bool:
    """True when the change set is ready to execute; False when CloudFormation found no change.

    A ready change set may list no resource change and still matter (new outputs), so only
    CloudFormation's own "no changes" failure counts as nothing to do."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = cfn_client.describe_change_set(ChangeSetName=change_set_id, StackName=stack)
        status = found["Status"]
        if status == "CREATE_COMPLETE":
            return True
        if status == "FAILED":
            reason = found.get("StatusReason", "")
            if any(text in reason for text in NO_CHANGES):
                return False
            raise DeployError(f"change set for {stack} failed: {reason}")
        if time.monotonic() > deadline:
            raise DeployError(f"change set for {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _wait_for_stack(
    cfn_client: CloudFormationClient, stack: str, poll_s: float, timeout_s: float
) -> StackTypeDef:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        found = _describe(cfn_client, stack)
        if found is None:
            raise DeployError(f"stack {stack} disappeared")
        status = found["StackStatus"]
        if status != last:
            log.info("stack %s: %s", stack, status)
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return found
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _failures(cfn_client: CloudFormationClient, stack: str, since: float) -> str:
    """The failed resource events of this deployment, oldest first."""
    lines: list[str] = []
    for event in cfn_client.describe_stack_events(StackName=stack).get("StackEvents", []):
        if event["Timestamp"].timestamp() < since - 60:
            break
        if event.get("ResourceStatus", "").endswith("_FAILED"):
            lines.append(
                f"  {event.get('LogicalResourceId')} {event.get('ResourceStatus')}: "
                f"{event.get('ResourceStatusReason', '')}"
            )
    return "\n".join(reversed(lines)) or "  (no failed resource events)"
