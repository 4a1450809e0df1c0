"""The CloudFront Function (infra/cdn/accept.js) run under node: it must put a request in the
variant core.negotiate puts it in, for browsers' real `Accept` headers and for odd and hostile
ones, and the template must deploy exactly that file.

moto does not run CloudFront Functions (nor does any local CloudFront), so node runs the file
as CloudFront would call it: `handler(event)` on a viewer-request event, in a context of its
own with no module system. node is installed by .ci/run; without it a developer's run skips
loudly and CI's fails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from imgpipe.core.negotiate import Variant, variant

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "infra" / "cdn" / "accept.js"
TEMPLATE = ROOT / "infra" / "template.yaml"
# The three values the Function may send on, one per variant (docs/aws.md, CDN).
NORMALISED: dict[Variant, str] = {
    "avif": "image/avif,image/webp,*/*",
    "webp": "image/webp,*/*",
    "default": "*/*",
}
CLOUDFRONT_FUNCTION_MAX_BYTES = 10 * 1024  # CloudFront Functions' code size limit

# Reads the events as JSON from stdin, runs the file's handler on each in a fresh context (as
# CloudFront does: no require, no module) and prints the requests it returns.
HARNESS = """
const fs = require('fs');
const vm = require('vm');
const code = fs.readFileSync(process.argv[1], 'utf8');
const events = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = events.map((event) => vm.runInNewContext(code + '\\n;handler', {})(event));
process.stdout.write(JSON.stringify(out));
"""

# `Accept` as browsers send it for an <img>, and as other clients do.
BROWSERS: dict[str, tuple[str | None, Variant]] = {
    "chrome": ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "avif"),
    "firefox": ("image/avif,image/webp,*/*", "avif"),
    "firefox 65-92": ("image/webp,*/*", "webp"),
    "safari 16": (
        "image/webp,image/avif,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        "avif",
    ),
    "safari 17": (
        "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
        "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        "avif",
    ),
    "safari 14-15": (
        "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
        "webp",
    ),
    "edge 18 (EdgeHTML)": ("image/png, image/svg+xml, image/*; q=0.8, */*; q=0.5", "default"),
    "curl": ("*/*", "default"),
    "empty": ("", "default"),
    "absent": (None, "default"),
}
# What an attacker (or a broken client) may send to split the cache or confuse the parse.
HOSTILE: dict[str, tuple[str, Variant]] = {
    "refused avif": ("image/avif;q=0,image/webp", "webp"),
    "case and spaces": ("  IMAGE/AVIF ; Q = 0.001 ", "avif"),
    "malformed q": ("image/avif;q=abc,image/webp;q=1x", "default"),
    "nan q": ("image/webp;q=nan", "webp"),  # float('nan') <= 0 is false in Python too
    "underscored q": ("image/avif;q=1_0", "avif"),
    "double underscore": ("image/avif;q=1__0", "default"),
    "negative zero": ("image/avif;q=-0.0", "default"),
    "infinite": ("image/avif;q=-inf,image/webp;q=Infinity", "webp"),
    "underflow": ("image/avif;q=1e-400", "default"),
    "first q wins": ("image/avif;q=1;q=0", "avif"),
    "bare q": ("image/avif;q", "default"),
    "separator soup": (",,;;,image/webp;;,", "webp"),
    "control chars": ("\x1cimage/avif\x1f,\x0bimage/webp", "avif"),
    "after 4096 chars": ("x" * 4096 + ",image/avif", "default"),
    "cut at 4096": ("image/avif," + "a" * 5000, "avif"),
    "cache-busting": ("image/avif,image/webp,*/*;q=0.8;nonce=8c1f2a", "avif"),
    "wildcards only": ("image/*,*/*", "default"),
}
CASES = {**BROWSERS, **HOSTILE}


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI must run the CloudFront Function: node is missing (.ci/run installs it)"
            )
        pytest.skip("SKIPPING THE CLOUDFRONT FUNCTION TEST: node is not installed")
    return found


def run_function(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [node(), "-e", HARNESS, str(FUNCTION)],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def viewer_request(accept: str | None) -> dict[str, Any]:
    """A CloudFront viewer-request event (its documented shape) for GET /img/..."""
    headers: dict[str, Any] = {"host": {"value": "d111111abcdef8.cloudfront.net"}}
    if accept is not None:
        headers["accept"] = {"value": accept}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "198.51.100.7"},
        "request": {
            "method": "GET",
            "uri": "/img/sig/rs:fill:300:200/plain/a.jpg",
            "querystring": {},
            "headers": headers,
            "cookies": {},
        },
    }


def accepts_sent_on(accepts: list[str | None]) -> list[str]:
    """The Accept the Function sends on for each header."""
    requests = run_function([viewer_request(a) for a in accepts])
    return [r["headers"]["accept"]["value"] for r in requests]


def test_browsers_and_hostile_headers_get_the_variant_negotiate_picks() -> None:
    # GIVEN real browsers' headers and hostile ones, each with the variant expected of it
    names = list(CASES)
    accepts = [CASES[n][0] for n in names]
    # WHEN the Function runs on each
    sent = accepts_sent_on(accepts)
    for name, accept, value in zip(names, accepts, sent, strict=True):
        expected = CASES[name][1]
        # THEN it sends on one of three values, the one for the variant negotiate.py picks
        assert variant(accept) == expected, name  # the table is right about Python
        assert value == NORMALISED[expected], name
        # AND the origin, reading what was sent on, picks that variant again
        assert variant(value) == expected, name


def test_random_headers_get_the_variant_negotiate_picks() -> None:
    # GIVEN headers built at random from the pieces that matter to the parse (seeded)
    pieces = [
        "image/avif", "image/webp", "IMAGE/WEBP", "image/*", "*/*", "image/png", "text/html",
        ";q=0", ";q=1", ";q=0.5", ";q=.5", ";q=5.", ";q=1e-3", ";q=-1", ";q=1_0", ";q=_1",
        ";q=nan", ";q=inf", ";q=", ";q=x", ";Q=0", "; q = 0 ", ";level=1", ",", ",", ";",
        " ", "\t", "=", "\x0c", "\xa0", "+", "e",
    ]  # fmt: skip
    rng = random.Random(20261207)
    accepts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    # WHEN the Function runs on each THEN it agrees with negotiate.variant on every one
    sent = accepts_sent_on(list(accepts))
    disagreements = [
        (a, s) for a, s in zip(accepts, sent, strict=True) if s != NORMALISED[variant(a)]
    ]
    assert disagreements == []
    assert {variant(a) for a in accepts} == {"avif", "webp", "default"}  # all three were drawn


def test_the_function_changes_accept_alone() -> None:
    event = viewer_request("image/webp,*/*")
    (request,) = run_function([event])
    expected = dict(event["request"])
    expected["headers"] = {**event["request"]["headers"], "accept": {"value": "image/webp,*/*"}}
    assert request == expected


def test_the_template_deploys_accept_js_as_it_is() -> None:
    # GIVEN the Function as the template inlines it (CloudFormation takes no file)
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    function = decoded["Resources"]["CdnAcceptFunction"]["Properties"]
    # THEN it is infra/cdn/accept.js byte for byte (edit the file, then paste it in)
    assert str(function["FunctionCode"]) == FUNCTION.read_text(encoding="utf-8")
    assert len(FUNCTION.read_bytes()) <= CLOUDFRONT_FUNCTION_MAX_BYTES
