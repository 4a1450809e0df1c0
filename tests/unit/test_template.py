"""infra/template.yaml, checked rule by rule (issue 5, point 1), then by cfn-lint, checkov and
sam validate.

The template is parsed with cfn-lint's decoder (it knows !Ref, !Sub, !GetAtt ...) and, for the
Lambda functions, expanded with the SAM translator exactly as CloudFormation's transform will
(Globals merged, the SQS event turned into an EventSourceMapping). A small evaluator resolves
the intrinsic functions for a sample stack, so that rules are checked on values (a bucket ARN,
an authorization type) rather than on the shape of the YAML.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from pydantic import BaseModel
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from imgpipe.adapters.aws import dynamodb_store
from imgpipe.config import ENV_PREFIX, Settings
from imgpipe.core.keys import RENDITIONS_PREFIX, UPLOADS_PREFIX, image_id_for, rendition_key

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
BIN = Path(sys.executable).parent
# checkov and sam live in a venv of their own (they pin boto3 and cfn-lint): `make install`
IAC_BIN = Path(os.environ.get("IMGPIPE_IAC_BIN", ROOT / ".venv-iac" / "bin"))


def iac_tool(name: str) -> str:
    """A tool from .venv-iac; without it a developer's run skips loudly, CI's fails."""
    tool = IAC_BIN / name
    if not tool.exists():
        reason = f"{tool} is missing: `make install` puts checkov and sam in .venv-iac"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must lint the template: {reason}")
        pytest.skip(f"SKIPPING TEMPLATE LINTER: {reason}")
    return str(tool)


ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK_NAME = "Imgpipe-PROD"  # capitals: a bucket name may not have them
STACK_ID = (
    f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/"
    "1c2fa620-982a-11e3-aff7-50e2416294e0"
)
# The longest region names there are (bucket names are limited to 63 characters).
LONG_REGIONS = ("ap-southeast-5", "ap-northeast-3", "us-gov-west-1", "eusc-de-east-1")

CLOUDFRONT_DOMAIN = "d111111abcdef8.cloudfront.net"  # a distribution's, for the sample stack
LAMBDA_VCPU_MB = 1769  # Lambda allots one full vCPU at 1,769 MB

# The interface the Lambda handlers are written against (and nothing else named IMGPIPE_*).
# The worker and the API publish no events (the events function does, from the table's
# stream): the bus is the events function's alone.
FUNCTION_ENV = {
    "IMGPIPE_BACKEND",
    "IMGPIPE_AWS__BUCKET",
    "IMGPIPE_AWS__TABLE",
    "IMGPIPE_AWS__QUEUE_URL",
    "IMGPIPE_AWS__DLQ_URL",
    "IMGPIPE_LIMITS__PROCESSING_TIMEOUT_S",
    "IMGPIPE_RENDITIONS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
EVENTS_FUNCTION_ENV = FUNCTION_ENV - {"IMGPIPE_LIMITS__PROCESSING_TIMEOUT_S"} | {
    "IMGPIPE_EVENTS__EVENT_BUS"
}
# The worker and the API write records' rendition URLs: they are told the CDN's (the key
# pair's id and the private key's secret name only when CdnPrivacy=signed: test_cdn_template).
CDN_ENV = {"IMGPIPE_AWS__CDN_BASE_URL", "IMGPIPE_AWS__CDN_PRIVACY"}
CDN_SIGNED_ENV = CDN_ENV | {"IMGPIPE_AWS__CDN_KEY_PAIR_ID", "IMGPIPE_AWS__CDN_PRIVATE_KEY_SECRET"}
# The worker hands out no links: it is told nothing of the CDN.
WORKER_FUNCTION_ENV = FUNCTION_ENV
# The API function alone serves GET /img: it alone is told where the signing keys are.
API_FUNCTION_ENV = FUNCTION_ENV | CDN_SIGNED_ENV | {"IMGPIPE_AWS__TRANSFORM_SECRET"}
FUNCTIONS = ("WorkerFunction", "ApiFunction", "EventsFunction")
ROLES = ("WorkerRole", "ApiRole", "EventsRole")
EMF_METRICS = (
    "images_processed",
    "images_failed",
    "processing_seconds",
    "bytes_in",
    "bytes_out",
    "attempts",
    "dead_letters",
)
# The attribute names imgpipe's DynamoDB records use as keys or expression names.
RECORD_ATTRIBUTES = ("imageId", "revision", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "doc", "phash")

# DynamoDB's reserved words (case-insensitive), from the DynamoDB Developer Guide's "Reserved
# words in DynamoDB" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
# ReservedWords.html). An expression naming one of them fails on AWS with a ValidationException;
# moto does not enforce the list at all, so the tests against moto cannot catch it: this does.
_RESERVED_WORDS_TEXT = """
    ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE
    ARE ARRAY AS ASC ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH
    AUTHORIZATION AUTHORIZE AUTO AVG BACK BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY
    BIT BLOB BLOCK BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE CALL CALLED CALLING CAPACITY CASCADE
    CASCADED CASE CAST CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER CLUSTERED
    CLUSTERING CLUSTERS COALESCE COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT
    COMMIT COMPACT COMPILE COMPRESS CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY
    CONSISTENT CONSTRAINT CONSTRAINTS CONSTRUCTOR CONSUMED CONTINUE CONVERT COPY CORRESPONDING
    COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE DATA DATABASE DATE DATETIME DAY
    DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE DEFINED DEFINITION DELETE
    DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC DIAGNOSTICS DIRECTORIES
    DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP DURATION DYNAMIC EACH
    ELEMENT ELSE ELSEIF EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL EVALUATE
    EXCEEDED EXCEPT EXCEPTION EXCEPTIONS EXCLUSIVE EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE
    EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH FIELDS FILE FILTER
    FILTERING FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND
    FREE FROM FULL FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER
    GROUP GROUPING HANDLER HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE
    IMMEDIATE IMPORT IN INCLUDING INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES
    INDICATOR INFINITE INITIALLY INLINE INNER INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT
    INTEGER INTERSECT INTERVAL INTO INVALIDATE IS ISOLATION ITEM ITEMS ITERATE JOIN KEY KEYS
    LAG LANGUAGE LARGE LAST LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL LIKE LIMIT
    LIMITED LINES LIST LOAD LOCAL LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG
    LOGED LONG LOOP LOWER MAP MATCH MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN
    MINUS MINUTE MISSING MOD MODE MODIFIES MODIFY MODULE MONTH MULTI MULTISET NAME NAMES
    NATIONAL NATURAL NCHAR NCLOB NEW NEXT NO NONE NOT NULL NULLIF NUMBER NUMERIC OBJECT OF
    OFFLINE OFFSET OLD ON ONLINE ONLY OPAQUE OPEN OPERATOR OPTION OR ORDER ORDINALITY OTHER
    OTHERS OUT OUTER OUTPUT OVER OVERLAPS OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS
    PARTIAL PARTITION PARTITIONED PARTITIONS PATH PERCENT PERCENTILE PERMISSION PERMISSIONS
    PIPE PIPELINED PLAN POOL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVATE
    PRIVILEGES PROCEDURE PROCESSED PROJECT PROJECTION PROPERTY PROVISIONING PUBLIC PUT QUERY
    QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ READS REAL REBUILD RECORD RECURSIVE REDUCE REF
    REFERENCE REFERENCES REFERENCING REGEXP REGION REINDEX RELATIVE RELEASE REMAINDER RENAME
    REPEAT REPLACE REQUEST RESET RESIGNAL RESOURCE RESPONSE RESTORE RESTRICT RESULT RETURN
    RETURNING RETURNS REVERSE REVOKE RIGHT ROLE ROLES ROLLBACK ROLLUP ROUTINE ROW ROWS RULE
    RULES SAMPLE SATISFIES SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH SECOND SECTION
    SEGMENT SEGMENTS SELECT SELF SEMI SENSITIVE SEPARATE SEQUENCE SERIALIZABLE SESSION SET SETS
    SHARD SHARE SHARED SHORT SHOW SIGNAL SIMILAR SIZE SKEWED SMALLINT SNAPSHOT SOME SOURCE
    SPACE SPACES SPARSE SPECIFIC SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR SQLEXCEPTION SQLSTATE
    SQLWARNING START STATE STATIC STATUS STORAGE STORE STORED STREAM STRING STRUCT STYLE SUB
    SUBMULTISET SUBPARTITION SUBSTRING SUBTYPE SUM SUPER SYMMETRIC SYNONYM SYSTEM TABLE
    TABLESAMPLE TEMP TEMPORARY TERMINATED TEXT THAN THEN THROUGHPUT TIME TIMESTAMP TIMEZONE
    TINYINT TO TOKEN TOTAL TOUCH TRAILING TRANSACTION TRANSFORM TRANSLATE TRANSLATION TREAT
    TRIGGER TRIM TRUE TRUNCATE TTL TUPLE TYPE UNDER UNDO UNION UNIQUE UNIT UNKNOWN UNLOGGED
    UNNEST UNPROCESSED UNSIGNED UNTIL UPDATE UPPER URL USAGE USE USER USERS USING UUID VACUUM
    VALUE VALUED VALUES VARCHAR VARIABLE VARIANCE VARINT VARYING VIEW VIEWS VIRTUAL VOID WAIT
    WHEN WHENEVER WHERE WHILE WINDOW WITH WITHIN WITHOUT WORK WRAPPED WRITE YEAR ZONE
