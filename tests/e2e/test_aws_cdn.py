"""At the edge, offline: with aws.cdn_base_url set, records' rendition URLs are the CloudFront
URLs of the exact S3 versions the worker wrote (public, or CloudFront-signed), and `imgpipe
purge` issues one invalidation. The API and worker run as in test_aws_flow (their handlers,
called as Lambda calls them, over moto's server).

Where moto is weaker than AWS, the test says so where it matters:
- there is no CloudFront in front of moto's S3: a CDN URL is checked for what CloudFront
  needs of it (the key, the versionId that the template's cache policy keys on, and S3
  serving exactly that version to a GET with that VersionId, as it does through OAC);
- moto does not check signed URLs: a signature is verified here with the public key, by
  rebuilding the canned policy from CloudFront's documentation (not from botocore);
- moto's CloudFormation cannot make a distribution: the purge test's stack only outputs the
  domain of a distribution made through moto's CloudFront API.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from PIL import Image
from test_aws_flow import Stack, call_api, cold_start, stack

import imagegen
from imgpipe.entrypoints import lambda_api
from motoserver import REGION, aws, moto_endpoint, unique

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures

CDN = "https://d111111abcdef8.cloudfront.net"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"


def processed(stack: Stack) -> str:
    """A photo uploaded and processed through the API; its id."""
    uploaded = call_api(
        "http",
        "POST",
        "/images",
        files={"file": ("cat.jpg", imagegen.photo_jpeg(640, 480), "image/jpeg")},
    )
    assert uploaded.status == 202, uploaded.body
    done = call_api("http", "POST", "/process-image", json_body={"key": uploaded.json["key"]})
    assert (done.status, done.json["status"]) == (200, "PROCESSED"), done.body
    return str(uploaded.json["imageId"])


def renditions(image_id: str) -> list[dict[str, Any]]:
    got = call_api("http", "GET", f"/images/{image_id}")
    assert got.status == 200, got.body
    return list(got.json["renditions"])


def with_cdn(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The functions' environment as the template sets it with the distribution on."""
    monkeypatch.setenv("IMGPIPE_AWS__CDN_BASE_URL", CDN)
    for name, value in env.items():
        monkeypatch.setenv(f"IMGPIPE_AWS__{name.upper()}", value)
    cold_start()


def current_version(stack: Stack, key: str) -> str:
    return stack.clients.s3.head_object(Bucket=stack.bucket, Key=key)["VersionId"]


def served(stack: Stack, url: str) -> Image.Image:
    """What CloudFront's origin request fetches for `url`: the object at its path, in the
    version its `versionId` names (the template forwards that query parameter only)."""
    parts = urlsplit(url)
    [version] = parse_qs(parts.query)["versionId"]
    got = stack.clients.s3.get_object(
        Bucket=stack.bucket, Key=parts.path.lstrip("/"), VersionId=version
    )
    return Image.open(io.BytesIO(got["Body"].read()))


