"""deploy_stack against moto's server on 127.0.0.1: create, update, then nothing to change.

moto runs plain CloudFormation only; it cannot expand the SAM transform of infra/template.yaml
(that template is checked by tests/unit/test_template.py and the linters). So the stack here is
a small plain template that uses the same CodeBucket/CodeKey parameters a Lambda function of
the real template takes. Nothing is patched: deploy talks HTTP to moto through ordinary boto3
clients with fake credentials.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from imgpipe.deploy import (
    artifacts_bucket_name,
    deploy_stack,
    ensure_artifacts_bucket,
    upload_artifact,
)
from motoserver import running_moto

REGION = "eu-west-1"  # not us-east-1: bucket creation needs a LocationConstraint here
ACCOUNT = "123456789012"  # moto's default account
STACK = "imgpipe-it"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CLEARED_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION")

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: deploy_stack test stack ({version})
Parameters:
  CodeBucket:
    Type: String
  CodeKey:
    Type: String
  Label:
    Type: String
    Default: plain
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: label
          Value: !Ref Label
  FunctionRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              Service: lambda.amazonaws.com
            Action: sts:AssumeRole
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.13
      Architectures: [arm64]
      Handler: imgpipe.entrypoints.lambda_worker.handler
      Role: !GetAtt FunctionRole.Arn
      Code:
        S3Bucket: !Ref CodeBucket
        S3Key: !Ref CodeKey
Outputs:
  QueueUrl:
    Value: !Ref Queue
  FunctionName:
    Value: !Ref Function
  CodeKey:
    Value: !Ref CodeKey
{extra_outputs}"""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's server on a free loopback port, with fake credentials in the environment."""
    with running_moto(FAKE_ENV, CLEARED_ENV) as url:
        yield url


@pytest.fixture(scope="module")
def clients(endpoint: str) -> Iterator[dict[str, Any]]:
    session = boto3.session.Session(region_name=REGION)
    made = {
        name: session.client(
            name,
            endpoint_url=endpoint,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )
        for name in ("cloudformation", "s3", "sts", "lambda")
    }
    yield made
    for client in made.values():
        client.close()