"""
DYNAMODB_RESERVED_WORDS = frozenset(_RESERVED_WORDS_TEXT.split())

S3_OBJECT_ACTIONS = {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"}
# The only actions AWS accepts no resource for (X-Ray has no resource-level permissions).
RESOURCE_STAR_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# --------------------------------------------------------------------------------------------
# Loading


def _plain(node: Any) -> Any:
    """cfn-lint's node classes as plain dicts, lists and strings."""
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return dict(_plain(decoded))


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation will run it. No network: the
    region is given and no managed policy is looked up (every role is declared explicitly)."""

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id="unused", aws_secret_access_key="unused"
    )
    translator = Translator(NoManagedPolicies(), Parser(), boto_session=session)
    parameters = {"CodeBucket": "artifacts", "CodeKey": "lambda/abc.zip"}
    return dict(translator.translate(json.loads(json.dumps(template)), parameters))


def resources(tpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in tpl["Resources"].items() if r["Type"] == kind}


def props(tpl: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(tpl["Resources"][name].get("Properties", {}))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------------------------
# A small evaluator of CloudFormation's intrinsic functions, for one sample stack


NO_VALUE = object()


class Stack:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If (and the
    conditions' Fn::Equals, Fn::Not, Fn::And, Fn::Or) for a stack
    named STACK_NAME; resources get stand-in physical names unless the template names them."""

    def __init__(
        self,
        tpl: dict[str, Any],
        parameters: dict[str, str] | None = None,
        *,
        region: str = REGION,
        stack_id: str = STACK_ID,
    ) -> None:
        self.tpl = tpl
        self.region = region
        self.pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_id.split("/")[1],
            "AWS::StackId": stack_id,
        }
        defaults = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
        self.parameters = {**defaults, **(parameters or {})}

    def condition(self, name: str) -> bool:
        return bool(self.value(self.tpl["Conditions"][name]))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.tpl["Resources"][name]
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket" and "BucketName" in properties:
            return self.value(properties["BucketName"])
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{name}"
        return f"{self.pseudo['AWS::StackName']}-{name}-PHYSICAL"

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.tpl["Resources"][name]["Type"]
        prefix = f"arn:aws:{{}}:{self.region}:{ACCOUNT}"
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{self.ref(name)}",
            "AWS::SQS::Queue": f"{prefix.format('sqs')}:{name}",
            "AWS::DynamoDB::Table": f"{prefix.format('dynamodb')}:table/{self.ref(name)}",
            "AWS::Logs::LogGroup": f"{prefix.format('logs')}:log-group:{self.ref(name)}:*",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{self.ref(name)}",
            "AWS::Serverless::Function": f"{prefix.format('lambda')}:function:{self.ref(name)}",
            "AWS::Lambda::Function": f"{prefix.format('lambda')}:function:{self.ref(name)}",
            "AWS::CloudWatch::Alarm": f"{prefix.format('cloudwatch')}:alarm:{self.ref(name)}",
            "AWS::Events::Rule": f"{prefix.format('events')}:rule/{self.ref(name)}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{arns[kind]}/stream/2026-01-01T00:00:00.000"
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if kind == "AWS::ApiGatewayV2::Api" and attribute == "ApiEndpoint":
            return f"https://{self.ref(name)}.execute-api.{self.region}.amazonaws.com"
        if kind == "AWS::CloudFront::Distribution" and attribute == "DomainName":
            return CLOUDFRONT_DOMAIN
        if kind == "AWS::S3::Bucket" and attribute in ("DomainName", "RegionalDomainName"):
            region = f".{self.region}" if attribute == "RegionalDomainName" else ""
            return f"{self.ref(name)}.s3{region}.amazonaws.com"
        if kind == "AWS::CloudFront::OriginAccessControl" and attribute == "Id":
            return f"{name}-ID"
        if kind == "AWS::CloudFront::Function" and attribute == "FunctionMetadata.FunctionARN":
            return f"arn:aws:cloudfront::{ACCOUNT}:function/{self.ref(name)}"
        raise AssertionError(f"no stand-in for {name}.{attribute} ({kind})")

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.value(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), *_ = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(resource, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, variables)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.value(arg[1]))
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}


@pytest.fixture(scope="module")
def stack(template: dict[str, Any]) -> Stack:
    return Stack(template)


# --------------------------------------------------------------------------------------------
# S3