def test_records_get_cdn_urls_exactly_when_the_distribution_is_on(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an image processed by the worker, the distribution off
    stack.receive()
    image_id = processed(stack)
    # THEN its URLs are presigned S3 GETs, and the record keeps each rendition's version
    before = renditions(image_id)
    for r in before:
        assert r["url"].startswith(stack.clients.s3.meta.endpoint_url), r["url"]
        assert "X-Amz-Signature=" in r["url"]
        assert r["versionId"] == current_version(stack, r["key"])

    # WHEN the stack's distribution is on
    with_cdn(monkeypatch)
    after = renditions(image_id)
    # THEN each URL is the distribution's, pinned to the version the worker wrote
    for r in after:
        assert r["url"] == f"{CDN}/{r['key']}?versionId={quote(r['versionId'], safe='')}"
        assert "X-Amz" not in r["url"]
        with served(stack, r["url"]) as im:
            assert im.size == (r["width"], r["height"])
    # AND the same on every read (a browser's cache keeps it)
    assert renditions(image_id) == after

    # AND GET /images/{id}/renditions/... redirects there, negotiated or not
    thumb_webp = next(r for r in after if (r["name"], r["format"]) == ("thumb", "webp"))
    thumb_jpeg = next(r for r in after if (r["name"], r["format"]) == ("thumb", "jpeg"))
    exact = call_api("http", "GET", f"/images/{image_id}/renditions/thumb.webp")
    assert (exact.status, exact.headers["location"]) == (307, thumb_webp["url"])
    out = lambda_api_get(f"/images/{image_id}/renditions/thumb", accept="image/jpeg")
    assert (out["statusCode"], out["headers"]["location"]) == (307, thumb_jpeg["url"])


def test_transform_urls_are_on_the_distribution(
    stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the /img signing keys in SSM, and an image
    from test_aws_transforms import KEY, SALT
    from test_aws_transforms import put_secret as put_transform_secret

    put_transform_secret(
        moto_endpoint, f"/{stack.bucket}/transform", json.dumps({"key": KEY, "salt": SALT})
    )
    monkeypatch.setenv("IMGPIPE_AWS__TRANSFORM_SECRET", f"/{stack.bucket}/transform")
    cold_start()
    stack.receive()
    image_id = processed(stack)
    body = {"width": 200, "format": "webp"}
    # WHEN the distribution is off THEN the URL is the API's; on, the same path on the CDN
    off = call_api("http", "POST", f"/images/{image_id}/transform-url", json_body=body)
    assert off.status == 200, off.body
    assert (
        off.json["url"] == "https://abc123.execute-api.us-east-1.amazonaws.com" + off.json["path"]
    )
    with_cdn(monkeypatch)
    on = call_api("http", "POST", f"/images/{image_id}/transform-url", json_body=body)
    assert (on.json["path"], on.json["url"]) == (off.json["path"], CDN + off.json["path"])


def lambda_api_get(path: str, accept: str) -> dict[str, Any]:
    from test_aws_flow import FakeLambdaContext, api_event

    event = api_event("http", "GET", path, None, b"", {"accept": accept})
    out = lambda_api.handler(event, FakeLambdaContext())  # type: ignore[arg-type]
    out["headers"] = {k.lower(): v for k, v in out["headers"].items()}
    return out


def test_a_rendition_recorded_without_its_version_keeps_a_presigned_url(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a record written before versions were recorded (its renditions have none)
    stack.receive()
    image_id = processed(stack)
    record = stack.records.get(image_id)
    assert record is not None
    old = record.model_copy(
        update={
            "renditions": [r.model_copy(update={"version_id": None}) for r in record.renditions]
        }
    )
    assert stack.records.put(old, record.revision) is not None
    # WHEN the distribution is on THEN its URLs stay presigned: a CDN URL could not pin them
    with_cdn(monkeypatch)
    for r in renditions(image_id):
        assert r["url"].startswith(stack.clients.s3.meta.endpoint_url)


def test_a_reprocess_changes_every_cdn_url(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an image processed with the distribution on
    with_cdn(monkeypatch)
    stack.receive()
    image_id = processed(stack)
    first = {r["key"]: r["url"] for r in renditions(image_id)}
    stack.notifications()  # the upload's, processed already
    # WHEN it is reprocessed (the worker writes its renditions again)
    assert call_api("http", "POST", f"/images/{image_id}/reprocess").status == 202
    [job] = stack.receive()
    assert stack.work([job]) == []
    # THEN each rendition has a new URL, of its new current version; the old URL still names
    # the bytes it named (CloudFront's copy of it never needs invalidating)
    second = renditions(image_id)
    assert {r["key"] for r in second} == set(first)
    for r in second:
        assert r["url"] != first[r["key"]]
        assert r["versionId"] == current_version(stack, r["key"])
        assert r["url"] == f"{CDN}/{r['key']}?versionId={quote(r['versionId'], safe='')}"
        with served(stack, first[r["key"]]) as im:
            assert im.size == (r["width"], r["height"])


# -- signed URLs ---------------------------------------------------------------------------------


def put_secret(endpoint: str, name: str, value: str) -> None:
    ssm = boto3.session.Session().client("ssm", endpoint_url=endpoint, region_name=REGION)
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    ssm.close()


def cloudfront_b64decode(text: str) -> bytes:
    """CloudFront's URL-safe base64: + as -, = as _, / as ~ (its signed-URL documentation)."""
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def verify_canned(url: str, public_key: rsa.RSAPublicKey) -> int:
    """Check `url`'s CloudFront signature as CloudFront does; its expiry. The canned policy is
    rebuilt as CloudFront's documentation writes it: the URL without the three signing
    parameters, and the expiry, in this order, without spaces."""
    base, _, signing = url.rpartition("&Expires=")
    expires_text, _, rest = signing.partition("&Signature=")
    signature, _, key_pair_id = rest.partition("&Key-Pair-Id=")
    assert key_pair_id == KEY_PAIR_ID
    condition = '{"DateLessThan":{"AWS:EpochTime":' + expires_text + "}}"
    policy = '{"Statement":[{"Resource":"' + base + '","Condition":' + condition + "}]}"
    public_key.verify(
        cloudfront_b64decode(signature), policy.encode(), padding.PKCS1v15(), hashes.SHA1()
    )
    return int(expires_text)


@pytest.mark.parametrize(
    "pem_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["pkcs8", "pkcs1"],
)
def test_signed_cdn_urls_verify_with_the_public_key(
    stack: Stack,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    pem_format: serialization.PrivateFormat,
) -> None:
    # GIVEN the key group's private key in an SSM SecureString, the functions told its name
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, pem_format, serialization.NoEncryption()
    ).decode()
    secret = f"/{stack.bucket}/cdn-key"
    put_secret(moto_endpoint, secret, pem)
    ttl_s = 7200
    with_cdn(
        monkeypatch,
        cdn_privacy="signed",
        cdn_key_pair_id=KEY_PAIR_ID,
        cdn_private_key_secret=secret,
        cdn_signed_ttl_s=str(ttl_s),
    )
    stack.receive()
    image_id = processed(stack)
    # WHEN the record is read
    now = time.time()
    urls = [r["url"] for r in renditions(image_id)]
    # THEN each URL is the versioned CDN URL, signed with a canned policy that the public key
    # verifies, expiring between ttl and ttl + an hour from now, on the hour
    for r, url in zip(renditions(image_id), urls, strict=True):
        assert url.startswith(f"{CDN}/{r['key']}?versionId={quote(r['versionId'], safe='')}&")
        expires = verify_canned(url, private.public_key())
        assert now + ttl_s <= expires <= math.ceil(now + ttl_s + 3600) and expires % 3600 == 0
    # AND another read gives the same URLs (same hour), so caches keyed on them still hit
    if int(time.time()) // 3600 == int(now) // 3600:
        assert [r["url"] for r in renditions(image_id)] == urls
    # AND a URL changed to another version no longer verifies
    forged = urls[0].replace("versionId=", "versionId=0", 1)
    with pytest.raises(InvalidSignature):
        verify_canned(forged, private.public_key())


def test_a_bad_cdn_key_stops_the_cold_start_without_quoting_it(
    stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a SecureString that holds no RSA private key
    secret = f"/{stack.bucket}/cdn-key"
    junk = "\n".join(
        [
            "-----BEGIN RSA PRIVATE KEY-----",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
            "-----END RSA PRIVATE KEY-----",
        ]
    )
    put_secret(moto_endpoint, secret, junk)
    with_cdn(
        monkeypatch,
        cdn_privacy="signed",
        cdn_key_pair_id=KEY_PAIR_ID,
        cdn_private_key_secret=secret,
    )
    # WHEN the API function starts THEN it fails, saying why, without the secret's text
    from imgpipe.bootstrap.aws import lambda_app

    with pytest.raises(ValueError, match="RSA private key") as refused:
        lambda_app()
    assert "c2VjcmV0" not in str(refused.value)


# -- imgpipe purge -------------------------------------------------------------------------------


def make_distribution(endpoint: str) -> tuple[str, str]:
    """A distribution as moto's CloudFront makes it; (id, domain name)."""
    cloudfront = boto3.session.Session().client(
        "cloudfront", endpoint_url=endpoint, region_name=REGION
    )
    origin = "bucket.s3.us-east-1.amazonaws.com"
    made = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": unique("imgpipe"),
            "Comment": "imgpipe",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "bucket",
                        "DomainName": origin,
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "bucket",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
            },
        }
    )["Distribution"]
    cloudfront.close()
    return made["Id"], made["DomainName"]


def make_stack(endpoint: str, outputs: dict[str, str]) -> str:
    """A stack in moto's CloudFormation whose outputs are `outputs` (its one resource is a
    parameter: the outputs are what `imgpipe purge` reads)."""
    name = unique("imgpipe")
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Type": "String", "Value": "imgpipe", "Name": f"/{name}/marker"},
            }
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn = boto3.session.Session().client(
        "cloudformation", endpoint_url=endpoint, region_name=REGION
    )
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    cfn.close()
    return name