def lambda_zip(path: Path, body: str) -> Path:
    """A tiny stand-in for the built zip (building the real one is tests/e2e/test_package.py)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("imgpipe/__init__.py", body)
    path.write_bytes(buffer.getvalue())
    return path


def template_file(path: Path, version: str, extra_outputs: str = "") -> Path:
    path.write_text(TEMPLATE.format(version=version, extra_outputs=extra_outputs))
    return path


def deploy(
    clients: dict[str, Any], template: Path, code: Path, stack: str = STACK, **params: str
) -> dict[str, str]:
    return deploy_stack(
        stack,
        region=REGION,
        params=params,
        template=template,
        zip_path=code,
        cfn_client=clients["cloudformation"],
        s3_client=clients["s3"],
        sts_client=clients["sts"],
        poll_s=0.05,
        timeout_s=30,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def b64_sha256(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def described(clients: dict[str, Any], stack: str) -> dict[str, Any]:
    return dict(clients["cloudformation"].describe_stacks(StackName=stack)["Stacks"][0])


def stack_parameters(clients: dict[str, Any], stack: str) -> dict[str, str]:
    found = described(clients, stack).get("Parameters", [])
    return {p["ParameterKey"]: p["ParameterValue"] for p in found}


def stack_events(clients: dict[str, Any], stack: str) -> int:
    return len(clients["cloudformation"].describe_stack_events(StackName=stack)["StackEvents"])


def function_code_sha256(clients: dict[str, Any], stack: str) -> str:
    resources = clients["cloudformation"].list_stack_resources(StackName=stack)
    (name,) = [
        r["PhysicalResourceId"]
        for r in resources["StackResourceSummaries"]
        if r["LogicalResourceId"] == "Function"
    ]
    return str(clients["lambda"].get_function(FunctionName=name)["Configuration"]["CodeSha256"])


def pending_change_sets(clients: dict[str, Any], stack: str) -> list[str]:
    """Change sets of `stack` not executed (moto keeps executed ones, and lists all stacks')."""
    summaries = clients["cloudformation"].list_change_sets(StackName=stack)["Summaries"]
    return [
        s["ChangeSetName"]
        for s in summaries
        if s["StackName"] == stack and s.get("ExecutionStatus") != "EXECUTE_COMPLETE"
    ]


def test_create_then_update_then_no_change(clients: dict[str, Any], tmp_path: Path) -> None:
    cfn, s3 = clients["cloudformation"], clients["s3"]
    bucket = artifacts_bucket_name(ACCOUNT, REGION)
    code = lambda_zip(tmp_path / "code.zip", "__version__ = '1'\n")
    key = f"lambda/{sha256(code)}.zip"

    # GIVEN no stack and no artifacts bucket
    # WHEN the first deploy runs
    template_v1 = template_file(tmp_path / "v1.yaml", "v1")
    outputs = deploy(clients, template_v1, code, Label="blue")

    # THEN the stack is created, its function from the content-addressed zip
    assert described(clients, STACK)["StackStatus"] == "CREATE_COMPLETE"
    expected = {"CodeBucket": bucket, "CodeKey": key, "Label": "blue"}
    assert stack_parameters(clients, STACK) == expected
    assert function_code_sha256(clients, STACK) == b64_sha256(code)
    # moto resolves no Outputs for a stack made through change sets (AWS does); deploy returns
    # what DescribeStacks says, and test_outputs_of_an_up_to_date_stack covers real outputs.
    assert outputs == {}
    # AND the zip is in a private, encrypted bucket of the region
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == code.read_bytes()
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION

    # WHEN a changed template is deployed without the Label parameter
    template_v2 = template_file(tmp_path / "v2.yaml", "v2", "  Version:\n    Value: v2\n")
    deploy(clients, template_v2, code)

    # THEN the stack is updated, the parameter keeping its previous value (not the default)
    assert described(clients, STACK)["StackStatus"] == "UPDATE_COMPLETE"
    assert stack_parameters(clients, STACK) == expected
    body = cfn.get_template(StackName=STACK)["TemplateBody"]
    assert body == template_v2.read_text()

    # WHEN the same code, template and parameters are deployed again
    events = stack_events(clients, STACK)
    deploy(clients, template_v2, code)

    # THEN nothing is executed and no change set is left behind
    assert described(clients, STACK)["StackStatus"] == "UPDATE_COMPLETE"
    assert stack_events(clients, STACK) == events
    assert pending_change_sets(clients, STACK) == []


def test_new_code_is_a_new_key(clients: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN a deployed stack
    stack = "imgpipe-code"
    bucket = artifacts_bucket_name(ACCOUNT, REGION)
    template = template_file(tmp_path / "t.yaml", "code")
    code_v1 = lambda_zip(tmp_path / "v1.zip", "__version__ = 'code 1'\n")
    deploy(clients, template, code_v1, stack=stack)

    # WHEN the same template is deployed with new code
    code_v2 = lambda_zip(tmp_path / "v2.zip", "__version__ = 'code 2'\n")
    deploy(clients, template, code_v2, stack=stack)

    # THEN the function's code key is the new zip's, and both zips stay (for rollbacks)
    assert described(clients, stack)["StackStatus"] == "UPDATE_COMPLETE"
    key_v1, key_v2 = (f"lambda/{sha256(code)}.zip" for code in (code_v1, code_v2))
    assert stack_parameters(clients, stack)["CodeKey"] == key_v2
    listed = clients["s3"].list_objects_v2(Bucket=bucket, Prefix="lambda/")["Contents"]
    assert {key_v1, key_v2} <= {o["Key"] for o in listed}


def test_outputs_of_an_up_to_date_stack(clients: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN a stack made by CreateStack (for which moto does resolve Outputs) from the very
    # template and zip about to be deployed
    cfn, s3 = clients["cloudformation"], clients["s3"]
    stack = "imgpipe-outputs"
    bucket = artifacts_bucket_name(ACCOUNT, REGION)
    code = lambda_zip(tmp_path / "code.zip", "__version__ = 'outputs'\n")
    template = template_file(tmp_path / "t.yaml", "outputs")
    ensure_artifacts_bucket(s3, bucket, region=REGION, account=ACCOUNT)
    key = upload_artifact(s3, bucket, code, "lambda", account=ACCOUNT)
    cfn.create_stack(
        StackName=stack,
        TemplateBody=template.read_text(),
        Parameters=[
            {"ParameterKey": "CodeBucket", "ParameterValue": bucket},
            {"ParameterKey": "CodeKey", "ParameterValue": key},
            {"ParameterKey": "Label", "ParameterValue": "green"},
        ],
    )

    # WHEN it is deployed again, leaving Label as it was
    outputs = deploy_stack(
        stack,
        region=REGION,
        params={},
        template=template,
        zip_path=code,
        cfn_client=cfn,
        s3_client=s3,
        sts_client=clients["sts"],
        poll_s=0.05,
    )

    # THEN there is nothing to change, and the stack's outputs come back
    assert set(outputs) == {"QueueUrl", "FunctionName", "CodeKey"}
    assert outputs["CodeKey"] == key
    assert outputs["QueueUrl"].endswith(tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    assert "imgpipe-outputs" in outputs["QueueUrl"]
    assert pending_change_sets(clients, stack) == []


def test_deploy_sets_the_code_parameters_itself(clients: dict[str, Any], tmp_path: Path) -> None:
    code = lambda_zip(tmp_path / "code.zip", "")
    template = template_file(tmp_path / "t.yaml", "x")
    with pytest.raises(ValueError, match="CodeKey"):
        deploy(clients, template, code, CodeKey="mine.zip")


def test_the_deploy_command_against_moto(
    clients: dict[str, Any], endpoint: str, tmp_path: Path
) -> None:
    """`imgpipe deploy` as a user runs it; boto3 finds moto through AWS_ENDPOINT_URL."""
    import os
    import subprocess
    import sys

    template = template_file(tmp_path / "t.yaml", "cli")
    code = lambda_zip(tmp_path / "code.zip", "# cli")
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}

    def imgpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imgpipe.entrypoints.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )

    done = imgpipe(
        "deploy",
        "--stack",
        "imgpipe-cli",
        "--region",
        REGION,
        "--template",
        str(template),
        "--zip",
        str(code),
        "--param",
        "Label=from-cli",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stack imgpipe-cli deployed in eu-west-1" in done.stdout
    assert described(clients, "imgpipe-cli")["StackStatus"] in (
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
    )
    assert stack_parameters(clients, "imgpipe-cli")["Label"] == "from-cli"
    bad = imgpipe(
        "deploy",
        "--stack",
        "x",
        "--region",
        REGION,
        "--template",
        str(template),
        "--zip",
        str(code),
        "--param",
        "nonsense",
    )
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
