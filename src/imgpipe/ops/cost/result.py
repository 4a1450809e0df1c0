"""What an estimate gives: its line items, the month's total, and the JSON document of
`imgpipe cost --json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from imgpipe.ops import prices
from imgpipe.ops.cost.workload import DAYS_PER_MONTH, Workload

Scaling = Literal["per_image", "fixed", "sampled"]


@dataclass(frozen=True)
class LineItem:
    key: str  # stable name of the line, e.g. "s3.put"
    service: str
    item: str
    quantity: float  # per month
    unit: str  # what quantity counts
    price: float  # USD per `per` units
    per: float = 1.0
    scaling: Scaling = "per_image"

    @property
    def monthly_usd(self) -> float:
        return self.quantity / self.per * self.price


@dataclass(frozen=True)
class Delivery:
    """The month's views priced both ways (ops.cost.delivery); `cdn_saves_usd` is negative
    where CloudFront costs more than it saves."""

    cdn_usd: float
    direct_usd: float

    @property
    def cdn_saves_usd(self) -> float:
        return self.direct_usd - self.cdn_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "priceClass": prices.CLOUDFRONT_PRICE_CLASS,
            "cloudfrontPricesChecked": prices.CLOUDFRONT_PRICES_CHECKED,
            "cdnUsd": round(self.cdn_usd, 6),
            "directUsd": round(self.direct_usd, 6),
            "cdnSavesUsd": round(self.cdn_saves_usd, 6),
        }


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    lines: tuple[LineItem, ...]
    notes: tuple[str, ...]
    delivery: Delivery | None = None  # when the workload has views

    @property
    def total_usd(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def per_million_images_usd(self) -> float:
        """The whole month's bill over the images it processed, per million."""
        images = self.workload.images_per_month
        return self.total_usd / images * 1_000_000 if images else 0.0

    def to_dict(self) -> dict[str, Any]:
        w = self.workload
        return {
            "region": prices.REGION,
            "pricesChecked": prices.PRICES_CHECKED,
            "imagesPerDay": w.images_per_day,
            "imagesPerMonth": w.images_per_month,
            "daysPerMonth": DAYS_PER_MONTH,
            "workload": _workload_dict(w),
            "lines": [_line_dict(line) for line in self.lines],
            "totalUsd": round(self.total_usd, 6),
            "perMillionImagesUsd": round(self.per_million_images_usd, 6),
            "delivery": self.delivery.to_dict() if self.delivery else None,
            "notes": list(self.notes),
        }


def _workload_dict(w: Workload) -> dict[str, Any]:
    return {
        "durationMs": w.duration_ms,
        "memoryMb": w.memory_mb,
        "originalKb": w.original_kb,
        "renditionsKb": w.renditions_kb,
        "renditionsPerImage": w.renditions_per_image,
        "apiCallsPerImage": w.api_calls_per_image,
        "apiDurationMs": w.api_duration_ms,
        "apiMemoryMb": w.api_memory_mb,
        "getsPerImage": w.gets_per_image,
        "months": w.months,
        "batchSize": w.batch_size,
        "pendingWrite": w.pending_write,
        "events": w.events,
        "customMetrics": w.custom_metrics,
        "viewsPerImage": w.views_per_image,
        "transformsPerImage": w.transforms_per_image,
        "cdn": w.cdn,
        "cdnHitRate": w.cdn_hit_rate,
        "viewKb": w.mean_view_kb,
        "imgDurationMs": w.img_duration_ms,
    }


def _line_dict(line: LineItem) -> dict[str, Any]:
    return {
        "key": line.key,
        "service": line.service,
        "item": line.item,
        "quantity": line.quantity,
        "unit": line.unit,
        "unitPrice": line.price,
        "unitPricePer": line.per,
        "scaling": line.scaling,
        "monthlyUsd": round(line.monthly_usd, 6),
    }