def imgpipe(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMGPIPE_AWS__ENDPOINT_URL": endpoint}
    return subprocess.run(
        [sys.executable, "-m", "imgpipe.entrypoints.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_purge_issues_one_invalidation_of_the_images_paths(moto_endpoint: str) -> None:
    # GIVEN a stack whose CdnDomain output is a distribution's domain
    distribution, domain = make_distribution(moto_endpoint)
    stack_name = make_stack(moto_endpoint, {"CdnDomain": domain})
    image_id = "4b67sq75dlhld6ooprmmwqpata"
    # WHEN an operator purges an image
    done = imgpipe(moto_endpoint, "purge", image_id, "--stack", stack_name)
    assert done.returncode == 0, done.stderr
    invalidation_id = done.stdout.strip()
    # THEN the distribution has that one invalidation, of the image's renditions and /img
    cloudfront = boto3.session.Session().client(
        "cloudfront", endpoint_url=moto_endpoint, region_name=REGION
    )
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert [i["Id"] for i in listed.get("Items", [])] == [invalidation_id]
    got = cloudfront.get_invalidation(DistributionId=distribution, Id=invalidation_id)
    paths = got["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
    assert sorted(paths) == sorted([f"/renditions/{image_id}/*", "/img/*"])
    cloudfront.close()


def test_purge_refuses_a_stack_without_a_distribution_and_a_bad_id(moto_endpoint: str) -> None:
    stack_name = make_stack(moto_endpoint, {"ApiUrl": "https://api.example"})
    refused = imgpipe(moto_endpoint, "purge", "4b67sq75dlhld6ooprmmwqpata", "--stack", stack_name)
    assert refused.returncode == 1 and "no CloudFront distribution" in refused.stderr
    bad = imgpipe(moto_endpoint, "purge", "../etc", "--stack", stack_name)
    assert bad.returncode == 2 and "not an image id" in bad.stderr