def test_bucket_is_versioned_private_and_encrypted(template: dict[str, Any]) -> None:
    bucket = props(template, "ImagesBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # aws/s3 without the CDN; SSE-S3 with it, since OAC cannot use aws/s3 (test_cdn_template)
    algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    on, off = (Stack(template, {"CdnEnabled": v}).value(algorithm) for v in ("true", "false"))
    assert (on, off) == ("AES256", "aws:kms")
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert template["Resources"]["ImagesBucket"]["DeletionPolicy"] == "Retain"


def test_browsers_may_post_presigned_uploads_and_nothing_else(template: dict[str, Any]) -> None:
    """POST /uploads hands a browser a presigned POST; without a CORS rule the browser could
    not send it. Only POST is allowed cross-origin (reads go through presigned GET redirects,
    which <img> does not need CORS for). moto does not apply bucket CORS, so this is checked
    on the template only."""
    (rule,) = props(template, "ImagesBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"]
    assert rule["AllowedOrigins"] == {"Ref": "UploadOrigins"}
    origins = template["Parameters"]["UploadOrigins"]
    assert origins["Type"] == "CommaDelimitedList"


def test_every_bucket_denies_plain_http(template: dict[str, Any], stack: Stack) -> None:
    policies = {
        stack.value(p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]
        for p in resources(template, "AWS::S3::BucketPolicy").values()
    }
    for name in resources(template, "AWS::S3::Bucket"):
        bucket = stack.ref(name)
        assert bucket in policies, f"{name} has no bucket policy"
        denials = [
            s
            for s in stack.value(policies[bucket])["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"].get("Bool", {}).get("aws:SecureTransport") in (False, "false")
        ]
        assert denials, f"{name} does not deny requests without TLS"
        (deny,) = denials
        assert deny["Principal"] == "*"
        assert set(deny["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_lifecycle_expires_old_versions_and_aborts_uploads(template: dict[str, Any]) -> None:
    rules = props(template, "ImagesBucket")["LifecycleConfiguration"]["Rules"]
    enabled = [r for r in rules if r["Status"] == "Enabled"]
    assert any("NoncurrentVersionExpiration" in r for r in enabled)
    assert any(
        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
        for r in enabled
        if "AbortIncompleteMultipartUpload" in r
    )
    # These two rules narrow themselves to no prefix: they cover every prefix alike.
    general = [r for r in enabled if r["Id"] != "expire-derived"]
    assert len(general) == 2
    assert all("Prefix" not in r and "Filter" not in r for r in general)


def test_cached_transforms_expire_after_the_days_of_a_parameter(
    template: dict[str, Any], stack: Stack
) -> None:
    # GIVEN the bucket's lifecycle rule for derived/, the cache of on-request transforms
    rules = props(template, "ImagesBucket")["LifecycleConfiguration"]["Rules"]
    [derived] = [r for r in rules if r.get("Prefix") == "derived/"]
    assert derived["Status"] == "Enabled"
    # THEN a cached result expires the parameter's days after it was written (30 by default)
    assert derived["ExpirationInDays"] == {"Ref": "DerivedExpirationDays"}
    parameter = template["Parameters"]["DerivedExpirationDays"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 30, 1)
    assert Stack(template, {"DerivedExpirationDays": "7"}).value(derived)["ExpirationInDays"] == "7"
    # AND its old versions go sooner than the bucket's (S3 applies the shorter of two
    # overlapping expirations): a cache keeps no history
    noncurrent = derived["NoncurrentVersionExpiration"]["NoncurrentDays"]
    assert noncurrent < int(stack.parameters["NoncurrentVersionDays"])
    # AND no rule expires anything outside derived/
    assert [r for r in rules if "ExpirationInDays" in r and r is not derived] == []


def notification_filters(template: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(event, target, {filter name: value}) for every notification the bucket sends."""
    config = props(template, "ImagesBucket")["NotificationConfiguration"]
    found = []
    for kind, target in (
        ("QueueConfigurations", "Queue"),
        ("LambdaConfigurations", "Function"),
        ("TopicConfigurations", "Topic"),
    ):
        for entry in config.get(kind, []):
            rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            found.append(
                (
                    entry["Event"],
                    json.dumps(entry[target]),
                    {r["Name"].lower(): r["Value"] for r in rules},
                )
            )
    return found


def test_only_uploads_notify_the_queue(template: dict[str, Any]) -> None:
    found = notification_filters(template)
    assert {event for event, _, _ in found} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    for _, target, rules in found:
        assert target == json.dumps({"Fn::GetAtt": ["UploadsQueue", "Arn"]})
        assert rules == {"prefix": UPLOADS_PREFIX}
    # S3 -> SQS -> Lambda: the bucket never names a function (no S3/Lambda circular dependency)
    assert (
        "LambdaConfigurations" not in props(template, "ImagesBucket")["NotificationConfiguration"]
    )


def test_renditions_never_trigger_anything(template: dict[str, Any]) -> None:
    sample = rendition_key(image_id_for("uploads/0123456789abcdef/IMG_0001.jpg"), "thumb", "webp")
    assert sample.startswith(RENDITIONS_PREFIX)
    for _, _, rules in notification_filters(template):
        prefix = rules.get("prefix", "")
        suffix = rules.get("suffix", "")
        # Overlap either way would do it: renditions/ under the filter, or the filter under it.
        assert not RENDITIONS_PREFIX.startswith(prefix)
        assert not prefix.startswith(RENDITIONS_PREFIX)
        assert not (sample.startswith(prefix) and sample.endswith(suffix))


def test_bucket_name_is_known_before_the_bucket_and_valid_everywhere(
    template: dict[str, Any],
) -> None:
    # GIVEN a stack name with capitals and the longest region names
    for region in (REGION, *LONG_REGIONS):
        stack_id = STACK_ID.replace(REGION, region)
        # WHEN the bucket name is worked out
        name = Stack(template, region=region, stack_id=stack_id).ref("ImagesBucket")
        # THEN it is a valid S3 bucket name: lower case, 3..63 characters, unique per stack
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name), name
        assert "--" not in name and not name.startswith("xn--"), name
        assert ACCOUNT in name and region in name and "1c2fa620" in name


def test_queue_policy_lets_only_this_bucket_send(template: dict[str, Any], stack: Stack) -> None:
    (policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    assert policy["Properties"]["Queues"] == [{"Ref": "UploadsQueue"}]
    (statement,) = stack.value(policy["Properties"]["PolicyDocument"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert as_list(statement["Action"]) == ["sqs:SendMessage"]
    assert statement["Resource"] == stack.get_att("UploadsQueue", "Arn")
    # the ARN of the bucket, built from its name before the bucket exists
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == stack.get_att(
        "ImagesBucket", "Arn"
    )
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT


def test_bucket_waits_for_the_policies_it_needs(template: dict[str, Any], stack: Stack) -> None:
    depends = as_list(template["Resources"]["ImagesBucket"]["DependsOn"])
    assert "UploadsQueuePolicy" in depends
    # the access-log bucket's policy names the images bucket by ARN too, before it exists
    assert "AccessLogsBucketPolicy" in depends
    (statement,) = [
        s
        for s in stack.value(props(template, "AccessLogsBucketPolicy")["PolicyDocument"])[
            "Statement"
        ]
        if s["Effect"] == "Allow"
    ]
    assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == stack.get_att(
        "ImagesBucket", "Arn"
    )
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT


# --------------------------------------------------------------------------------------------
# SQS and the worker


def event_source(transformed: dict[str, Any], function: str = "WorkerFunction") -> dict[str, Any]:
    """The one event source mapping that invokes `function`."""
    mappings = resources(transformed, "AWS::Lambda::EventSourceMapping").values()
    (mapping,) = [m for m in mappings if m["Properties"]["FunctionName"] == {"Ref": function}]
    return dict(mapping["Properties"])


def test_queue_dead_letters_after_five_receives(template: dict[str, Any]) -> None:
    redrive = props(template, "UploadsQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert int(redrive["maxReceiveCount"]) >= 5


def test_queue_visibility_outlasts_the_worker(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    worker_timeout = int(props(transformed, "WorkerFunction")["Timeout"])
    window = int(event_source(transformed)["MaximumBatchingWindowInSeconds"])
    visibility = int(props(template, "UploadsQueue")["VisibilityTimeout"])
    assert visibility >= 6 * worker_timeout + window


def test_dead_letters_are_kept_longer_than_messages(template: dict[str, Any]) -> None:
    source = int(props(template, "UploadsQueue")["MessageRetentionPeriod"])
    dead = int(props(template, "DeadLetterQueue")["MessageRetentionPeriod"])
    assert dead > source
    assert dead == 14 * 24 * 3600  # the most SQS keeps a message


@pytest.mark.parametrize("queue", ["UploadsQueue", "DeadLetterQueue", "EventsFailureQueue"])
def test_queues_are_encrypted(template: dict[str, Any], queue: str) -> None:
    properties = props(template, queue)
    assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId")


@pytest.mark.parametrize(
    ("function", "handler"),
    [
        ("WorkerFunction", "imgpipe.entrypoints.lambda_worker.handler"),
        ("ApiFunction", "imgpipe.entrypoints.lambda_api.handler"),
        ("EventsFunction", "imgpipe.entrypoints.lambda_events.handler"),
    ],
)
def test_functions_run_the_zip_on_python313_arm64(
    transformed: dict[str, Any], function: str, handler: str
) -> None:
    properties = props(transformed, function)
    assert properties["Handler"] == handler
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    assert "Layers" not in properties  # Powertools is in the zip
    # recursive loop detection stays on
    assert properties["RecursiveLoop"] == "Terminate"
    # its logs go to a log group of the stack (with retention), not an implicit one
    log_group = properties["LoggingConfig"]["LogGroup"]
    assert log_group["Ref"] in resources(transformed, "AWS::Logs::LogGroup")


def test_worker_reports_partial_batch_failures(transformed: dict[str, Any]) -> None:
    mapping = event_source(transformed)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["UploadsQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "WorkerFunction"}
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 <= int(mapping["MaximumBatchingWindowInSeconds"]) <= 5
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    parameter = transformed["Parameters"]["WorkerMaxConcurrency"]
    assert parameter["MinValue"] >= 2  # the least SQS event sources accept


def test_worker_memory_buys_one_to_two_vcpus(template: dict[str, Any]) -> None:
    # render is CPU-bound (~0.35 s CPU, ~150 MB RSS for 12 MP): memory is chosen for CPU
    default = int(template["Parameters"]["WorkerMemorySize"]["Default"])
    assert LAMBDA_VCPU_MB <= default <= 2 * LAMBDA_VCPU_MB
    assert props(template, "WorkerFunction")["MemorySize"] == {"Ref": "WorkerMemorySize"}


# --------------------------------------------------------------------------------------------
# Environment: the names the template sets are the names Settings reads


def function_env(transformed: dict[str, Any], function: str) -> dict[str, Any]:
    return dict(props(transformed, function)["Environment"]["Variables"])


def settings_path(name: str) -> list[str]:
    assert name.startswith(ENV_PREFIX), name
    return name[len(ENV_PREFIX) :].lower().split("__")


def settings_field_exists(path: list[str]) -> bool:
    model: type[BaseModel] = Settings
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if depth < len(path) - 1:
            annotation = field.annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_settings_field_lookup_tells_unknown_names_apart() -> None:
    assert settings_field_exists(["aws", "queue_url"])
    assert not settings_field_exists(["aws", "queue"])
    assert not settings_field_exists(["bucket"])
    assert not settings_field_exists(["backend", "aws"])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_env_var_names_are_the_ones_settings_reads(
    transformed: dict[str, Any], function: str
) -> None:
    env = function_env(transformed, function)
    expected = {
        "EventsFunction": EVENTS_FUNCTION_ENV,
        "ApiFunction": API_FUNCTION_ENV,
        "WorkerFunction": WORKER_FUNCTION_ENV,
    }
    assert set(env) == expected[function]
    for name in env:
        if name.startswith(ENV_PREFIX):
            assert settings_field_exists(settings_path(name)), f"Settings reads no {name}"
    assert env["POWERTOOLS_SERVICE_NAME"] == "imgpipe"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "imgpipe"
    assert env["IMGPIPE_AWS__QUEUE_URL"] == {"Ref": "UploadsQueue"}
    assert env["IMGPIPE_AWS__DLQ_URL"] == {"Ref": "DeadLetterQueue"}
    assert env["IMGPIPE_AWS__BUCKET"] == {"Ref": "ImagesBucket"}
    assert env["IMGPIPE_AWS__TABLE"] == {"Ref": "ImagesTable"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_settings_load_from_the_function_environment(
    transformed: dict[str, Any], function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the environment the function gets, resolved for a sample stack
    resolved = Stack(transformed).value(function_env(transformed, function))
    for name, value in resolved.items():
        monkeypatch.setenv(name, str(value))
    # WHEN settings are read THEN they validate, and name the stack's resources
    settings = Settings()
    assert settings.backend == "aws"
    assert settings.aws.bucket == resolved["IMGPIPE_AWS__BUCKET"]
    assert settings.aws.queue_url.endswith("/UploadsQueue")
    assert settings.aws.dlq_url.endswith("/DeadLetterQueue")
    if function == "EventsFunction":  # AND the events function is told the bus; it renders nothing
        assert settings.events.event_bus == "default"
        return
    # AND a render gives up before Lambda kills the function, leaving time for I/O
    timeout = int(props(transformed, function)["Timeout"])
    assert settings.limits.processing_timeout_s <= timeout - 5


# --------------------------------------------------------------------------------------------
# API


def test_api_uses_iam_by_default_and_jwt_by_parameter(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ApiAuth"]
    assert parameter["Default"] == "IAM"
    assert set(parameter["AllowedValues"]) == {"IAM", "JWT"}
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    # signed by their URLs (test_only_get_and_head_img_skip_the_authorizer)
    routes.pop("ImgRoute")
    routes.pop("ImgHeadRoute")
    assert routes
    for auth, expected in (("IAM", "AWS_IAM"), ("JWT", "JWT")):
        stack = Stack(template, {"ApiAuth": auth, "JwtIssuer": "https://idp", "JwtAudience": "a"})
        for name, route in routes.items():
            resolved = stack.value(route["Properties"])
            assert resolved["AuthorizationType"] == expected, name
            assert ("AuthorizerId" in resolved) == (auth == "JWT"), name
    (authorizer,) = resources(template, "AWS::ApiGatewayV2::Authorizer").values()
    assert authorizer["Condition"] == "UseJwt"
    jwt = Stack(template, {"JwtIssuer": "https://idp", "JwtAudience": "app1,app2"}).value(
        authorizer["Properties"]["JwtConfiguration"]
    )
    assert jwt == {"Issuer": "https://idp", "Audience": ["app1", "app2"]}


def test_only_get_and_head_img_skip_the_authorizer(template: dict[str, Any], stack: Stack) -> None:
    # GIVEN the HTTP API's routes, as any ApiAuth makes them
    for auth in ("IAM", "JWT"):
        parameters = {"ApiAuth": auth, "JwtIssuer": "https://idp", "JwtAudience": "a"}
        routes = {
            name: Stack(template, parameters).value(route["Properties"])
            for name, route in resources(template, "AWS::ApiGatewayV2::Route").items()
        }
        # THEN the routes without an authorizer are GET and HEAD /img/..., whose URLs carry their
        # own signature (browsers send neither SigV4 nor a JWT for an <img>)
        open_routes = {r["RouteKey"] for r in routes.values() if r["AuthorizationType"] == "NONE"}
        assert open_routes == {"GET /img/{proxy+}", "HEAD /img/{proxy+}"}
        # AND it reaches the same function, through the same integration, stage and throttling
        targets = {r["Target"] for r in routes.values()}
        assert targets == {f"integrations/{stack.ref('ApiIntegration')}"}
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    assert set(as_list(stage["DependsOn"])) == set(resources(template, "AWS::ApiGatewayV2::Route"))


def test_api_stage_throttles_and_logs_access(template: dict[str, Any], stack: Stack) -> None:
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    properties = stack.value(stage["Properties"])
    throttling = properties["DefaultRouteSettings"]
    assert int(throttling["ThrottlingRateLimit"]) > 0
    assert int(throttling["ThrottlingBurstLimit"]) > 0
    logs = properties["AccessLogSettings"]
    assert logs["DestinationArn"] == stack.get_att("ApiAccessLogGroup", "Arn")
    assert "$context.requestId" in logs["Format"] and "$context.status" in logs["Format"]


def test_api_integration_invokes_only_the_api_function(
    template: dict[str, Any], stack: Stack
) -> None:
    (integration,) = resources(template, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationUri"] == {"Fn::GetAtt": ["ApiFunction", "Arn"]}
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    (permission,) = resources(template, "AWS::Lambda::Permission").values()
    resolved = stack.value(permission["Properties"])
    assert resolved["Principal"] == "apigateway.amazonaws.com"
    api = stack.ref("HttpApi")
    assert resolved["SourceArn"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/*"


# --------------------------------------------------------------------------------------------
# DynamoDB


def test_table_is_on_demand_recoverable_and_encrypted(template: dict[str, Any]) -> None:
    table = props(template, "ImagesTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["KeySchema"] == [{"AttributeName": "imageId", "KeyType": "HASH"}]
    assert template["Resources"]["ImagesTable"]["DeletionPolicy"] == "Retain"


def test_indexes_list_by_status_and_by_upload(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"]: i for i in props(template, "ImagesTable")["GlobalSecondaryIndexes"]}
    similar = {i["IndexName"] for i in dynamodb_store.similarity_indexes()}
    assert set(indexes) == {"byStatus", "byUpload", *similar}
    for name, pk, sk in (("byStatus", "gsi1pk", "gsi1sk"), ("byUpload", "gsi2pk", "gsi2sk")):
        assert indexes[name]["KeySchema"] == [
            {"AttributeName": pk, "KeyType": "HASH"},
            {"AttributeName": sk, "KeyType": "RANGE"},
        ]
        assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}
    types = {
        a["AttributeName"]: a["AttributeType"]
        for a in props(template, "ImagesTable")["AttributeDefinitions"]
    }
    assert types == {
        **{a: "S" for a in ("imageId", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")},
        **dict.fromkeys(dynamodb_store.SIMILARITY_KEY_ATTRIBUTES, "S"),
    }


def test_near_duplicate_indexes_are_the_ones_the_store_queries(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"]: i for i in props(template, "ImagesTable")["GlobalSecondaryIndexes"]}
    for declared in dynamodb_store.similarity_indexes():
        assert indexes[declared["IndexName"]] == declared


def test_reserved_word_list_is_the_documented_one() -> None:
    assert len(DYNAMODB_RESERVED_WORDS) == 573
    assert {"STATUS", "KEY", "SIZE", "NAME", "DATA", "TIMESTAMP"} <= DYNAMODB_RESERVED_WORDS


def test_no_attribute_name_is_a_reserved_word(template: dict[str, Any]) -> None:
    declared = [a["AttributeName"] for a in props(template, "ImagesTable")["AttributeDefinitions"]]
    for name in (*declared, *RECORD_ATTRIBUTES):
        assert name.upper() not in DYNAMODB_RESERVED_WORDS, f"{name} is reserved in DynamoDB"


# --------------------------------------------------------------------------------------------
# Logs, alarms, dashboard, outputs


def test_every_log_group_has_the_retention_parameter(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    assert set(groups) == {"WorkerLogGroup", "ApiLogGroup", "EventsLogGroup", "ApiAccessLogGroup"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert int(template["Parameters"]["LogRetentionDays"]["Default"]) > 0


ALARMS = {
    # alarm: (namespace, metric, dimension, what the dimension names)
    "DeadLetterAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "DeadLetterQueue",
    ),
    "OldestMessageAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "UploadsQueue"),
    "WorkerErrorsAlarm": ("AWS/Lambda", "Errors", "FunctionName", "WorkerFunction"),
    "WorkerThrottlesAlarm": ("AWS/Lambda", "Throttles", "FunctionName", "WorkerFunction"),
    "WorkerDurationAlarm": ("AWS/Lambda", "Duration", "FunctionName", "WorkerFunction"),
    "Api5xxAlarm": ("AWS/ApiGateway", "5xx", "ApiId", "HttpApi"),
    # events: batches given up on, the function's crashes, and events lagging their records
    "EventsDiscardedAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "EventsFailureQueue",
    ),
    "EventsErrorsAlarm": ("AWS/Lambda", "Errors", "FunctionName", "EventsFunction"),
    "EventsIteratorAgeAlarm": ("AWS/Lambda", "IteratorAge", "FunctionName", "EventsFunction"),
}


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_alarm_watches_the_right_metric(template: dict[str, Any], alarm: str) -> None:
    namespace, metric, dimension, resource = ALARMS[alarm]
    properties = props(template, alarm)
    assert (properties["Namespace"], properties["MetricName"]) == (namespace, metric)
    dimensions = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
    assert json.dumps(dimensions[dimension]).count(resource) == 1
    assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert properties["TreatMissingData"] == "notBreaching"


def test_events_alarm_at_the_first_batch_given_up_and_at_a_lag_of_minutes(
    template: dict[str, Any],
) -> None:
    assert props(template, "EventsDiscardedAlarm")["Threshold"] == 0
    assert props(template, "EventsErrorsAlarm")["Threshold"] == 0
    lag = props(template, "EventsIteratorAgeAlarm")
    assert (lag["Statistic"], lag["Unit"]) == ("Maximum", "Milliseconds")
    # well past a normal lag (the 1 s batching window) and well before the mapping gives up
    mapping_age_ms = 21600 * 1000
    assert 60_000 <= lag["Threshold"] <= mapping_age_ms / 10


def test_dead_letters_alarm_at_the_first_one(template: dict[str, Any]) -> None:
    assert props(template, "DeadLetterAlarm")["Threshold"] == 0


def test_duration_alarm_is_near_the_timeout(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    alarm = props(template, "WorkerDurationAlarm")
    timeout_ms = int(props(transformed, "WorkerFunction")["Timeout"]) * 1000
    assert alarm["ExtendedStatistic"] == "p99"
    assert 0.5 * timeout_ms <= alarm["Threshold"] < timeout_ms


def test_alarm_email_is_optional(template: dict[str, Any]) -> None:
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert not Stack(template).condition("HasAlarmEmail")
    assert Stack(template, {"AlarmEmail": "ops@example.com"}).condition("HasAlarmEmail")


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = Stack(template).value(props(template, "Dashboard")["DashboardBody"])
    return dict(json.loads(body))


def test_dashboard_shows_imgpipe_and_aws_metrics(template: dict[str, Any]) -> None:
    widgets = dashboard(template)["widgets"]
    text = json.dumps(widgets)
    for metric in EMF_METRICS:
        assert f'"imgpipe", "{metric}"' in text or f'MetricName=\\"{metric}\\"' in text, metric
    # images_failed by its `code` dimension
    assert "{imgpipe,code,service}" in text
    for namespace in ("AWS/Lambda", "AWS/SQS", "AWS/ApiGateway"):
        assert f'"{namespace}"' in text
    alarms = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarms[0]["properties"]["alarms"]) == len(ALARMS)


def test_outputs(template: dict[str, Any]) -> None:
    assert {
        "BucketName",
        "ApiUrl",
        "TableName",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "DashboardUrl",
    } <= set(template["Outputs"])
    assert template["Outputs"]["QueueUrl"]["Value"] == {"Ref": "UploadsQueue"}
    assert template["Outputs"]["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}


# --------------------------------------------------------------------------------------------
# IAM: least privilege with real ARNs


def allow_statements(stack: Stack, role: str) -> Iterator[dict[str, Any]]:
    properties = props(stack.tpl, role)
    assert "ManagedPolicyArns" not in properties, f"{role}: managed policies are too broad"
    for policy in properties["Policies"]:
        for statement in stack.value(policy["PolicyDocument"])["Statement"]:
            if statement["Effect"] == "Allow":
                yield statement


def granted(stack: Stack, role: str) -> dict[str, set[str]]:
    """action -> the resources it is allowed on."""
    found: dict[str, set[str]] = {}
    for statement in allow_statements(stack, role):
        for action in as_list(statement["Action"]):
            found.setdefault(action, set()).update(as_list(statement["Resource"]))
    return found


def test_functions_have_only_their_declared_roles(transformed: dict[str, Any]) -> None:
    # SAM adds its own (broader) policies only to roles it makes: every role is ours
    for function, role in zip(FUNCTIONS, ROLES, strict=True):
        assert props(transformed, function)["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    roles = resources(transformed, "AWS::IAM::Role")
    assert set(roles) == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_no_wildcard_actions_or_resources(stack: Stack, role: str) -> None:
    for action, resources_ in granted(stack, role).items():
        assert "*" not in action, f"{role}: wildcard action {action}"
        if "*" in resources_:
            assert action in RESOURCE_STAR_ACTIONS, f"{role}: {action} on Resource *"


@pytest.mark.parametrize("role", ROLES)
def test_data_access_names_real_arns(stack: Stack, role: str) -> None:
    bucket = stack.get_att("ImagesBucket", "Arn")
    table = stack.get_att("ImagesTable", "Arn")
    stream = stack.get_att("ImagesTable", "StreamArn")
    queue = stack.get_att("EventsFailureQueue" if role == "EventsRole" else "UploadsQueue", "Arn")
    for action, arns in granted(stack, role).items():
        service = action.split(":", 1)[0]
        if action in S3_OBJECT_ACTIONS:
            prefixes = ("uploads", "renditions", "derived")
            assert arns <= {f"{bucket}/{prefix}/*" for prefix in prefixes}, action
        elif action == "s3:ListBucket":
            # key names only, of this bucket; lets S3 answer 404 (not 403) for a missing key
            assert arns == {bucket}
        elif service == "s3":
            pytest.fail(f"{role}: unexpected {action}")
        elif service == "dynamodb" and role == "EventsRole":
            assert arns <= {stream, f"{table}/stream/*"}, action  # the stream, not the table
        elif service == "dynamodb":
            assert arns <= {table, f"{table}/index/*"}, action
        elif service == "sqs":
            assert arns == {queue}, action
        elif service == "logs":
            assert len(arns) == 1 and next(iter(arns)).startswith("arn:aws:logs:"), action


def test_worker_reads_uploads_and_writes_only_renditions(stack: Stack) -> None:
    bucket = stack.get_att("ImagesBucket", "Arn")
    actions = granted(stack, "WorkerRole")
    on_uploads = {a for a, arns in actions.items() if f"{bucket}/uploads/*" in arns}
    on_renditions = {a for a, arns in actions.items() if f"{bucket}/renditions/*" in arns}
    # nothing the worker does can land in uploads/: no recursive trigger, even by mistake
    assert on_uploads == {"s3:GetObject", "s3:GetObjectVersion"}
    assert on_renditions == {"s3:PutObject", "s3:DeleteObject"}
    sqs = {a for a in actions if a.startswith("sqs:")}
    assert sqs == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    }
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    }


def test_api_reads_originals_and_keeps_only_derived_besides(stack: Stack) -> None:
    bucket = stack.get_att("ImagesBucket", "Arn")
    actions = granted(stack, "ApiRole")
    on = {
        prefix: {a for a, arns in actions.items() if f"{bucket}/{prefix}/*" in arns}
        for prefix in ("uploads", "renditions", "derived")
    }
    # what it had: presigned uploads and links are signed by it, DELETE removes both
    assert on["uploads"] == on["renditions"] == S3_OBJECT_ACTIONS
    # GET /img reads the originals it renders from (above) and caches in derived/ only
    assert on["derived"] == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    s3_objects = {arn for a, arns in actions.items() if a in S3_OBJECT_ACTIONS for arn in arns}
    assert s3_objects == {f"{bucket}/{prefix}/*" for prefix in on}
    # AND the worker, which renders no transform, may only delete there: a processing and a
    # removed original drop the image's cached results (service.delivery.drop_derived)
    worker = granted(stack, "WorkerRole")
    assert {a for a, arns in worker.items() if f"{bucket}/derived/*" in arns} == {"s3:DeleteObject"}


def test_transform_keys_are_a_secret_the_api_alone_reads(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    # GIVEN the parameter: the NAME of an SSM SecureString, never the keys themselves
    parameter = template["Parameters"]["TransformSecretName"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "")
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("/imgpipe/transform") and pattern.fullmatch("")
    assert not pattern.fullmatch("943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881")
    # no parameter of the template takes a key or a salt in plain text: the Lambda zip's S3
    # key, a PUBLIC key (CloudFront's key group) and the NAME of the private key's SecureString
    secretive = [p for p in template["Parameters"] if re.search("key|salt", p, re.IGNORECASE)]
    assert secretive == ["CodeKey", "CdnPublicKeyPem", "CdnPrivateKeySecretName"]
    private = re.compile(template["Parameters"]["CdnPrivateKeySecretName"]["AllowedPattern"])
    assert not private.fullmatch("-----BEGIN PRIVATE KEY-----\nMIIEvQ==\n-----END PRIVATE KEY-----")
    public = re.compile(template["Parameters"]["CdnPublicKeyPem"]["AllowedPattern"])
    assert not public.fullmatch("-----BEGIN PRIVATE KEY-----\nMIIEvQ==\n-----END PRIVATE KEY-----")
    name = "/imgpipe/prod/transform"
    with_secret = Stack(template, {"TransformSecretName": name})
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
    # WHEN it is set THEN the API function is told the name and may read that parameter only
    env = with_secret.value(function_env(transformed, "ApiFunction"))
    assert env["IMGPIPE_AWS__TRANSFORM_SECRET"] == name
    assert granted(with_secret, "ApiRole")["ssm:GetParameter"] == {arn}
    assert {a for a in granted(with_secret, "ApiRole") if a.startswith(("ssm:", "kms:"))} == {
        "ssm:GetParameter"
    }
    for role in ("WorkerRole", "EventsRole"):
        assert not [a for a in granted(with_secret, role) if a.startswith(("ssm:", "kms:"))]
    for function in ("WorkerFunction", "EventsFunction"):
        assert "IMGPIPE_AWS__TRANSFORM_SECRET" not in function_env(transformed, function)
    # AND unset (the default), neither the variable nor the permission exists
    default = Stack(template)
    assert "IMGPIPE_AWS__TRANSFORM_SECRET" not in default.value(
        function_env(transformed, "ApiFunction")
    )
    assert not [a for a in granted(default, "ApiRole") if a.startswith("ssm:")]


def test_api_function_is_sized_for_a_12_mp_render(template: dict[str, Any]) -> None:
    api = props(template, "ApiFunction")
    memory = template["Parameters"]["ApiMemorySize"]
    assert api["MemorySize"] == {"Ref": "ApiMemorySize"}
    # one full vCPU for the render by default; never below what a 12 MP render peaks at
    # in-process (docs/aws.md, On-request transforms: 78 MB for a 12 MP fill, 232 full size)
    assert int(memory["Default"]) >= LAMBDA_VCPU_MB
    assert int(memory["MinValue"]) >= 1024
    # under API Gateway's 30 s, and the render's own limit under that
    assert int(api["Timeout"]) < 30
    # renders run in memory: no /tmp beyond the free 512 MB
    assert api["EphemeralStorage"] == {"Size": 512}


def test_api_may_only_send_to_the_queue(stack: Stack) -> None:
    actions = granted(stack, "ApiRole")
    assert {a for a in actions if a.startswith("sqs:")} == {"sqs:SendMessage"}
    assert actions["sqs:SendMessage"] == {stack.get_att("UploadsQueue", "Arn")}


# --------------------------------------------------------------------------------------------
# Events out: EventBridge


def test_only_the_events_function_puts_events_on_its_bus_as_imgpipe(stack: Stack) -> None:
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    assert stack.parameters["EventBusName"] == "default"
    for role in ("WorkerRole", "ApiRole"):  # they publish nothing on AWS: no double sends
        assert not {a for a in granted(stack, role) if a.startswith("events:")}, role
    statements = [
        s
        for s in allow_statements(stack, "EventsRole")
        if "events:PutEvents" in as_list(s["Action"])
    ]
    [statement] = statements
    assert as_list(statement["Action"]) == ["events:PutEvents"]
    assert as_list(statement["Resource"]) == [bus]
    assert statement["Condition"] == {"StringEquals": {"events:source": "imgpipe"}}
    assert {a for a in granted(stack, "EventsRole") if a.startswith("events:")} == {
        "events:PutEvents"
    }
    other = Stack(stack.tpl, {"EventBusName": "imgpipe-events"})
    [arn] = granted(other, "EventsRole")["events:PutEvents"]
    assert arn == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/imgpipe-events"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_only_the_events_function_is_told_the_bus(
    transformed: dict[str, Any], function: str
) -> None:
    env = function_env(transformed, function)
    if function == "EventsFunction":
        assert env["IMGPIPE_EVENTS__EVENT_BUS"] == {"Ref": "EventBusName"}
    else:  # they publish nothing on AWS: told no bus
        assert "IMGPIPE_EVENTS__EVENT_BUS" not in env


def test_table_streams_every_write_with_the_item_before_and_after(template: dict[str, Any]) -> None:
    # the events function compares the two (core.events.finishes): both images are needed
    stream = props(template, "ImagesTable")["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_events_mapping_retries_failed_records_then_keeps_their_place(
    transformed: dict[str, Any],
) -> None:
    from imgpipe.adapters.aws.eventbridge import MAX_ENTRIES

    mapping = event_source(transformed, "EventsFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["ImagesTable", "StreamArn"]}
    # from the oldest record kept: an update from a stack whose worker published loses none
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert 1 <= mapping["BatchSize"] <= MAX_ENTRIES  # one PutEvents a batch
    assert mapping.get("ParallelizationFactor", 1) == 1  # one batch per shard at a time
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    # retried, but not forever (-1: a record that can never be published would hold its shard
    # for the stream's whole 24 hours), and given up on early enough to replay from the stream
    assert 0 < mapping["MaximumRetryAttempts"] <= 10_000
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600 - 12 * 3600
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["EventsFailureQueue", "Arn"]}}
    }
    failures = props(transformed, "EventsFailureQueue")
    assert int(failures["MessageRetentionPeriod"]) == 14 * 24 * 3600


def filter_matches(pattern: Any, event: Any) -> bool:
    """Lambda's event filter on one value: nested keys, a list of alternatives (exact values or
    {"prefix": ...}); what imgpipe's filter uses and nothing more."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and filter_matches(sub, event[key]) for key, sub in pattern.items()
        )
    assert isinstance(pattern, list), pattern
    for alternative in pattern:
        if isinstance(alternative, dict):
            (rule, value), *_ = alternative.items()
            assert rule == "prefix", rule
            if isinstance(event, str) and event.startswith(value):
                return True
        elif event == alternative:
            return True
    return False


def test_events_filter_passes_the_writes_of_finished_items_only(
    transformed: dict[str, Any],
) -> None:
    from imgpipe.core.model import ImageRecord, Status

    [criterion] = event_source(transformed, "EventsFunction")["FilterCriteria"]["Filters"]
    pattern = json.loads(criterion["Pattern"])
    base = ImageRecord(
        imageId="a" * 32,
        key="uploads/a.jpg",
        bucket="b",
        status=Status.PENDING,
        sequencer="1",
        uploadedAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
    )
    for status in Status:
        item = dynamodb_store.to_item(base.model_copy(update={"status": status}), 1)
        write = {"eventName": "MODIFY", "dynamodb": {"NewImage": item, "OldImage": item}}
        assert filter_matches(pattern, write) is status.terminal, status
    # a delete has no new item: nothing to announce
    removed = {"eventName": "REMOVE", "dynamodb": {"OldImage": dynamodb_store.to_item(base, 1)}}
    assert not filter_matches(pattern, removed)


def test_events_role_reads_the_stream_and_nothing_of_the_table(stack: Stack) -> None:
    actions = granted(stack, "EventsRole")
    stream = stack.get_att("ImagesTable", "StreamArn")
    table = stack.get_att("ImagesTable", "Arn")
    dynamodb = {a: arns for a, arns in actions.items() if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:DescribeStream": {stream},
        "dynamodb:GetRecords": {stream},
        "dynamodb:GetShardIterator": {stream},
        "dynamodb:ListStreams": {f"{table}/stream/*"},
    }
    assert {a for a in actions if a.startswith(("s3:", "sqs:"))} == {"sqs:SendMessage"}
    assert actions["sqs:SendMessage"] == {stack.get_att("EventsFailureQueue", "Arn")}
    assert actions["logs:PutLogEvents"] == {stack.get_att("EventsLogGroup", "Arn")}


def test_example_rule_sends_image_failed_to_the_alarm_topic(
    template: dict[str, Any], stack: Stack
) -> None:
    rule = props(template, "ImageFailedRule")
    assert template["Resources"]["ImageFailedRule"]["Type"] == "AWS::Events::Rule"
    assert rule["EventBusName"] == {"Ref": "EventBusName"}
    assert rule["EventPattern"] == {"source": ["imgpipe"], "detail-type": ["image.failed"]}
    assert rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": "AlarmTopic"}
    # the topic's policy lets EventBridge publish for this rule only, and (since it replaces
    # SNS's default policy) still lets this account's alarms publish
    policy = props(template, "AlarmTopicPolicy")
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    statements = stack.value(policy["PolicyDocument"])["Statement"]
    by_principal = {s["Principal"]["Service"]: s for s in statements}
    assert set(by_principal) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    topic = stack.ref("AlarmTopic")
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "sns:Publish"
        assert statement["Resource"] == topic
    events = by_principal["events.amazonaws.com"]
    assert events["Condition"] == {
        "ArnEquals": {"aws:SourceArn": stack.get_att("ImageFailedRule", "Arn")}
    }
    alarms = by_principal["cloudwatch.amazonaws.com"]["Condition"]
    assert alarms["ArnLike"] == {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"}
    assert alarms["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


# --------------------------------------------------------------------------------------------
# CDN: CloudFront in front of renditions/ and GET /img (docs/aws.md, CDN)
#
# moto has no CloudFront to speak of: it neither runs CloudFront Functions nor enforces Origin
# Access Control, a cache policy or a key group. These rules are checked on the template's
# values here, and the Function's JavaScript under node in tests/unit/test_cdn_accept.py.

CDN_ON = {"CdnEnabled": "true"}
CDN_SIGNED = {
    "CdnPrivacy": "signed",
    "CdnPublicKeyPem": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
    "-----END PUBLIC KEY-----\n",
    "CdnPrivateKeySecretName": "/imgpipe/prod/cdn-key",
}
CDN_DOMAIN = {
    "CdnDomainName": "img.example.com",
    "CdnCertificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0f1e2d3c-aaaa",
}
CDN_ENV_FUNCTIONS = ("ApiFunction",)  # the worker and the events function hand out no links
YEAR_S = 365 * 24 * 3600


def built(stack: Stack, name: str) -> bool:
    """Whether the stack's parameters create resource `name` (its Condition holds)."""
    condition = stack.tpl["Resources"][name].get("Condition")
    return condition is None or stack.condition(condition)


def distribution(stack: Stack) -> dict[str, Any]:
    return dict(stack.value(props(stack.tpl, "CdnDistribution")["DistributionConfig"]))


def behaviours(stack: Stack) -> dict[str, dict[str, Any]]:
    """path pattern -> cache behaviour, "default" for the default one."""
    config = distribution(stack)
    found = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    found["default"] = config["DefaultCacheBehavior"]
    return found


def origin_of(stack: Stack, behaviour: dict[str, Any]) -> dict[str, Any]:
    (origin,) = [
        o for o in distribution(stack)["Origins"] if o["Id"] == behaviour["TargetOriginId"]
    ]
    return dict(origin)


def cache_key(stack: Stack, policy_id: str) -> dict[str, Any]:
    """A cache policy (by the Ref a behaviour names) as its config, resolved."""
    [name] = [
        n for n in resources(stack.tpl, "AWS::CloudFront::CachePolicy") if stack.ref(n) == policy_id
    ]
    return dict(stack.value(props(stack.tpl, name)["CachePolicyConfig"]))


def test_cdn_off_builds_no_distribution_and_tells_the_functions_nothing(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    # GIVEN a stack that has a CDN of its own
    off = Stack(template, {"CdnEnabled": "false", **CDN_SIGNED, **CDN_DOMAIN})
    # THEN no CloudFront resource and no log bucket of the CDN is created
    cdn = [n for n, r in template["Resources"].items() if r["Type"].startswith("AWS::CloudFront::")]
    assert {"CdnDistribution", "CdnOriginAccessControl", "CdnAcceptFunction"} <= set(cdn)
    assert [n for n in [*cdn, "CdnLogsBucket", "CdnLogsBucketPolicy"] if built(off, n)] == []
    assert [n for n, o in template["Outputs"].items() if o.get("Condition") == "CdnOn"] == [
        "CdnDomain",
        "CdnDistributionId",
    ]
    assert not off.condition("CdnOn")
    # AND the functions get empty CDN values (records keep presigned URLs), no key, no secret
    for function in CDN_ENV_FUNCTIONS:
        env = off.value(function_env(transformed, function))
        assert (env["IMGPIPE_AWS__CDN_BASE_URL"], env["IMGPIPE_AWS__CDN_PRIVACY"]) == ("", "")
        assert not set(env) & (CDN_SIGNED_ENV - CDN_ENV)
    for role in ("WorkerRole", "ApiRole"):
        assert "ssm:GetParameter" not in granted(off, role)
    # AND the bucket policy allows nobody; the bucket keeps aws/s3
    statements = off.value(props(template, "ImagesBucketPolicy")["PolicyDocument"])["Statement"]
    assert [s for s in statements if s["Effect"] == "Allow"] == []


def test_cdn_is_on_by_default_and_named_in_the_outputs(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    default = Stack(template)
    assert default.condition("CdnOn") and built(default, "CdnDistribution")
    assert (default.parameters["CdnPrivacy"], default.parameters["CdnPriceClass"]) == (
        "public",
        "PriceClass_100",
    )
    assert default.value(template["Outputs"]["CdnDomain"]["Value"]) == CLOUDFRONT_DOMAIN
    custom = Stack(template, CDN_DOMAIN)
    assert custom.value(template["Outputs"]["CdnDomain"]["Value"]) == "img.example.com"
    # the API is told the CDN's base URL and that its URLs are public
    for stack, base in ((default, CLOUDFRONT_DOMAIN), (custom, "img.example.com")):
        for function in CDN_ENV_FUNCTIONS:
            env = stack.value(function_env(transformed, function))
            assert env["IMGPIPE_AWS__CDN_BASE_URL"] == f"https://{base}"
            assert env["IMGPIPE_AWS__CDN_PRIVACY"] == "public"
            assert not set(env) & (CDN_SIGNED_ENV - CDN_ENV)
    for other in ("WorkerFunction", "EventsFunction"):
        assert not set(function_env(transformed, other)) & CDN_SIGNED_ENV


def test_renditions_reach_the_private_bucket_through_origin_access_control(
    template: dict[str, Any], stack: Stack
) -> None:
    # GIVEN the /renditions/* behaviour's origin
    renditions = behaviours(stack)["/renditions/*"]
    origin = origin_of(stack, renditions)
    # THEN it is the images bucket, reached with OAC (SigV4-signed, always), no legacy OAI
    assert origin["DomainName"] == f"{stack.ref('ImagesBucket')}.s3.{REGION}.amazonaws.com"
    assert origin["OriginAccessControlId"] == stack.get_att("CdnOriginAccessControl", "Id")
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    oac = stack.value(props(template, "CdnOriginAccessControl")["OriginAccessControlConfig"])
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    assert oac["SigningProtocol"] == "sigv4"
    # AND the bucket policy's one Allow is for CloudFront, for this distribution only, and
    # reads renditions (any version) and nothing else
    statements = stack.value(props(template, "ImagesBucketPolicy")["PolicyDocument"])["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert set(as_list(allow["Action"])) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert allow["Resource"] == f"{stack.get_att('ImagesBucket', 'Arn')}/renditions/*"
    distribution_arn = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{stack.ref('CdnDistribution')}"
    assert allow["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    # AND Block Public Access stays on (test_bucket_is_versioned_private_and_encrypted), and
    # the objects it reads are SSE-S3: OAC cannot decrypt with aws/s3, whose policy is fixed
    (rule,) = stack.value(props(template, "ImagesBucket")["BucketEncryption"])[
        "ServerSideEncryptionConfiguration"
    ]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}


def test_renditions_are_keyed_on_their_path_and_version_only(stack: Stack) -> None:
    for pattern in ("/renditions/*", "default"):  # the default one reaches the bucket too
        behaviour = behaviours(stack)[pattern]
        key = cache_key(stack, behaviour["CachePolicyId"])[
            "ParametersInCacheKeyAndForwardedToOrigin"
        ]
        assert key["QueryStringsConfig"] == {
            "QueryStringBehavior": "whitelist",
            "QueryStrings": ["versionId"],
        }
        assert key["HeadersConfig"] == {"HeaderBehavior": "none"}
        assert key["CookiesConfig"] == {"CookieBehavior": "none"}
        # S3 is asked for exactly the pinned version, and nothing a viewer adds reaches it
        [name] = [
            n
            for n in resources(stack.tpl, "AWS::CloudFront::OriginRequestPolicy")
            if stack.ref(n) == behaviour["OriginRequestPolicyId"]
        ]
        forwarded = stack.value(props(stack.tpl, name)["OriginRequestPolicyConfig"])
        assert forwarded["QueryStringsConfig"]["QueryStrings"] == ["versionId"]
        assert forwarded["HeadersConfig"] == {"HeaderBehavior": "none"}
        assert forwarded["CookiesConfig"] == {"CookieBehavior": "none"}


def test_versioned_renditions_tell_browsers_they_never_change(stack: Stack) -> None:
    # GIVEN the /renditions/* behaviour (its URLs pin one S3 version; the objects carry no
    # Cache-Control of their own)
    behaviour = behaviours(stack)["/renditions/*"]
    [name] = [
        n
        for n in resources(stack.tpl, "AWS::CloudFront::ResponseHeadersPolicy")
        if stack.ref(n) == behaviour["ResponseHeadersPolicyId"]
    ]
    config = stack.value(props(stack.tpl, name)["ResponseHeadersPolicyConfig"])
    # THEN browsers are told to keep a rendition a year without revalidating, whatever S3 says
    assert config["CustomHeadersConfig"]["Items"] == [
        {
            "Header": "Cache-Control",
            "Value": "public, max-age=31536000, immutable",
            "Override": True,
        }
    ]


def test_img_goes_to_the_http_api_keyed_on_path_and_normalised_accept(stack: Stack) -> None:
    # GIVEN the /img/* behaviour
    img = behaviours(stack)["/img/*"]
    # THEN its origin is the HTTP API (its open GET/HEAD /img route), over TLS 1.2 only
    origin = origin_of(stack, img)
    assert origin["DomainName"] == f"{stack.ref('HttpApi')}.execute-api.{REGION}.amazonaws.com"
    assert origin["CustomOriginConfig"] == {
        "OriginProtocolPolicy": "https-only",
        "OriginSSLProtocols": ["TLSv1.2"],
    }
    # AND Accept is rewritten by the CloudFront Function before the cache is looked up
    (association,) = img["FunctionAssociations"]
    assert association == {
        "EventType": "viewer-request",
        "FunctionARN": stack.get_att("CdnAcceptFunction", "FunctionMetadata.FunctionARN"),
    }
    function = props(stack.tpl, "CdnAcceptFunction")
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["AutoPublish"] is True
    # AND the cache key is the path and that Accept: no query string, no cookie
    key = cache_key(stack, img["CachePolicyId"])["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Accept"]}
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    # AND no other behaviour runs the Function (it is billed per request)
    others = [b for p, b in behaviours(stack).items() if p != "/img/*"]
    assert [b for b in others if "FunctionAssociations" in b] == []


def test_cdn_caches_a_year_without_compressing_images(stack: Stack) -> None:
    for pattern, behaviour in behaviours(stack).items():
        # the URLs pin what they name (a version, a signed transform): a year, as the origin says
        config = cache_key(stack, behaviour["CachePolicyId"])
        assert (config["DefaultTTL"], config["MaxTTL"]) == (YEAR_S, YEAR_S), pattern
        assert config["MinTTL"] == 0, pattern  # a no-store answer (an error) is not kept
        # images are compressed already: neither recompressed nor keyed on Accept-Encoding
        assert behaviour["Compress"] is False, pattern
        key = config["ParametersInCacheKeyAndForwardedToOrigin"]
        assert key["EnableAcceptEncodingGzip"] is False, pattern
        assert key["EnableAcceptEncodingBrotli"] is False, pattern
        # read-only, and HTTPS to viewers
        assert behaviour["AllowedMethods"] == behaviour["CachedMethods"] == ["GET", "HEAD"]
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https", pattern


def test_cdn_speaks_http2_and_3_and_tls12_on_a_custom_domain(template: dict[str, Any]) -> None:
    default = distribution(Stack(template))
    assert (default["HttpVersion"], default["IPV6Enabled"]) == ("http2and3", True)
    assert default["PriceClass"] == "PriceClass_100"
    # on *.cloudfront.net CloudFront fixes the TLS policy itself: no alias, its certificate
    assert default["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True}
    assert "Aliases" not in default
    # GIVEN a custom domain and its certificate THEN TLS 1.2 or later, SNI, and the alias
    custom = distribution(Stack(template, {**CDN_DOMAIN, "CdnPriceClass": "PriceClass_All"}))
    assert custom["Aliases"] == ["img.example.com"]
    assert custom["ViewerCertificate"] == {
        "AcmCertificateArn": CDN_DOMAIN["CdnCertificateArn"],
        "SslSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    assert custom["PriceClass"] == "PriceClass_All"


def test_cdn_logs_go_to_an_encrypted_expiring_bucket_of_their_own(
    template: dict[str, Any], stack: Stack
) -> None:
    logging = distribution(stack)["Logging"]
    assert logging["Bucket"] == stack.get_att(
        "CdnLogsBucket", "DomainName"
    )  # {name}.s3.amazonaws.com
    assert logging["IncludeCookies"] is False
    bucket = stack.value(props(template, "CdnLogsBucket"))
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # CloudFront's log delivery writes SSE-S3 only, and with ACLs: the owner owns every object
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    expiring = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert [(r["Status"], r["ExpirationInDays"]) for r in expiring] == [("Enabled", 90)]
    assert template["Resources"]["CdnLogsBucket"]["DeletionPolicy"] == "Retain"


def test_signed_privacy_trusts_a_key_group_on_every_behaviour(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    # GIVEN CdnPrivacy=signed with a public key and the name of the private key's SecureString
    signed = Stack(template, CDN_SIGNED)
    assert built(signed, "CdnKeyGroup") and built(signed, "CdnPublicKey")
    # THEN the key group holds that public key, and every behaviour trusts the key group only
    key = signed.value(props(template, "CdnPublicKey")["PublicKeyConfig"])
    assert key["EncodedKey"] == CDN_SIGNED["CdnPublicKeyPem"]
    group = signed.value(props(template, "CdnKeyGroup")["KeyGroupConfig"])
    assert group["Items"] == [signed.ref("CdnPublicKey")]
    for pattern, behaviour in behaviours(signed).items():
        assert behaviour["TrustedKeyGroups"] == [signed.ref("CdnKeyGroup")], pattern
    # AND the API is told the key's id and the secret's name, and may read that one
    # parameter; the private key itself is nowhere in the template
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{CDN_SIGNED['CdnPrivateKeySecretName']}"
    env = signed.value(function_env(transformed, "ApiFunction"))
    assert env["IMGPIPE_AWS__CDN_PRIVACY"] == "signed"
    assert env["IMGPIPE_AWS__CDN_KEY_PAIR_ID"] == signed.ref("CdnPublicKey")
    assert env["IMGPIPE_AWS__CDN_PRIVATE_KEY_SECRET"] == CDN_SIGNED["CdnPrivateKeySecretName"]
    assert granted(signed, "ApiRole")["ssm:GetParameter"] == {arn}
    # AND the worker, which makes no URLs, may read no parameter: not the key
    for role in ("WorkerRole", "EventsRole"):
        assert "ssm:GetParameter" not in granted(signed, role)
    # AND public (the default): no key group, no behaviour asks for a signature
    public = Stack(template)
    assert not built(public, "CdnKeyGroup") and not built(public, "CdnPublicKey")
    assert [p for p, b in behaviours(public).items() if "TrustedKeyGroups" in b] == []


def test_cloudfront_names_fit_for_any_stack_name(template: dict[str, Any]) -> None:
    # GIVEN two stacks with the longest name CloudFormation allows, in one account
    named: list[set[tuple[str, str]]] = []
    for uid in ("1c2fa620-982a-11e3-aff7-50e2416294e0", "9d3e0b17-0000-11e3-aff7-50e2416294e0"):
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{'S' * 128}/{uid}"
        stack = Stack(template, stack_id=stack_id)
        found = set()
        for name, resource in template["Resources"].items():
            if resource["Type"].startswith("AWS::CloudFront::") and name != "CdnDistribution":
                properties = props(template, name)
                configs = [v for k, v in properties.items() if k.endswith("Config")]
                (node,) = [c["Name"] for c in configs if "Name" in c] or [properties["Name"]]
                found.add((resource["Type"], stack.value(node)))
        named.append(found)
    # THEN each CloudFront name is at most 64 of the characters CloudFront takes
    assert len(named[0]) == 8
    for kind, name in named[0] | named[1]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name), (kind, name)
    # AND no two stacks' resources of a kind share a name (each must be unique in the account)
    assert not named[0] & named[1]


def rule_violations(stack: Stack) -> list[str]:
    """The AssertDescription of each template rule the stack's parameters break."""
    broken = []
    for rule in stack.tpl["Rules"].values():
        if "RuleCondition" in rule and not stack.value(rule["RuleCondition"]):
            continue
        broken += [
            a["AssertDescription"] for a in rule["Assertions"] if not stack.value(a["Assert"])
        ]
    return broken


def test_cdn_parameters_that_go_together_are_refused_apart(template: dict[str, Any]) -> None:
    assert rule_violations(Stack(template)) == []
    assert rule_violations(Stack(template, {**CDN_SIGNED, **CDN_DOMAIN})) == []
    # signed needs the public key and where the private one is
    for missing in ("CdnPublicKeyPem", "CdnPrivateKeySecretName"):
        broken = rule_violations(Stack(template, {**CDN_SIGNED, missing: ""}))
        assert len(broken) == 1 and missing in broken[0]
    # ... unless the CDN is off, when nothing is signed
    assert rule_violations(Stack(template, {"CdnEnabled": "false", "CdnPrivacy": "signed"})) == []
    # a custom domain and its certificate: both or neither
    for missing in ("CdnDomainName", "CdnCertificateArn"):
        broken = rule_violations(Stack(template, {**CDN_DOMAIN, missing: ""}))
        assert len(broken) == 1 and "both or neither" in broken[0]
    # the certificate is one CloudFront can use: an ACM certificate in us-east-1
    arn = re.compile(template["Parameters"]["CdnCertificateArn"]["AllowedPattern"])
    assert arn.fullmatch(CDN_DOMAIN["CdnCertificateArn"])
    assert not arn.fullmatch(CDN_DOMAIN["CdnCertificateArn"].replace("us-east-1", REGION))


# --------------------------------------------------------------------------------------------
# The linters, as CI runs them (all offline)


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_cfn_lint_is_clean() -> None:
    # informational findings too (DeletionPolicy on every stateful resource)
    done = run([str(BIN / "cfn-lint"), "--include-checks", "I", "--", str(TEMPLATE)])
    assert done.returncode == 0, done.stdout + done.stderr


def checkov_results() -> dict[str, Any]:
    done = run(
        [
            iac_tool("checkov"),
            "-f",
            str(TEMPLATE),
            "--framework",
            "cloudformation",
            "--skip-download",  # no calls to Prisma Cloud
            "--output",
            "json",
        ],
        env={"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "ERROR"},
    )
    report = json.loads(done.stdout)
    (found,) = [r for r in as_list(report) if r.get("check_type") == "cloudformation"]
    return dict(found)


def test_checkov_passes_with_justified_skips_only(template: dict[str, Any]) -> None:
    results = checkov_results()["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert len(results["passed_checks"]) > 30
    # every skip in the template says why, and is still needed
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in results["skipped_checks"]}
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) >= 40, f"{name}: {skip['id']} has no reason"
            assert (skip["id"], name) in skipped, f"{name}: {skip['id']} skips nothing"


def test_sam_validate_lint_is_clean(tmp_path: Path) -> None:
    # SAM CLI checks PyPI for a newer version once a week: tell it it just did
    (tmp_path / "metadata.json").write_text(json.dumps({"lastVersionCheck": time.time()}))
    env = {
        "__SAM_CLI_APP_DIR": str(tmp_path),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for extra in (["--lint"], []):  # cfn-lint's rules, then the SAM translator's validation
        done = run([iac_tool("sam"), "validate", *extra, "-t", str(TEMPLATE)], env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "is a valid SAM Template" in done.stdout + done.stderr
