"""imgpipe.ops.cost: the arithmetic against a case computed by hand, that it scales with the
workload, and that the figures it takes from infra/template.yaml and the code are theirs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from hypothesis import given, settings
from hypothesis import strategies as st

from imgpipe.ops import cost, prices
from imgpipe.ops.cost import Workload, estimate

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


def by_key(workload: Workload) -> dict[str, float]:
    return {line.key: line.monthly_usd for line in estimate(workload).lines}


HAND = Workload(
    images_per_day=1000,
    duration_ms=300,
    memory_mb=1024,
    original_kb=2000,
    renditions_kb=500,
    renditions_per_image=6,
    api_calls_per_image=2,
    api_duration_ms=100,
    api_memory_mb=512,
    gets_per_image=4,
    months=2,
    batch_size=10,
    pending_write=True,
    events=True,
    custom_metrics=10,
    record_bytes={"PENDING": 870, "PROCESSING": 898, "PROCESSED": 2296},
)


def test_a_workload_computed_by_hand() -> None:
    # GIVEN 1000 images a day: 30,000 a month in 3,000 batches, 60,000 API calls; in month 2
    # storage holds 1.5 months of uploads on average: 45,000 images
    got = by_key(HAND)
    gib = 2**30
    expected = {
        # 30,000 x 0.3 s x 1 GB = 9,000 GB-s
        "lambda.worker_compute": 9_000 * 0.0000133334,
        "lambda.worker_requests": 3_000 * 0.20 / 1e6,
        # 60,000 x 0.1 s x 0.5 GB = 3,000 GB-s
        "lambda.api_compute": 3_000 * 0.0000133334,
        "lambda.api_requests": 60_000 * 0.20 / 1e6,
        "apigateway.requests": 60_000 * 1.00 / 1e6,
        # original + 6 renditions
        "s3.put": 210_000 * 0.005 / 1000,
        # HEAD + GET + 4 served
        "s3.get": 180_000 * 0.0004 / 1000,
        # 45,000 x 2,500 KB
        "s3.storage": 45_000 * 2_500_000 / gib * 0.023,
        # PENDING insert: table 1 + byStatus 1 + byUpload 1 = 3
        # PENDING -> PROCESSING: table 1 + byStatus 1 + 1 (moved) + byUpload 1 = 4
        # PROCESSING -> PROCESSED (2296 bytes: 3 units): table 3 + byStatus 1 + 3 + byUpload 3
        #   + bySha256 1 + byPhash0..3 4 x 1 = 15;  3 + 4 + 15 = 22 per image
        "dynamodb.writes": 30_000 * 22 * 0.625 / 1e6,
        # the worker's read + 2 API calls
        "dynamodb.reads": 90_000 * 0.125 / 1e6,
        # item 2296 + 100; byStatus and byUpload the same; bySha256 262; byPhash 4 x 162
        "dynamodb.storage": 45_000 * (2_396 * 3 + 262 + 648) / gib * 0.25,
        "dynamodb.pitr": 45_000 * 2_396 / gib * 0.20,
        # 30,000 sends + 3,000 receives + 3,000 deletes
        "sqs.requests": 36_000 * 0.40 / 1e6,
        # 5 pollers x 2,592,000 s / 20 s
        "sqs.idle_polls": 648_000 * 0.40 / 1e6,
        # worker (422 + 360) / 10 + 33 = 111.2 bytes an image; 350 + 360 bytes an API call;
        # 360 + 420 bytes an events invocation
        "cloudwatch.logs": (30_000 * 111.2 + 60_000 * 710 + 3_000 * 780) / gib * 0.50,
        "cloudwatch.metrics": 10 * 0.30,
        "cloudwatch.alarms": 9 * 0.10,
        "cloudwatch.dashboard": 3.00,
        # all under the reservoir of 1/s (2,592,000 a month): every invocation traced
        "xray.traces": (3_000 + 60_000 + 3_000) * 5.00 / 1e6,
        # the events function: 3,000 batches of 10 finished images, 60 ms x 256 MB each
        "lambda.events_compute": 3_000 * 0.06 * 0.25 * 0.0000133334,
        "lambda.events_requests": 3_000 * 0.20 / 1e6,
        "eventbridge.events": 30_000 * 1.00 / 1e6,
    }
    assert got.keys() == expected.keys()
    for key, usd in expected.items():
        assert got[key] == pytest.approx(usd, rel=1e-9), key
    total = estimate(HAND).total_usd
    assert total == pytest.approx(sum(expected.values()), rel=1e-9)
    assert estimate(HAND).per_million_images_usd == pytest.approx(total / 30_000 * 1e6)


def test_presigned_uploads_write_no_pending_record() -> None:
    # insert PROCESSING: table 1 + byStatus 1 + byUpload 1 = 3; then PROCESSED 15 (as above)
    presigned = Workload(1000, pending_write=False)
    assert cost.record_writes_per_image(presigned) == 18
    assert cost.record_writes_per_image(Workload(1000)) == 22


def test_x_ray_samples_past_one_trace_a_second() -> None:
    reservoir = 2_592_000  # one a second for 30 days
    assert cost.sampled_traces(1_000) == 1_000
    assert cost.sampled_traces(reservoir + 1_000_000) == reservoir + 50_000


def test_events_and_served_gets_are_optional() -> None:
    plain = by_key(Workload(1000, events=False))
    assert not {"eventbridge.events", "lambda.events_compute", "lambda.events_requests"} & set(
        plain
    )
    # without the events function, fewer invocations to trace and log
    full = by_key(Workload(1000))
    assert plain["xray.traces"] < full["xray.traces"]
    assert plain["cloudwatch.logs"] < full["cloudwatch.logs"]
    served = by_key(Workload(1000, events=False, gets_per_image=10))
    assert served["s3.get"] == pytest.approx(plain["s3.get"] * 6)


def test_storage_grows_with_the_month() -> None:
    # month 1 holds half a month of uploads on average, month 3 two and a half
    first, third = by_key(Workload(1000)), by_key(Workload(1000, months=3))
    assert third["s3.storage"] == pytest.approx(first["s3.storage"] * 5)
    assert third["s3.put"] == first["s3.put"]


def test_refuses_impossible_workloads() -> None:
    with pytest.raises(ValueError, match="negative"):
        Workload(-1)
    with pytest.raises(ValueError, match="at least 1"):
        Workload(1, months=0)


@settings(max_examples=60, deadline=None)
@given(
    images_per_day=st.floats(min_value=1, max_value=1e7),
    factor=st.floats(min_value=1.5, max_value=1000),
    pending_write=st.booleans(),
    events=st.booleans(),
    months=st.integers(min_value=1, max_value=36),
)
def test_every_per_image_line_scales_linearly(
    images_per_day: float, factor: float, pending_write: bool, events: bool, months: int
) -> None:
    # WHEN the same workload runs at `factor` times the images a day
    small = estimate(
        Workload(images_per_day, pending_write=pending_write, events=events, months=months)
    )
    large = estimate(
        Workload(images_per_day * factor, pending_write=pending_write, events=events, months=months)
    )
    assert [line.key for line in small.lines] == [line.key for line in large.lines]
    for a, b in zip(small.lines, large.lines, strict=True):
        if a.scaling == "per_image":  # THEN each per-image line costs `factor` times as much
            assert b.monthly_usd == pytest.approx(a.monthly_usd * factor, rel=1e-9), a.key
        elif a.scaling == "fixed":  # alarms, the dashboard, metrics, idle polls do not move
            assert b.monthly_usd == a.monthly_usd, a.key
        else:  # sampled traces grow, but never faster than the images
            assert a.monthly_usd <= b.monthly_usd <= a.monthly_usd * factor * (1 + 1e-9), a.key


def test_json_document_adds_up() -> None:
    doc = estimate(HAND).to_dict()
    assert doc["pricesChecked"] == prices.PRICES_CHECKED
    assert doc["imagesPerMonth"] == 30_000
    assert doc["totalUsd"] == pytest.approx(sum(line["monthlyUsd"] for line in doc["lines"]))


def test_formatting() -> None:
    lines = {line.key: line for line in estimate(Workload(10_000)).lines}
    assert cost.format_price(lines["lambda.worker_compute"]) == "$0.0000133334 / GB-s"
    assert cost.format_price(lines["s3.put"]) == "$0.005 / 1K requests"
    assert cost.format_price(lines["lambda.worker_requests"]) == "$0.20 / 1M requests"
    assert cost.format_price(lines["cloudwatch.dashboard"]) == "$3.00 / dashboard"
    (requests,) = [x for x in cost.cdn_lines(VIEWED, cost.Volumes.of(VIEWED)) if x.per == 10_000]
    assert cost.format_price(requests) == "$0.01 / 10K requests"
    assert cost.format_quantity(lines["s3.put"]) == "2,100,000 requests"
    assert cost.format_quantity(lines["cloudwatch.dashboard"]) == "1 dashboard"
    assert cost.format_usd(1234.5) == "$1,234.50"
    assert cost.format_usd(0.001) == "<$0.01"


def test_emf_metric_series_counts_labels() -> None:
    # 2 metrics without labels, images_failed + 4 codes, events_skipped + 2 reasons
    labels = {"a": (), "b": (), "images_failed": ("code",), "events_skipped": ("reason",)}
    assert cost.emf_metric_series(labels) == 2 + 1 + 4 + 1 + 2


def test_emf_metric_series_of_the_aws_adapter() -> None:
    from imgpipe.adapters.aws.emf_metrics import COUNTERS, TIMINGS

    labels = {name: spec[1] for name, spec in COUNTERS.items()} | dict(TIMINGS)
    assert cost.emf_metric_series(labels) >= len(COUNTERS) + len(TIMINGS)


# -- views: CloudFront, or presigned S3 GETs and /img through the API -----------------------------

VIEWED = replace(
    HAND, views_per_image=20, transforms_per_image=5, cdn_hit_rate=0.8, view_kb=100,
    img_duration_ms=40,
)  # fmt: skip
GIB = 2**30


def test_cloudfront_lines_computed_by_hand() -> None:
    # GIVEN 30,000 images a month, each viewed 20 times as renditions and 5 times through /img,
    # 100 KB a view, 80% answered by CloudFront: 600,000 + 150,000 views; 20% miss
    got = by_key(VIEWED)
    expected = {
        "cloudfront.requests": 750_000 * 0.0100 / 10_000,
        "cloudfront.transfer": 750_000 * 100_000 / GIB * 0.085,
        "cloudfront.functions": 150_000 * 0.10 / 1e6,  # on /img only
        # a rendition miss: one S3 GET; S3's transfer to the edge is free
        "s3.origin_get": 120_000 * 0.0004 / 1000,
        # an /img miss (30,000): API request, invocation (40 ms x 0.5 GB), HEAD + GET of
        # derived/, an access-log and Lambda lines (350 + 360 bytes)
        "apigateway.img_requests": 30_000 * 1.00 / 1e6,
        "lambda.img_requests": 30_000 * 0.20 / 1e6,
        "lambda.img_compute": 600 * 0.0000133334,
        "s3.img_get": 60_000 * 0.0004 / 1000,
        "cloudwatch.img_logs": 30_000 * 710 / GIB * 0.50,
    }
    for key, usd in expected.items():
        assert got[key] == pytest.approx(usd, rel=1e-9), key
    # THEN the rest of the bill is the same as without views, and the views add these lines
    assert set(got) == set(by_key(HAND)) | set(expected)
    for key, usd in by_key(HAND).items():
        assert got[key] == pytest.approx(usd, rel=1e-12), key
    delivery = estimate(VIEWED).delivery
    assert delivery is not None
    assert delivery.cdn_usd == pytest.approx(sum(expected.values()), rel=1e-9)


def test_direct_lines_computed_by_hand() -> None:
    # GIVEN the same views without the CDN: every view reaches S3 or the API
    got = by_key(replace(VIEWED, cdn=False))
    expected = {
        "s3.view_get": 600_000 * 0.0004 / 1000,
        "s3.view_transfer": 600_000 * 100_000 / GIB * 0.09,
        "apigateway.img_requests": 150_000 * 1.00 / 1e6,
        "lambda.img_requests": 150_000 * 0.20 / 1e6,
        "lambda.img_compute": 3_000 * 0.0000133334,  # 150,000 x 0.04 s x 0.5 GB
        "s3.img_get": 300_000 * 0.0004 / 1000,
        "cloudwatch.img_logs": 150_000 * 710 / GIB * 0.50,
        "apigateway.img_transfer": 150_000 * 100_000 / GIB * 0.09,
    }
    for key, usd in expected.items():
        assert got[key] == pytest.approx(usd, rel=1e-9), key
    assert not {k for k in got if k.startswith("cloudfront.") or k == "s3.origin_get"}
    # THEN the saving is the same either way: the direct cost minus CloudFront's
    both = [estimate(VIEWED).delivery, estimate(replace(VIEWED, cdn=False)).delivery]
    assert both[0] == both[1] and both[0] is not None
    assert both[0].direct_usd == pytest.approx(sum(expected.values()), rel=1e-9)
    assert both[0].cdn_saves_usd == pytest.approx(both[0].direct_usd - both[0].cdn_usd)


def test_no_views_no_view_lines() -> None:
    plain = estimate(Workload(1000))
    assert plain.delivery is None
    assert not {line.service for line in plain.lines} & {"CloudFront"}
    assert any("--views-per-image" in note for note in plain.notes)
    # renditions only: nothing of /img, and no function runs on their path
    keys = set(by_key(Workload(1000, views_per_image=10)))
    assert "cloudfront.functions" not in keys and "apigateway.img_requests" not in keys


def test_the_saving_turns_with_the_hit_rate_on_img() -> None:
    # GIVEN /img views at the defaults (96.53 KB, 50 ms x 2 GB). An answer that reaches the API
    # costs c = 1e-6 (HTTP API) + 2e-7 (request) + 0.05 x 2 x 0.0000133334 (compute)
    # + 2 x 4e-7 (HEAD + GET) + 710 / 2**30 x 0.5 (logs) = 3.6640e-6; a view's 96,533 bytes
    # cost 8.0914e-6 out of API Gateway and 7.6419e-6 out of CloudFront, which adds 1e-6 (HTTPS)
    # + 1e-7 (function). Saving a view: h x c - 6.505e-7, zero at h = 0.1775.
    def saves(hit_rate: float, transforms: float = 10) -> float:
        w = Workload(1000, transforms_per_image=transforms, cdn_hit_rate=hit_rate)
        d = estimate(w).delivery
        assert d is not None
        return d.cdn_saves_usd

    views = 30_000 * 10
    assert saves(0.9) == pytest.approx(views * (0.9 * 3.6640e-6 - 6.505e-7), rel=1e-3)
    assert saves(0.19) > 0 > saves(0.17)
    # THEN a low hit rate (what few views per image give: each edge's first view misses)
    # makes CloudFront cost more, whatever the volume; more views only scale it
    assert saves(0.05, transforms=1) < 0 and saves(0.05, transforms=100) < 0
    assert saves(0.05, transforms=100) == pytest.approx(100 * saves(0.05, transforms=1))


def test_the_saving_on_renditions_needs_large_views() -> None:
    # Saving a rendition view of s GB: h x 4e-7 (the GET a hit spares) + s x 0.005 (transfer
    # out of the edge for 0.085 a GB, not S3's 0.09) - 1e-6 (HTTPS): a mean rendition
    # (96.53 KB, 8.99e-5 GB) never pays for the request, even at h = 1; 500 KB views do at 0.9.
    def saves(**kw: Any) -> float:
        d = estimate(Workload(1000, views_per_image=10, **kw)).delivery
        assert d is not None
        return d.cdn_saves_usd

    assert saves(cdn_hit_rate=1.0) == pytest.approx(
        300_000 * (4e-7 + 96_533.33 / GIB * 0.005 - 1e-6), rel=1e-4
    )
    assert saves(cdn_hit_rate=1.0) < 0 < saves(cdn_hit_rate=0.9, view_kb=500)


def _table_rows(page: Path, header_start: str) -> dict[int, list[float]]:
    """The rows of the table whose header starts `header_start`: images a day -> its figures
    (a cell like "0.75 + 5.73 + 0.02" is their sum)."""
    text = page.read_text()
    table = text[text.index(header_start) :].split("\n\n")[0].splitlines()[2:]
    rows = {}
    for row in table:
        cells = [c.strip().replace(",", "") for c in row.strip("|").split("|")]
        rows[int(cells[0])] = [sum(float(x) for x in c.split(" + ")) for c in cells[1:]]
    return rows


def test_the_docs_tables_are_the_models() -> None:
    # The views columns don't depend on the installed extras (custom metrics); the bills do:
    # the bill with CloudFront is the one without views plus the views through it.
    root = TEMPLATE.parents[1]
    docs = _table_rows(root / "docs" / "aws.md", "| images a day | bill without views |")
    readme = _table_rows(root / "README.md", "| images a day | bill without views |")
    assert set(docs) == set(readme) == {1_000, 100_000, 1_000_000}
    for n, (plain, cloudfront, origin, cdn, direct, saves, total) in docs.items():
        d = estimate(
            Workload(n, views_per_image=20, transforms_per_image=5, cdn_hit_rate=0.9)
        ).delivery
        assert d is not None
        assert (cdn, direct, saves) == pytest.approx(
            (d.cdn_usd, d.direct_usd, d.cdn_saves_usd), abs=0.006
        ), n
        assert cloudfront + origin == pytest.approx(cdn, abs=0.03), n
        assert total == pytest.approx(plain + cdn, abs=0.011), n
        assert readme[n] == [plain, cdn, direct, total], n


def test_refuses_a_hit_rate_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="share"):
        Workload(1, cdn_hit_rate=1.5)
    with pytest.raises(ValueError, match="negative"):
        Workload(1, views_per_image=-1)


# -- the figures taken from the template and the code -------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert decoded is not None, matches
    return dict(decoded)


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_template_figures_match(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["WorkerMemorySize"]["Default"] == cost.WORKER_MEMORY_MB
    assert params["ApiMemorySize"]["Default"] == cost.API_MEMORY_MB
    assert template["Globals"]["Function"]["Architectures"] == [cost.ARCHITECTURE]
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    sqs = [e["Properties"] for e in worker["Events"].values() if e["Type"] == "SQS"]
    assert [e["BatchSize"] for e in sqs] == [cost.BATCH_SIZE]
    assert len(resources(template, "AWS::CloudWatch::Dashboard")) == cost.DASHBOARDS
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == cost.ALARMS
    # priced as standard-resolution alarms on one metric each
    for alarm in alarms.values():
        assert alarm["Properties"]["Period"] >= 60
        assert "Metrics" not in alarm["Properties"]
    # the events function is always deployed, with the stack's bus: on by default
    events = template["Resources"]["EventsFunction"]["Properties"]
    assert events["Environment"]["Variables"]["IMGPIPE_EVENTS__EVENT_BUS"] == {
        "Ref": "EventBusName"
    }
    assert events["MemorySize"] == cost.EVENTS_MEMORY_MB
    streams = [e["Properties"] for e in events["Events"].values() if e["Type"] == "DynamoDB"]
    assert [e["BatchSize"] for e in streams] == [cost.EVENTS_BATCH_SIZE]
    assert Workload(1).events
    table = resources(template, "AWS::DynamoDB::Table")
    assert [t["Properties"]["BillingMode"] for t in table.values()] == ["PAY_PER_REQUEST"]


def test_the_modelled_indexes_are_the_tables(template: dict[str, Any]) -> None:
    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    declared = {
        gsi["IndexName"]: gsi["Projection"]["ProjectionType"]
        for gsi in table["Properties"]["GlobalSecondaryIndexes"]
    }
    assert declared == {index.name: index.projection for index in cost.INDEXES}


def test_the_modelled_indexes_are_the_stores() -> None:
    from imgpipe.adapters.aws import dynamodb_store as store

    created = {store.BY_STATUS: "ALL", store.BY_UPLOAD: "ALL"}
    created |= {
        i["IndexName"]: i["Projection"]["ProjectionType"] for i in store.similarity_indexes()
    }
    assert created == {index.name: index.projection for index in cost.INDEXES}
    # only byStatus's key holds the status; the near-duplicate indexes are sparse
    assert {i.name for i in cost.INDEXES if i.keyed_by_status} == {store.BY_STATUS}
    assert {i.name for i in cost.INDEXES if i.sparse} == set(store.INDEX_NAMES) - {
        store.BY_STATUS,
        store.BY_UPLOAD,
    }
