"""On-request transforms on AWS, offline: moto's server holds the bucket, table, queues and the
SSM parameter of the signing keys; the API function's handler is called as API Gateway (HTTP
API, payload 2.0) calls it.

Where moto is weaker than AWS, the rule is covered elsewhere:
- moto runs no lifecycle rules: that derived/ expires is checked on the template
  (tests/unit/test_template.py, test_cached_transforms_expire_after_the_days_of_a_parameter);
- moto enforces no IAM: that the API's role may read originals and keep only derived/, and read
  only the one SSM parameter, is checked on the template as well;
- moto decrypts a SecureString without KMS (AWS uses the parameter's key, aws/ssm by default);
- moto has no 6 MB limit on a Lambda answer: a small inline limit is wired in to reach the
  redirect, and the production limit is checked against Lambda's by arithmetic;
- moto runs no API Gateway: the route without an authorizer is checked on the template, and
  the handler is called as the HTTP API calls it after routing.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from PIL import Image
from test_aws_flow import (
    FakeLambdaContext,
    Stack,
    api_event,
    as_aws_sends,
    call_api,
    cold_start,
    next_sequencer,
    put_original,
    s3_event,
    stack,
)

import imagegen
from imgpipe.bootstrap.aws import (
    LAMBDA_INLINE_LIMIT,
    AwsApp,
    build_aws,
    lambda_app,
    with_transform_secret,
)
from imgpipe.config import Settings
from imgpipe.core.img_url import sign_img_path
from imgpipe.core.keys import derived_prefix, image_id_for
from imgpipe.engine import twin as twins
from imgpipe.entrypoints import lambda_api
from imgpipe.service.delivery import TWIN_TYPE
from motoserver import REGION, aws, moto_endpoint

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"


def put_secret(endpoint: str, name: str, value: str) -> None:
    """The SecureString an operator makes once (aws ssm put-parameter --type SecureString)."""
    import boto3

    ssm = boto3.session.Session().client("ssm", endpoint_url=endpoint, region_name=REGION)
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    ssm.close()


def test_the_api_function_reads_its_signing_keys_from_ssm_at_cold_start(
    stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the keys in an SSM SecureString, and the function told only its name
    name = f"/{stack.bucket}/transform"
    put_secret(moto_endpoint, name, json.dumps({"key": KEY, "salt": SALT}))
    monkeypatch.setenv("IMGPIPE_AWS__TRANSFORM_SECRET", name)
    cold_start()
    # WHEN the function starts THEN its wiring signs with them
    settings = lambda_app().settings
    assert settings.transform.signing_keys() == ((bytes.fromhex(KEY), bytes.fromhex(SALT)),)
    # AND a bad secret stops the cold start with a message that quotes no key
    put_secret(moto_endpoint, name, json.dumps({"key": [KEY], "salt": []}))
    cold_start()
    with pytest.raises(ValueError, match="1 keys and 0 salts") as refused:
        lambda_app()
    assert KEY not in str(refused.value)


# -- GET /img through API Gateway (HTTP API, payload 2.0) and the API function ----------------

# Lambda refuses a synchronous response over 6 MB: 6,291,556 bytes, the request limit's
# 6,291,456 and 100 more (Lambda's quotas).
LAMBDA_RESPONSE_LIMIT = 6_291_556
MODERN = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"  # what Chrome sends for <img>


@pytest.fixture
def signed(stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with its signing keys in SSM, as the template wires them."""
    name = f"/{stack.bucket}/transform"
    put_secret(moto_endpoint, name, json.dumps({"key": KEY, "salt": SALT}))
    monkeypatch.setenv("IMGPIPE_AWS__TRANSFORM_SECRET", name)
    cold_start()
    return stack


def processed_photo(stack: Stack, width: int = 1200, height: int = 900) -> str:
    """An original uploaded and processed (POST /images, then POST /process-image); its id."""
    uploaded = call_api(
        "http",
        "POST",
        "/images",
        files={"file": ("photo.jpg", imagegen.photo_jpeg(width, height), "image/jpeg")},
    )
    assert uploaded.status == 202, uploaded.body
    done = call_api("http", "POST", "/process-image", json_body={"key": uploaded.json["key"]})
    assert (done.status, done.json["status"]) == (200, "PROCESSED"), done.body
    return str(uploaded.json["imageId"])


