"""`imgpipe cost`: the monthly AWS bill of a workload, as a table or one JSON document."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imgpipe.entrypoints.cli.app import ConfigOpt, settings_from

if TYPE_CHECKING:
    from imgpipe.config import Settings
    from imgpipe.ops.cost import Delivery, Estimate, Workload

# The command's options, one per figure of the workload (ops.cost.Workload); a default of None
# leaves the workload's own (measured, or the template's).
ImagesPerDayOpt = Annotated[
    float, typer.Option("--images-per-day", min=0, help="originals uploaded a day")
]
DurationOpt = Annotated[
    float | None, typer.Option(min=0, help="worker ms per image [default: measured]")
]
MemoryOpt = Annotated[
    int | None, typer.Option(min=128, help="worker memory [default: the template's]")
]
OriginalOpt = Annotated[
    float | None, typer.Option(min=0, help="mean original size [default: measured]")
]
RenditionsOpt = Annotated[
    float | None, typer.Option(min=0, help="renditions of one image [default: measured]")
]
ApiCallsOpt = Annotated[float | None, typer.Option(min=0, help="API calls per image [default: 3]")]
ApiDurationOpt = Annotated[
    float | None, typer.Option(min=0, help="API function ms per call [default: 50]")
]
GetsOpt = Annotated[float, typer.Option(min=0, help="S3 GETs of renditions served per image")]
MonthsOpt = Annotated[
    int, typer.Option(min=1, help="bill of month N: storage holds N months of uploads")
]
BatchSizeOpt = Annotated[
    int | None, typer.Option(min=1, max=10, help="images per worker invocation [default: 10]")
]
PendingWriteOpt = Annotated[
    bool, typer.Option(help="uploads write a PENDING record (presigned ones do not)")
]
EventsOpt = Annotated[
    bool, typer.Option(help="the events function and its EventBridge events (always deployed)")
]
ViewsOpt = Annotated[
    float, typer.Option(min=0, help="views of renditions a month per image uploaded")
]
TransformsOpt = Annotated[
    float, typer.Option(min=0, help="views of /img results a month per image uploaded")
]
CdnOpt = Annotated[
    bool, typer.Option(help="views through CloudFront (the template's CdnEnabled default)")
]
HitRateOpt = Annotated[
    float | None,
    typer.Option(min=0, max=1, help="share of views CloudFront answers [default: 0.9]"),
]
ViewKbOpt = Annotated[
    float | None, typer.Option(min=0, help="size of one view [default: the mean rendition]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def cost(
    images_per_day: ImagesPerDayOpt,
    duration_ms: DurationOpt = None,
    memory_mb: MemoryOpt = None,
    original_kb: OriginalOpt = None,
    renditions_kb: RenditionsOpt = None,
    api_calls_per_image: ApiCallsOpt = None,
    api_duration_ms: ApiDurationOpt = None,
    gets_per_image: GetsOpt = 0.0,
    months: MonthsOpt = 1,
    batch_size: BatchSizeOpt = None,
    pending_write: PendingWriteOpt = True,
    events: EventsOpt = True,
    views_per_image: ViewsOpt = 0.0,
    transforms_per_image: TransformsOpt = 0.0,
    cdn: CdnOpt = True,
    hit_rate: HitRateOpt = None,
    view_kb: ViewKbOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Estimate the monthly AWS bill of a workload: list prices, no free tier, 30-day month."""
    from imgpipe.ops import cost as costs

    settings = settings_from(config)
    given = {
        "duration_ms": duration_ms,
        "memory_mb": memory_mb,
        "original_kb": original_kb,
        "renditions_kb": renditions_kb,
        "api_calls_per_image": api_calls_per_image,
        "api_duration_ms": api_duration_ms,
        "batch_size": batch_size,
        "cdn_hit_rate": hit_rate,
        "view_kb": view_kb,
    }
    workload = _workload(
        settings,
        images_per_day,
        given,
        gets_per_image=gets_per_image,
        months=months,
        pending_write=pending_write,
        events=events,
        views_per_image=views_per_image,
        transforms_per_image=transforms_per_image,
        cdn=cdn,
    )
    estimate = costs.estimate(workload)
    if as_json:
        sys.stdout.write(json.dumps(estimate.to_dict(), indent=2) + "\n")
        return
    _print_estimate(estimate, workload, images_per_day)


def _workload(
    settings: Settings, images_per_day: float, given: dict[str, Any], **figures: Any
) -> Workload:
    """The workload's own figures, but those `given` (not None) and `figures`; the renditions
    an image gets under `settings`, and the custom metrics the AWS side emits."""
    from dataclasses import replace

    from imgpipe.bootstrap import emf_metric_labels
    from imgpipe.ops import cost as costs

    labels = emf_metric_labels()
    metrics = costs.DEFAULT_CUSTOM_METRICS if labels is None else costs.emf_metric_series(labels)
    return replace(
        costs.Workload(images_per_day),
        **{name: value for name, value in given.items() if value is not None},
        renditions_per_image=sum(len(r.formats) for r in settings.renditions),
        custom_metrics=metrics,
        **figures,
    )


def _print_estimate(estimate: Estimate, workload: Workload, images_per_day: float) -> None:
    """A line per item, the total, the cost of a million images, then the notes."""
    from imgpipe.ops import cost as costs

    table = Table(
        "service",
        "line item",
        "quantity / month",
        "unit price",
        "USD / month",
        title=f"AWS cost of {images_per_day:,.0f} images a day "
        f"({workload.images_per_month:,.0f} a month)",
    )
    for line in estimate.lines:
        table.add_row(
            line.service,
            line.item,
            costs.format_quantity(line),
            costs.format_price(line),
            costs.format_usd(line.monthly_usd),
        )
    table.add_section()
    table.add_row("total", "", "", "", f"[bold]{costs.format_usd(estimate.total_usd)}[/bold]")
    console = Console()
    console.print(table)
    per_million = costs.format_usd(estimate.per_million_images_usd)
    console.print(f"per 1M images: [bold]{per_million}[/bold] (the month's total / its images)")
    if estimate.delivery is not None:
        console.print(_saving(estimate.delivery))
    for note in estimate.notes:
        console.print(f"[dim]{escape(note)}[/dim]")


def _saving(delivery: Delivery) -> str:
    """The views' cost both ways, and which way the difference goes."""
    from imgpipe.ops import cost as costs

    cdn, direct = costs.format_usd(delivery.cdn_usd), costs.format_usd(delivery.direct_usd)
    saves = delivery.cdn_saves_usd
    verdict = "saves" if saves >= 0 else "costs"
    return (
        f"views: {cdn} through CloudFront, {direct} through presigned S3 GETs and the API; "
        f"CloudFront {verdict} [bold]{costs.format_usd(abs(saves))}[/bold] a month"
    )
