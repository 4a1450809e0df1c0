"""The bill: estimate(workload), every service's line items in the table's order from the
month's volumes, and the notes that say what the figures assume."""

from __future__ import annotations

from imgpipe.ops import prices
from imgpipe.ops.cost.delivery import delivery, view_lines
from imgpipe.ops.cost.dynamodb import dynamodb_lines
from imgpipe.ops.cost.result import Estimate, LineItem
from imgpipe.ops.cost.services import (
    api_gateway_lines,
    cloudwatch_lines,
    event_lines,
    lambda_lines,
    s3_lines,
    sqs_lines,
    xray_lines,
)
from imgpipe.ops.cost.workload import DAYS_PER_MONTH, MEASURED_RENDITIONS_KB, Volumes, Workload


def estimate(w: Workload) -> Estimate:
    v = Volumes.of(w)
    lines: list[LineItem] = [
        *lambda_lines(w, v),
        *api_gateway_lines(v),
        *s3_lines(w, v),
        *dynamodb_lines(w, v),
        *sqs_lines(v),
        *cloudwatch_lines(w, v),
        *xray_lines(v),
    ]
    if w.events:
        lines.extend(event_lines(v.images, v.event_batches))
    views = view_lines(w, v)
    lines.extend(views)
    return Estimate(w, tuple(lines), notes(w), delivery(w, v) if views else None)


def notes(w: Workload) -> tuple[str, ...]:
    found = [
        f"List prices of {prices.REGION}, checked {prices.PRICES_CHECKED} from published "
        "pricing guides (src/imgpipe/ops/prices.py): check them against AWS's pricing pages.",
        f"A month is {DAYS_PER_MONTH} days; the free tier is ignored.",
        f"Storage is month {w.months}'s: the uploads of the months before it plus half of "
        "this month's, nothing deleted.",
        "Not included: data transfer out but that of views, KMS requests (the bucket key "
        "makes them rare), cold starts, retries, CloudWatch Logs storage, S3 and CloudFront "
        "access-log objects, taxes.",
        *_view_notes(w),
    ]
    if w.events:
        found.append(
            "DynamoDB Streams: nothing for the events function's reads (Lambda's are free)."
        )
    if w.batch_size > 1 and w.images_per_day / 86_400 < w.batch_size:
        found.append(
            f"Batches of {w.batch_size}: below ~{w.batch_size} images/s the 1 s batching "
            "window closes batches early; --batch-size 1 is the upper bound (the events "
            "function's batches of 10 likewise)."
        )
    if w.renditions_per_image != 6 and w.renditions_kb == MEASURED_RENDITIONS_KB:
        found.append(
            f"--renditions-kb is the measured size of the 6 default renditions; this "
            f"configuration writes {w.renditions_per_image}: pass their size."
        )
    return tuple(found)


def _view_notes(w: Workload) -> list[str]:
    if not w.views_per_image and not w.transforms_per_image:
        return ["No views priced: --views-per-image and --transforms-per-image add them."]
    how = (
        f"through CloudFront ({prices.CLOUDFRONT_PRICE_CLASS}), {w.cdn_hit_rate:.0%} "
        "answered from its cache"
        if w.cdn
        else "straight to S3 (presigned GETs) and to the API (/img)"
    )
    return [
        f"Views: {w.views_per_image:g} of renditions and {w.transforms_per_image:g} of /img "
        f"results a month per image uploaded, {w.mean_view_kb:,.1f} KB each, {how}; "
        f"CloudFront's prices read {prices.CLOUDFRONT_PRICES_CHECKED}, United States rates, its "
        "always-free tier ignored. Renders of new /img results and their traces are not priced.",
    ]