def img_path(options: str, image_id: str, key: str = KEY, salt: str = SALT) -> str:
    return "/img" + sign_img_path(
        f"/{options}/plain/{image_id}", bytes.fromhex(key), bytes.fromhex(salt)
    )


def get(path: str, **headers: str) -> dict[str, Any]:
    """GET `path` as API Gateway's HTTP API hands it to the function (payload 2.0); Lambda's
    answer, its header names lower-cased."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    out = lambda_api.handler(api_event("http", "GET", path, None, b"", sent), FakeLambdaContext())
    out["headers"] = {k.lower(): v for k, v in out.get("headers", {}).items()}
    return out


def image_of(out: dict[str, Any]) -> Image.Image:
    assert out["isBase64Encoded"] is True  # API Gateway decodes it to binary for the client
    return Image.open(io.BytesIO(base64.b64decode(out["body"])))


def renders(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """The `transforms` metric by result, from the EMF lines the function logged (what
    CloudWatch counts): "miss" is a render."""
    counted: dict[str, int] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"transforms"' not in line or '"result"' not in line:
            continue
        document = json.loads(line)
        counted[document["result"]] = counted.get(document["result"], 0) + 1
    return counted


def test_a_signed_url_renders_once_then_reads_derived_from_s3(
    signed: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    image_id = processed_photo(signed)
    renders(capsys)  # what processing logged
    path = img_path("rs:fill:400:300", image_id)

    # WHEN a browser asks for it (AVIF and WebP accepted)
    first = get(path, accept=MODERN)
    # THEN it is rendered: 200, binary, AVIF at the size asked for, cacheable for good
    assert first["statusCode"] == 200, first["body"]
    with image_of(first) as im:
        assert (im.format, im.size) == ("AVIF", (400, 300))
    headers = first["headers"]
    assert headers["content-type"] == "image/avif"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["vary"] == "Accept"
    # AND kept in S3 under derived/, its ETag the stored object's
    [cached] = list(signed.objects.list(derived_prefix(image_id)))
    assert headers["etag"] == f'"{cached.etag}"'
    assert renders(capsys) == {"miss": 1}

    # WHEN it is asked for again THEN the same bytes come from derived/ in S3, with no render
    again = get(path, accept=MODERN)
    assert (again["statusCode"], again["body"]) == (200, first["body"])
    assert again["headers"]["etag"] == headers["etag"]
    assert renders(capsys) == {"hit": 1}
    versions = signed.clients.s3.list_object_versions(Bucket=signed.bucket, Prefix=cached.key)
    assert len(versions["Versions"]) == 1  # written once

    # WHEN the browser revalidates THEN 304, no body
    fresh = get(path, accept=MODERN, if_none_match=headers["etag"])
    assert (fresh["statusCode"], fresh.get("body") or "") == (304, "")
    assert fresh["headers"]["etag"] == headers["etag"]

    # WHEN a browser without AVIF asks THEN WebP, binary too, cached apart
    webp = get(path, accept="image/webp,*/*")
    assert webp["headers"]["content-type"] == "image/webp"
    with image_of(webp) as im:
        assert (im.format, im.size) == ("WEBP", (400, 300))
    assert len(list(signed.objects.list(derived_prefix(image_id)))) == 2


def test_a_twin_is_kept_in_s3_and_read_by_the_next_render(signed: Stack) -> None:
    """The API function keeps a JPEG's 1/8 decode beside its results (engine/twin.py), and
    the next render that needs it reads it from S3: blackened there, the result is black."""
    image_id = processed_photo(signed, 1600, 1200)
    assert get(img_path("rs:fill:120:90", image_id))["statusCode"] == 200
    [twin] = [o for o in signed.objects.list(derived_prefix(image_id)) if o.key.endswith("/twin")]
    assert twin.size == twins.HEAD + 200 * 150 * 3
    data = signed.objects.get(twin.key)
    black = data[: twins.HEAD] + bytes(len(data) - twins.HEAD)
    signed.objects.put(twin.key, black, TWIN_TYPE)

    answer = get(img_path("rs:fill:80:80/f:png", image_id))

    assert answer["statusCode"] == 200
    with image_of(answer) as im:
        assert im.convert("L").getextrema() == (0, 0)


def test_bad_signatures_unknown_images_and_unsigned_urls_are_refused(signed: Stack) -> None:
    image_id = processed_photo(signed, 640, 480)
    path = img_path("rs:fit:100:100", image_id)
    # a signature by another key: 403
    forged = get(img_path("rs:fit:100:100", image_id, key="ab" * 32))
    assert forged["statusCode"] == 403
    assert json.loads(forged["body"])["error"]["code"] == "bad_signature"
    # the options changed under a good signature: 403
    signature = path.split("/")[2]
    tampered = get(f"/img/{signature}/rs:fit:1000:1000/plain/{image_id}")
    assert tampered["statusCode"] == 403
    # unsigned (imgproxy's insecure): never on AWS
    assert get(f"/img/insecure/rs:fit:100:100/plain/{image_id}")["statusCode"] == 403
    # an image that is not there: 404, in imgpipe's JSON
    missing = get(img_path("rs:fit:100:100", "a" * 26))
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"]
    # AND none of them rendered or stored anything
    assert list(signed.objects.list(derived_prefix(image_id))) == []
    assert get(path)["statusCode"] == 200


def test_the_inline_limit_fits_lambdas_response_limit() -> None:
    # base64 makes 4 bytes of every 3; the headers and the JSON around the body get the rest
    # (an ETag, a Cache-Control, a Vary and a content type: well under 1 KB)
    encoded = 4 * math.ceil(LAMBDA_INLINE_LIMIT / 3)
    assert encoded + 64 * 1024 <= LAMBDA_RESPONSE_LIMIT
    # AND it is not so low that ordinary results are redirected: a full-size 12 MP WebP of a
    # photo is under 1 MB, a 4K AVIF less
    assert LAMBDA_INLINE_LIMIT >= 4_000_000
    assert build_aws.__kwdefaults__["inline_limit_bytes"] == LAMBDA_INLINE_LIMIT


def test_a_result_over_the_inline_limit_is_a_redirect_to_a_presigned_get(
    signed: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the API function wired with a small inline limit (LAMBDA_INLINE_LIMIT in
    # production; moto has no 6 MB response limit to hit)
    @functools.cache
    def small_limit() -> AwsApp:
        return build_aws(with_transform_secret(Settings()), inline_limit_bytes=2_000)

    monkeypatch.setattr(lambda_api, "app", small_limit)
    lambda_api.asgi.cache_clear()
    image_id = processed_photo(signed, 1600, 1200)
    path = img_path("rs:fit:800:600/f:png", image_id)

    # WHEN a result larger than the limit is asked for (twice: a render, then a cache hit)
    for _ in range(2):
        out = get(path)
        # THEN the answer is a 307 to a presigned GET of the stored object, not kept by caches
        assert out["statusCode"] == 307, out.get("body")
        location = out["headers"]["location"]
        assert out["headers"]["cache-control"] == "no-store"
        [cached] = list(signed.objects.list(derived_prefix(image_id)))
        assert cached.size > 2_000
        assert f"/{cached.key}?" in location and "X-Amz-Signature=" in location
        assert "X-Amz-Expires=900" in location  # aws.presign_ttl_s; moto may not enforce it
        # AND fetching it from S3 gives the stored bytes, as a PNG of the size asked for
        fetched = httpx.get(location)
        assert fetched.status_code == 200
        assert fetched.content == signed.objects.get(cached.key)
        assert fetched.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(fetched.content)) as im:
            assert (im.format, im.size) == ("PNG", (800, 600))

    # AND a small result is still answered inline
    small = get(img_path("rs:fit:32:32/f:webp", image_id))
    assert small["statusCode"] == 200
    with image_of(small) as im:
        assert im.size == (32, 24)
    small_limit().close()


def test_deleting_an_image_removes_its_derived_objects(signed: Stack) -> None:
    image_id = processed_photo(signed, 640, 480)
    for options in ("rs:fit:100:100", "rs:fill:50:50", "rs:fit:200:0/f:jpeg"):
        assert get(img_path(options, image_id))["statusCode"] == 200
    assert len(list(signed.objects.list(derived_prefix(image_id)))) == 3
    # WHEN the image is deleted THEN its cached results go with it
    assert call_api("http", "DELETE", f"/images/{image_id}").status == 204
    assert list(signed.objects.list(derived_prefix(image_id))) == []
    assert get(img_path("rs:fit:100:100", image_id))["statusCode"] == 404


def test_the_api_function_renders_under_the_engines_limits(
    signed: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a processed 2 MP photo
    image_id = processed_photo(signed, 1600, 1200)
    # WHEN a result over transform.max_width is asked for THEN 400, from the options alone
    wide = get(img_path("rs:fit:20000:100:1", image_id))
    assert wide["statusCode"] == 400, wide["body"]
    assert "the limit is" in json.loads(wide["body"])["error"]["message"]
    # WHEN the function starts with a pixel limit below the original's (limits.max_pixels)
    monkeypatch.setenv("IMGPIPE_LIMITS__MAX_PIXELS", "1000000")
    cold_start()
    # THEN the in-process render refuses it from the header, before decoding, as the worker
    # would: 422 too_many_pixels, nothing stored
    refused = get(img_path("rs:fit:100:100", image_id))
    assert refused["statusCode"] == 422, refused["body"]
    assert json.loads(refused["body"])["error"]["code"] == "too_many_pixels"
    assert list(signed.objects.list(derived_prefix(image_id))) == []


def test_the_worker_drops_cached_results_of_a_new_version_and_of_a_removed_original(
    signed: Stack,
) -> None:
    # GIVEN an original processed by the worker, and a result of it cached
    signed.receive()  # the S3 test event
    key = "uploads/od/versions.jpg"
    image_id = image_id_for(key)
    version = put_original(signed, key, imagegen.photo_jpeg(800, 600))
    [note] = signed.notifications()
    assert signed.work([as_aws_sends(note, version, next_sequencer())]) == []
    assert get(img_path("rs:fit:100:100", image_id))["statusCode"] == 200
    [old] = list(signed.objects.list(derived_prefix(image_id)))

    # WHEN a new version is uploaded and processed
    version = put_original(signed, key, imagegen.photo_jpeg(600, 800))
    [note] = signed.notifications()
    assert signed.work([as_aws_sends(note, version, next_sequencer())]) == []
    # THEN the worker removed the old version's results (the template lets its role delete in
    # derived/: moto enforces no IAM), and the same URL renders the new version
    assert list(signed.objects.list(derived_prefix(image_id))) == []
    with image_of(get(img_path("rs:fit:100:100", image_id))) as im:
        assert im.size == (75, 100)
    [new] = list(signed.objects.list(derived_prefix(image_id)))
    assert new.key != old.key

    # WHEN the original is removed (AWS sends ObjectRemoved:DeleteMarkerCreated; moto sends
    # nothing for a delete marker, so the notification is built as AWS documents it)
    deleted = signed.clients.s3.delete_object(Bucket=signed.bucket, Key=key)
    removed = {"key": quote_plus(key), "versionId": deleted["VersionId"]}
    body = s3_event(signed.bucket, "ObjectRemoved:DeleteMarkerCreated", removed)
    body["Records"][0]["s3"]["object"]["sequencer"] = next_sequencer()
    signed.clients.sqs.send_message(QueueUrl=signed.queues.url, MessageBody=json.dumps(body))
    assert signed.work(signed.receive()) == []
    # THEN its cached results went with the record
    assert list(signed.objects.list(derived_prefix(image_id))) == []
    assert get(img_path("rs:fit:100:100", image_id))["statusCode"] == 404
