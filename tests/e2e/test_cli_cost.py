"""`imgpipe cost` as a user runs it: the table, --json, flags and a configuration's renditions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
    env["COLUMNS"] = "200"  # one table row per line
    return subprocess.run(
        [*IMGPIPE, "cost", *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def as_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def lines(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["key"]: line for line in doc["lines"]}


def test_table_names_every_service_and_the_total() -> None:
    result = run("--images-per-day", "10000")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for service in ("Lambda", "API Gateway", "S3", "DynamoDB", "SQS", "CloudWatch", "X-Ray"):
        assert service in out
    assert "300,000 a month" in out
    assert "170,400 GB-s" in out  # 300,000 x 0.284 s x 2 GB
    assert "total" in out and "per 1M images" in out
    assert "free tier is ignored" in out and "30 days" in out
    # the same total as the JSON document's
    total = as_json("--images-per-day", "10000")["totalUsd"]
    assert f"${total:,.2f}" in out


def test_json_is_one_document_with_the_measured_defaults() -> None:
    doc = as_json("--images-per-day", "1000000")
    assert doc["imagesPerMonth"] == 30_000_000
    assert doc["workload"]["durationMs"] == 284
    assert doc["workload"]["memoryMb"] == 2048
    assert doc["workload"]["renditionsPerImage"] == 6
    assert doc["totalUsd"] == pytest.approx(sum(line["monthlyUsd"] for line in doc["lines"]))
    assert doc["perMillionImagesUsd"] == pytest.approx(doc["totalUsd"] / 30)
    assert lines(doc)["eventbridge.events"]["quantity"] == 30_000_000
    assert "eventbridge.events" not in lines(as_json("--images-per-day", "1", "--no-events"))


def test_flags_change_the_workload() -> None:
    base_doc = as_json("--images-per-day", "1000")
    base = lines(base_doc)
    twice = str(2 * base_doc["workload"]["durationMs"])
    doc = as_json(
        "--images-per-day", "1000", "--duration-ms", twice, "--memory-mb", "1024",
        "--api-calls-per-image", "0", "--batch-size", "1", "--months", "2",
    )  # fmt: skip
    got = lines(doc)
    # twice the time at half the memory: the same GB-s
    assert got["lambda.worker_compute"]["quantity"] == pytest.approx(
        base["lambda.worker_compute"]["quantity"]
    )
    assert got["apigateway.requests"]["quantity"] == 0
    assert got["lambda.worker_requests"]["quantity"] == 30_000  # one image an invocation
    assert got["s3.storage"]["quantity"] == pytest.approx(base["s3.storage"]["quantity"] * 3)


def test_renditions_come_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "imgpipe.toml"
    config.write_text(
        '[[renditions]]\nname = "thumb"\nwidth = 256\nheight = 256\nformats = ["webp"]\n'
    )
    doc = as_json("--images-per-day", "1000", "--config", str(config))
    assert doc["workload"]["renditionsPerImage"] == 1
    assert lines(doc)["s3.put"]["quantity"] == 30_000 * 2  # the original + one rendition
    assert any("--renditions-kb" in note for note in doc["notes"])


def test_refuses_a_negative_workload() -> None:
    result = run("--images-per-day", "-5")
    assert result.returncode == 2


def test_views_through_cloudfront_and_without() -> None:
    # GIVEN 1,000 images a day viewed 20 times and 10 times through /img, 90% CDN hits
    views = ("--images-per-day", "1000", "--views-per-image", "20", "--transforms-per-image", "10")
    doc = as_json(*views, "--hit-rate", "0.9")
    got = lines(doc)
    assert got["cloudfront.requests"]["quantity"] == 900_000  # 30,000 x (20 + 10)
    assert got["cloudfront.requests"]["unitPricePer"] == 10_000
    assert got["cloudfront.functions"]["quantity"] == 300_000  # /img views only
    assert got["s3.origin_get"]["quantity"] == pytest.approx(60_000)  # 10% of 600,000
    assert got["apigateway.img_requests"]["quantity"] == pytest.approx(30_000)
    assert doc["workload"]["viewKb"] == pytest.approx(579.2 / 6)  # the mean rendition
    delivery = doc["delivery"]
    assert delivery["priceClass"] == "PriceClass_100"
    assert delivery["cdnSavesUsd"] == pytest.approx(
        delivery["directUsd"] - delivery["cdnUsd"], abs=1e-5
    )
    # WHEN the CDN is off, every view reaches S3 or the API, and the comparison is the same
    direct = as_json(*views, "--hit-rate", "0.9", "--no-cdn")
    assert not [k for k in lines(direct) if k.startswith("cloudfront.")]
    assert lines(direct)["s3.view_get"]["quantity"] == 600_000
    assert lines(direct)["apigateway.img_requests"]["quantity"] == 300_000
    assert direct["delivery"] == delivery
    assert direct["totalUsd"] - doc["totalUsd"] == pytest.approx(delivery["cdnSavesUsd"], abs=1e-5)
    # THEN the table says which way it goes: here CloudFront saves, at a 5% hit rate it costs
    out = run(*views, "--hit-rate", "0.9").stdout
    assert "CloudFront" in out and "$0.01 / 10K requests" in out
    assert f"CloudFront saves ${delivery['cdnSavesUsd']:,.2f} a month" in out
    assert "CloudFront costs $" in run(*views, "--hit-rate", "0.05").stdout


def test_refuses_a_hit_rate_over_one() -> None:
    result = run("--images-per-day", "10", "--views-per-image", "1", "--hit-rate", "1.5")
    assert result.returncode == 2
    assert "hit-rate" in result.stderr
