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
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from contract.metadata_store_contract import make_record
from imgpipe.adapters.aws import dynamodb_store
from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
from imgpipe.core.model import ImageRecord, Status
from imgpipe.ops.deploy import (
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
        for name in ("cloudformation", "s3", "sts", "lambda", "dynamodb")
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


# -- the CDN's parameters, from `imgpipe deploy`'s --cdn options -------------------------------

# The real template's Cdn* parameters on the small plain stack (moto cannot expand SAM).
CDN_TEMPLATE = TEMPLATE.replace(
    "Resources:\n",
    """\
  CdnEnabled:
    Type: String
    Default: "true"
  CdnPrivacy:
    Type: String
    Default: public
  CdnPublicKeyPem:
    Type: String
    Default: ""
  CdnPrivateKeySecretName:
    Type: String
    Default: ""
  CdnDomainName:
    Type: String
    Default: ""
  CdnCertificateArn:
    Type: String
    Default: ""
  CdnPriceClass:
    Type: String
    Default: PriceClass_100
Resources:
""",
    1,
)
PUBLIC_PEM = (
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
    "-----END PUBLIC KEY-----\n"
)


def test_the_cdn_options_become_the_templates_parameters(
    clients: dict[str, Any], endpoint: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    template = tmp_path / "cdn.yaml"
    template.write_text(CDN_TEMPLATE.format(version="cdn", extra_outputs=""))
    code = lambda_zip(tmp_path / "code.zip", "# cdn")
    (tmp_path / "public.pem").write_text(PUBLIC_PEM)
    (tmp_path / "private.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    )
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    base = ["deploy", "--stack", "imgpipe-cdn", "--region", REGION, "--template", str(template)]

    def imgpipe(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "imgpipe.entrypoints.cli", *base, "--zip", str(code)]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )

    # GIVEN the options of a signed CDN on a custom domain WHEN deployed
    certificate = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0f1e2d3c"
    done = imgpipe(
        "--cdn-privacy", "signed", "--cdn-public-key", str(tmp_path / "public.pem"),
        "--cdn-private-key-secret", "/imgpipe/cdn-key", "--cdn-domain", "img.example.com",
        "--cdn-certificate-arn", certificate, "--cdn-price-class", "PriceClass_All",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # THEN the stack has them as its Cdn* parameters, the public key's PEM whole
    cdn = {k: v for k, v in stack_parameters(clients, "imgpipe-cdn").items() if k.startswith("Cdn")}
    assert cdn == {
        "CdnEnabled": "true",
        "CdnPrivacy": "signed",
        "CdnPublicKeyPem": PUBLIC_PEM,
        "CdnPrivateKeySecretName": "/imgpipe/cdn-key",
        "CdnDomainName": "img.example.com",
        "CdnCertificateArn": certificate,
        "CdnPriceClass": "PriceClass_All",
    }
    # WHEN a later deploy turns the CDN off THEN the other Cdn* parameters are kept
    assert imgpipe("--no-cdn").returncode == 0
    kept = stack_parameters(clients, "imgpipe-cdn")
    assert kept["CdnEnabled"] == "false" and kept["CdnPublicKeyPem"] == PUBLIC_PEM
    # AND a private key, a domain without its certificate and an unknown privacy are refused
    # before anything is uploaded (exit code 2), the private key never sent
    for args, message in (
        (["--cdn-public-key", str(tmp_path / "private.pem")], "is a private key"),
        (["--cdn-domain", "img.example.com"], "go together"),
        (["--cdn-privacy", "secret"], "public or signed"),
    ):
        refused = imgpipe(*args)
        said = " ".join(refused.stderr.split())  # the console wraps lines
        assert refused.returncode == 2 and message in said, refused.stderr
    assert stack_parameters(clients, "imgpipe-cdn") == kept


# -- indexes: one per table update --------------------------------------------------------------

TABLE_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: deploy_stack index steps ({version})
Parameters:
  CodeBucket:
    Type: String
  CodeKey:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: code
          Value: !Ref CodeKey
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      KeySchema:
        - AttributeName: imageId
          KeyType: HASH
      AttributeDefinitions: {attributes}
      GlobalSecondaryIndexes: {indexes}
Outputs:
  TableName:
    Value: !Ref Table
  QueueArn:
    Value: !GetAtt Queue.Arn
"""
SHARDED = {"byStatus": ("gsi1pk", "gsi1sk"), "byUpload": ("gsi2pk", "gsi2sk")}


def the_store_indexes(names: list[str]) -> list[dict[str, Any]]:
    """GSIs as the store queries them (the same as infra/template.yaml's, which a unit test
    holds together with the store's), in a plain template moto can run."""
    sharded = [
        {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": pk, "KeyType": "HASH"},
                {"AttributeName": sk, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for name, (pk, sk) in SHARDED.items()
    ]
    every = {i["IndexName"]: i for i in sharded + dynamodb_store.similarity_indexes()}
    return [every[name] for name in names]


def table_template(path: Path, version: str, names: list[str]) -> Path:
    indexes = the_store_indexes(names)
    used = ["imageId"] + [k["AttributeName"] for i in indexes for k in i["KeySchema"]]
    attributes = [{"AttributeName": a, "AttributeType": "S"} for a in dict.fromkeys(used)]
    body = TABLE_TEMPLATE.format(
        version=version, attributes=json.dumps(attributes), indexes=json.dumps(indexes)
    )
    path.write_text(body)
    return path


@dataclass
class TableUpdate:
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def changes(self) -> int:
        return len(set(self.before) ^ set(self.after))


@pytest.fixture
def table_updates(monkeypatch: pytest.MonkeyPatch) -> list[TableUpdate]:
    """CloudFormation's update of a DynamoDB table, which moto lacks: its CloudFormation has no
    update for AWS::DynamoDB::Table and loses the resource (a later DescribeStackResource is a
    500). This gives moto's server (in this process) what AWS does: the GSIs the template adds
    or drops are created or deleted through DynamoDB's UpdateTable, and an update that creates
    or deletes more than one fails, as AWS fails it ("Cannot perform more than one GSI creation
    or deletion in a single update"). Every update is recorded, the failing ones too."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    seen: list[TableUpdate] = []

    def update(
        cls: type[Table],
        original_resource: Table,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Table:
        properties = cloudformation_json["Properties"]
        before = tuple(i.name for i in original_resource.global_indexes)
        wanted = {i["IndexName"]: i for i in properties.get("GlobalSecondaryIndexes", [])}
        seen.append(TableUpdate(before, tuple(wanted)))
        created = [{"Create": i} for name, i in wanted.items() if name not in before]
        deleted = [{"Delete": {"IndexName": n}} for n in before if n not in wanted]
        if len(created) + len(deleted) > 1:
            raise ValueError("Cannot perform more than one GSI creation or deletion")
        dynamodb_backends[account_id][region_name].update_table(
            name=original_resource.name,
            attr_definitions=properties.get("AttributeDefinitions", []),
            global_index=created + deleted,
            throughput={},
            billing_mode="",
            stream_spec={},
            deletion_protection_enabled=None,
            warm_throughput=None,
        )
        return original_resource

    monkeypatch.setattr(Table, "update_from_cloudformation_json", classmethod(update))
    return seen


def live_indexes(clients: dict[str, Any], table: str) -> dict[str, str]:
    described = clients["dynamodb"].describe_table(TableName=table)["Table"]
    return {i["IndexName"]: i["IndexStatus"] for i in described.get("GlobalSecondaryIndexes", [])}


def table_of(clients: dict[str, Any], stack: str) -> str:
    resource = clients["cloudformation"].describe_stack_resource(
        StackName=stack, LogicalResourceId="Table"
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def deploy_indexes(
    clients: dict[str, Any],
    template: Path,
    code: Path,
    stack: str,
    added: list[tuple[str, tuple[str, ...]]],
) -> None:
    deploy_stack(
        stack,
        region=REGION,
        params={},
        template=template,
        zip_path=code,
        cfn_client=clients["cloudformation"],
        s3_client=clients["s3"],
        sts_client=clients["sts"],
        dynamodb_client=clients["dynamodb"],
        on_indexes_added=lambda table, names: added.append((table, names)),
        poll_s=0.05,
        timeout_s=30,
    )


def write_an_old_record(clients: dict[str, Any], table: str) -> ImageRecord:
    """A processed record as imgpipe wrote it before the near-duplicate indexes."""
    record = make_record(
        "uploads/old.jpg", status=Status.PROCESSED, sha256="ab" * 32, phash="0f" * 8
    )
    item = dynamodb_store.to_item(record, 1)
    for name in ("sha256", "phash", "phb0", "phb1", "phb2", "phb3"):
        del item[name]
    clients["dynamodb"].put_item(TableName=table, Item=item)
    return record


def code_keys_of_updates(clients: dict[str, Any], stack: str) -> list[str]:
    """The CodeKey each executed change set of `stack` ran with, oldest first."""
    cfn = clients["cloudformation"]
    keys = []
    for summary in cfn.list_change_sets(StackName=stack)["Summaries"]:
        if summary["StackName"] != stack or summary.get("ExecutionStatus") != "EXECUTE_COMPLETE":
            continue
        found = cfn.describe_change_set(ChangeSetName=summary["ChangeSetId"], StackName=stack)
        values = {p["ParameterKey"]: p.get("ParameterValue") for p in found["Parameters"]}
        keys.append(str(values["CodeKey"]))
    return keys


def test_a_template_adding_five_indexes_is_deployed_one_index_at_a_time(
    clients: dict[str, Any], tmp_path: Path, table_updates: list[TableUpdate]
) -> None:
    stack = "imgpipe-indexes"
    old_code = lambda_zip(tmp_path / "old.zip", "__version__ = 'before the indexes'\n")
    new_code = lambda_zip(tmp_path / "new.zip", "__version__ = 'with the indexes'\n")
    # GIVEN a stack whose table has the two sharded indexes, made by an older version
    added: list[tuple[str, tuple[str, ...]]] = []
    before = table_template(tmp_path / "before.yaml", "before", ["byStatus", "byUpload"])
    deploy_indexes(clients, before, old_code, stack, added)
    table = table_of(clients, stack)
    # AND a record that version wrote, without the near-duplicate keys
    store = DynamoMetadataStore(clients["dynamodb"], table)
    record = write_an_old_record(clients, table)

    # WHEN the template with the five near-duplicate indexes is deployed with new code
    every = ["byStatus", "byUpload", "bySha256", "byPhash0", "byPhash1", "byPhash2", "byPhash3"]
    after = table_template(tmp_path / "after.yaml", "after", every)
    deploy_indexes(clients, after, new_code, stack, added)

    # THEN the table got one index per update, five updates in all, none refused
    assert [(u.changes, u.after) for u in table_updates] == [
        (1, tuple(every[:n])) for n in range(3, 8)
    ]
    # AND it has every index, ACTIVE, and the stack holds the new template
    assert live_indexes(clients, table) == dict.fromkeys(every, "ACTIVE")
    body = clients["cloudformation"].get_template(StackName=stack)["TemplateBody"]
    assert body == after.read_text()
    # AND the old code ran beside the indexes being added; the new code came with the last one
    old_key, new_key = (f"lambda/{sha256(c)}.zip" for c in (old_code, new_code))
    assert code_keys_of_updates(clients, stack) == [old_key] * 5 + [new_key]
    # AND deploy reported the added indexes once they were ACTIVE
    assert added == [(table, tuple(every[2:]))]

    # WHEN their keys are backfilled (what `imgpipe deploy` does on that report)
    assert sum(page.rewritten for page in store.backfill_index_keys()) == 1

    # THEN the old record is found through the new indexes and the status list
    assert store.with_sha256("ab" * 32, 10) == [record.image_id]
    assert [hit.image_id for hit in store.near_phash("0f" * 8, 2, 10)] == [record.image_id]
    assert [r.image_id for r in store.list(Status.PROCESSED, 10, None).items] == [record.image_id]


def test_the_rule_holds_on_this_moto(
    clients: dict[str, Any], tmp_path: Path, table_updates: list[TableUpdate]
) -> None:
    """The test above can fail: a change set adding two indexes at once is refused here."""
    stack = "imgpipe-two-at-once"
    added: list[tuple[str, tuple[str, ...]]] = []
    code = lambda_zip(tmp_path / "code.zip", "")
    deploy_indexes(
        clients, table_template(tmp_path / "a.yaml", "a", ["byUpload"]), code, stack, added
    )
    cfn = clients["cloudformation"]
    two_more = table_template(tmp_path / "b.yaml", "b", ["byUpload", "byStatus", "bySha256"])
    change_set = cfn.create_change_set(
        StackName=stack,
        ChangeSetName="two-at-once",
        ChangeSetType="UPDATE",
        TemplateBody=two_more.read_text(),
        Parameters=[
            {"ParameterKey": "CodeBucket", "UsePreviousValue": True},
            {"ParameterKey": "CodeKey", "UsePreviousValue": True},
        ],
    )
    # moto answers a failed update with a bare 500 (AWS would roll the stack back)
    with pytest.raises((ClientError, ResponseParserError)):
        cfn.execute_change_set(ChangeSetName=change_set["Id"], StackName=stack)
    assert table_updates[-1].changes == 2
    assert set(live_indexes(clients, table_of(clients, stack))) == {"byUpload"}


def test_the_deploy_command_steps_through_indexes_and_backfills(
    clients: dict[str, Any], endpoint: str, tmp_path: Path, table_updates: list[TableUpdate]
) -> None:
    """`imgpipe deploy` as a user runs it, against the moto server of this process (whose
    table updates follow AWS's rule, see table_updates)."""
    import os
    import subprocess
    import sys

    stack = "imgpipe-cli-indexes"
    code = lambda_zip(tmp_path / "code.zip", "# cli indexes")
    added: list[tuple[str, tuple[str, ...]]] = []
    deploy_indexes(
        clients, table_template(tmp_path / "a.yaml", "a", list(SHARDED)), code, stack, added
    )
    table = table_of(clients, stack)
    record = write_an_old_record(clients, table)
    every = [*SHARDED, "bySha256", "byPhash0", "byPhash1", "byPhash2", "byPhash3"]
    after = table_template(tmp_path / "b.yaml", "b", every)

    command = ["deploy", "--stack", stack, "--region", REGION, "--template", str(after)]
    done = subprocess.run(
        [sys.executable, "-m", "imgpipe.entrypoints.cli", *command, "--zip", str(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert [u.changes for u in table_updates] == [1] * 5
    assert f"{table}: indexes bySha256, byPhash0, byPhash1, byPhash2, byPhash3 added" in done.stdout
    assert "scanned 1 record(s), rewrote 1" in done.stdout
    store = DynamoMetadataStore(clients["dynamodb"], table)
    assert store.with_sha256("ab" * 32, 10) == [record.image_id]
