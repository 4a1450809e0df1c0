"""The `imgpipe` command (Typer + Rich): serve, process, info, backfill, redrive, reprocess,
replay-events, package, deploy, cost."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from imgpipe import __version__, jsonlog
from imgpipe.config import Settings, load_settings

if TYPE_CHECKING:
    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.service import UseCases

app = typer.Typer(
    help="imgpipe: validate, describe and render images, locally or on AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (env IMGPIPE_* overrides it)")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="local data folder [default: ./imgpipe-data]")
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgpipe {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """imgpipe command line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8080]")] = None,
    data_dir: DataDirOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="concurrent processing jobs [default: 2]")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the local API, the workers, the uploads watcher and the dashboard."""
    from imgpipe.adapters.local.runtime import DataDirBusyError
    from imgpipe.entrypoints.local_server import UnsafeBindError
    from imgpipe.entrypoints.local_server import serve as run

    server = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    overrides: dict[str, Any] = {"server": server} if server else {}
    if data_dir is not None:
        overrides["local"] = {"data_dir": data_dir}
    settings = _settings(config, **overrides)
    jsonlog.configure(settings.log_level)
    try:
        run(settings)
    except (UnsafeBindError, DataDirBusyError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


# -- process ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    path: str
    record: dict[str, Any]

    @property
    def failed(self) -> bool:
        return bool(self.record.get("status") == "FAILED")


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.parts)
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            err.print(f"[red]no such file or folder:[/red] {path}")
            raise typer.Exit(2)
    return files


def _out_names(files: list[Path]) -> list[str]:
    """`<file stem>`, with -2, -3... when two inputs share a stem."""
    seen: dict[str, int] = {}
    names = []
    for f in files:
        stem = f.stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="image files and folders (recursed)")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    config: ConfigOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="processes to use")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Process files with no server: OUT/<stem>/<rendition>.<ext> and OUT/<stem>/record.json."""
    from imgpipe.batch import process_file
    from imgpipe.bootstrap import service_options

    settings = _settings(config)
    options = service_options(settings)
    files = _collect(paths)
    names = _out_names(files)
    out.mkdir(parents=True, exist_ok=True)
    outcomes: list[FileOutcome] = []
    progress = Progress(
        TextColumn("[bold]processing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=not err.is_terminal or as_json,
    )
    with progress:
        task = progress.add_task("", total=len(files))
        if jobs == 1:
            for f, name in zip(files, names, strict=True):
                progress.update(task, description=f.name)
                record = process_file(str(f), str(out / name), options)
                outcomes.append(FileOutcome(str(f), record))
                progress.advance(task)
        else:
            with ProcessPoolExecutor(jobs) as pool:
                futures: list[Future[dict[str, Any]]] = [
                    pool.submit(process_file, str(f), str(out / name), options)
                    for f, name in zip(files, names, strict=True)
                ]
                for f, future in zip(files, futures, strict=True):
                    outcomes.append(FileOutcome(str(f), future.result()))
                    progress.advance(task)

    failed = [o for o in outcomes if o.failed]
    if as_json:
        doc = {
            "records": [o.record for o in outcomes],
            "processed": len(outcomes) - len(failed),
            "failed": len(failed),
        }
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_summary(outcomes, failed, out)
    if failed:
        raise typer.Exit(1)


def _print_summary(outcomes: list[FileOutcome], failed: list[FileOutcome], out: Path) -> None:
    """One line per failure (never wrapped, so it greps), then the totals."""
    console = Console(soft_wrap=True, highlight=False)
    for o in failed:
        error = o.record.get("error") or {}
        console.print(
            f"[red]failed[/red] {escape(o.path)}: [bold]{error.get('code')}[/bold]: "
            f"{escape(str(error.get('message')))}"
        )
    console.print(
        f"[green]{len(outcomes) - len(failed)} processed[/green], "
        f"[{'red' if failed else 'green'}]{len(failed)} failed[/], output in {escape(str(out))}"
    )


# -- info -------------------------------------------------------------------------------------


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="an image file")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the metadata imgpipe would record for FILE; no renditions are written."""
    from imgpipe.core.errors import ImageError
    from imgpipe.engine import probe

    settings = _settings(config)
    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {file}:[/red] {exc.strerror}")
        raise typer.Exit(2) from exc
    try:
        meta = probe(data, settings.render_options())
    except ImageError as exc:
        if as_json:
            sys.stdout.write(json.dumps({"error": {"code": exc.code, "message": str(exc)}}) + "\n")
        else:
            err.print(f"[red]{exc.code}:[/red] {exc}")
        raise typer.Exit(1) from exc
    doc = meta.model_dump(by_alias=True, mode="json", exclude_none=True)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table("field", "value", title=str(file), show_header=False)
    for k, v in doc.items():
        table.add_row(k, json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else str(v))
    Console().print(table)


# -- AWS: package and deploy -----------------------------------------------------------------

PROJECT_DIR = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = PROJECT_DIR / "infra" / "template.yaml"
DEFAULT_ZIP = Path("dist") / "imgpipe-lambda.zip"


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            err.print(f"[red]--param wants KEY=VALUE, not {pair!r}[/red]")
            raise typer.Exit(2)
        params[name] = value
    return params


@app.command()
def package(
    out: Annotated[Path, typer.Option(help="where to write the zip")] = DEFAULT_ZIP,
    arch: Annotated[str, typer.Option(help="arm64 (the template's) or x86_64")] = "arm64",
    include_sdk: Annotated[
        bool, typer.Option(help="ship boto3 (the Lambda runtime has one)")
    ] = False,
) -> None:
    """Build the Lambda zip for python3.13 (pip --platform, no Docker)."""
    from imgpipe.ops.packaging import PackagingError, build_lambda_zip

    if arch not in ("arm64", "x86_64"):
        err.print(f"[red]--arch must be arm64 or x86_64, not {arch!r}[/red]")
        raise typer.Exit(2)
    try:
        build_lambda_zip(out, arch=arch, include_sdk=include_sdk)  # type: ignore[arg-type]
    except PackagingError as exc:
        err.print(f"[red]packaging failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def deploy(
    stack: Annotated[str, typer.Option("--stack", help="CloudFormation stack name")],
    region: Annotated[str | None, typer.Option(help="AWS region [default: the SDK's]")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="template parameter KEY=VALUE (repeat)")
    ] = None,
    template: Annotated[Path, typer.Option(help="the SAM template")] = DEFAULT_TEMPLATE,
    zip_path: Annotated[
        Path | None, typer.Option("--zip", help="a zip from `imgpipe package` [default: build]")
    ] = None,
    wait: Annotated[bool, typer.Option(help="wait for the stack to finish")] = True,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file whose renditions the functions get"),
    ] = None,
) -> None:
    """Package the Lambda code and deploy the template; print the stack's outputs."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from imgpipe.core.errors import ImgpipeError
    from imgpipe.ops.deploy import DeployError, deploy_stack
    from imgpipe.ops.index_steps import IndexStepError
    from imgpipe.ops.packaging import PackagingError, build_lambda_zip

    params = _parse_params(param or [])
    if config is not None:
        # The presets travel as the RenditionsJson parameter (IMGPIPE_RENDITIONS); a later
        # deploy without --config keeps them (deploy reuses the previous parameter values).
        presets = _settings(config, backend="local")
        params.setdefault("RenditionsJson", presets.renditions_json())
        default_background = Settings.model_fields["background"].default
        if presets.background != default_background or not presets.metadata.strip_exif:
            err.print(
                "[yellow]only the renditions are deployed:[/yellow] background and"
                " metadata.strip_exif from the file are not (the functions use the defaults)"
            )
    if not template.is_file():
        err.print(f"[red]no template at {template}[/red] (pass --template)")
        raise typer.Exit(2)
    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        err.print("[red]no region: pass --region or set AWS_REGION[/red]")
        raise typer.Exit(2)
    try:
        if zip_path is None:
            zip_path = build_lambda_zip(DEFAULT_ZIP)
        cfn = session.client("cloudformation")
        s3 = session.client("s3")
        sts = session.client("sts")
        dynamodb = session.client("dynamodb")

        def indexes_added(table: str, indexes: tuple[str, ...]) -> None:
            from imgpipe.adapters.aws.dynamodb_store import INDEX_NAMES, DynamoMetadataStore

            if not set(indexes) & set(INDEX_NAMES):
                return
            typer.echo(f"{table}: indexes {', '.join(indexes)} added; backfilling their keys")
            try:
                backfill_index_keys(DynamoMetadataStore(dynamodb, table))
            except ImgpipeError as exc:
                err.print(
                    f"[red]the stack is deployed, but the backfill stopped:[/red] {exc}; "
                    "run `imgpipe backfill --index-keys` (with --from, as printed above)"
                )
                raise typer.Exit(1) from exc

        outputs = deploy_stack(
            stack,
            region=session.region_name,
            params=params,
            template=template,
            zip_path=zip_path,
            cfn_client=cfn,
            s3_client=s3,
            sts_client=sts,
            dynamodb_client=dynamodb,
            on_indexes_added=indexes_added,
            wait=wait,
        )
    except (PackagingError, DeployError, IndexStepError, ClientError, BotoCoreError) as exc:
        err.print(f"[red]deploy failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console = Console(soft_wrap=True)
    console.print(f"[green]stack {escape(stack)} deployed[/green] in {session.region_name}")
    if not outputs:
        console.print("(no outputs yet)")
    for name, value in sorted(outputs.items()):
        console.print(f"{name}: {escape(value)}")


# -- queue maintenance ------------------------------------------------------------------------


@contextmanager
def _service_and_settings(
    data_dir: Path | None, config: Path | None
) -> Iterator[tuple[UseCases, Settings]]:
    """The configured backend's wiring without workers: local (the default) or AWS."""
    from imgpipe.bootstrap import build_aws, build_local

    overrides: dict[str, Any] = {"local": {"data_dir": data_dir}} if data_dir else {}
    settings = _settings(config, **overrides)
    if settings.backend == "aws":
        aws = build_aws(settings)
        try:
            yield aws.service, settings
        finally:
            aws.close()
        return
    local = build_local(settings, with_workers=False)
    try:
        yield local.service, settings
    finally:
        local.stop()


@app.command()
def backfill(
    prefix: Annotated[str, typer.Option(help="key prefix to scan")] = "uploads/",
    index_keys: Annotated[
        bool,
        typer.Option(
            "--index-keys",
            help="AWS: add the GSI keys that records written by older versions lack, instead",
        ),
    ] = False,
    start: Annotated[
        str | None, typer.Option("--from", help="--index-keys: resume after this imageId")
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Queue originals that have no record (or an outdated or unfinished one); or, with
    --index-keys, make records findable through indexes added after they were written."""
    if index_keys:
        _backfill_index_keys_command(config, start)
        return
    with _service_and_settings(data_dir, config) as (service, _):
        count = service.maintenance.backfill(prefix)
    typer.echo(f"queued {count} object(s) under {prefix}")


def _backfill_index_keys_command(config: Path | None, start: str | None) -> None:
    settings = _settings(config)
    if settings.backend != "aws":
        typer.echo("nothing to do locally: SQLite's indexes are expressions over the record")
        return
    from imgpipe.bootstrap import build_aws

    aws = build_aws(settings)
    try:
        backfill_index_keys(aws.records, start)
    finally:
        aws.close()


def backfill_index_keys(records: DynamoMetadataStore, start: str | None = None) -> None:
    """Scan the table to its end, a line per page, each saying where to resume."""
    totals = {"scanned": 0, "rewritten": 0, "raced": 0, "unreadable": 0}
    for page in records.backfill_index_keys(start):
        for name in totals:
            totals[name] += getattr(page, name)
        if page.resume is not None:
            typer.echo(
                f"{records.table}: scanned {totals['scanned']}, rewrote {totals['rewritten']};"
                f" to resume: imgpipe backfill --index-keys --from {page.resume}"
            )
    typer.echo(
        f"{records.table}: index keys backfilled: scanned {totals['scanned']} record(s), "
        f"rewrote {totals['rewritten']}, {totals['raced']} changed meanwhile (a newer write "
        f"has its keys), {totals['unreadable']} unreadable"
    )


@app.command()
def redrive(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """Move dead-lettered jobs back to the queue to be tried again (AWS: the DLQ); locally
    also make dead webhook deliveries due again."""
    with _service_and_settings(data_dir, config) as (service, settings):
        count = service.maintenance.redrive()
    typer.echo(f"moved {count} dead-lettered job(s) back to the queue")
    if settings.backend == "local":
        from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox
        from imgpipe.bootstrap import DB_NAME, STATE_DIR

        outbox = SqliteWebhookOutbox(settings.local.data_dir.resolve() / STATE_DIR / DB_NAME)
        try:
            hooks = outbox.redrive()
        finally:
            outbox.close()
        typer.echo(f"made {hooks} dead webhook delivery(ies) due again")


@app.command("replay-events")
def replay_events(
    queue_url: Annotated[
        str, typer.Option(help="the stack's EventsFailureQueueUrl output", show_default=False)
    ],
    bus: Annotated[
        str | None, typer.Option(help="the stack's bus [default: events.event_bus, or 'default']")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """AWS: publish the image events of the stream batches the events function gave up on (the
    failure queue), read back from the table's stream while it holds them (24 hours)."""
    import boto3

    from imgpipe.adapters.aws.table_stream import StreamReader, replay_failed_batches
    from imgpipe.bootstrap import client_config

    settings = _settings(config)
    session = boto3.session.Session()
    endpoint, client = settings.aws.endpoint_url, client_config(settings)
    sqs = session.client("sqs", endpoint_url=endpoint, config=client)
    events = session.client("events", endpoint_url=endpoint, config=client)
    streams = session.client("dynamodbstreams", endpoint_url=endpoint, config=client)
    try:
        report = replay_failed_batches(
            sqs,
            queue_url,
            cast("StreamReader", streams),
            events,
            bus or settings.events.event_bus or "default",
        )
    finally:
        for made in (sqs, events, streams):
            made.close()
    typer.echo(f"replayed {report.replayed} batch(es): {report.events} event(s) put")
    for reason in report.kept:
        err.print(f"[yellow]kept a batch:[/yellow] {escape(reason)}")
    if report.kept:
        raise typer.Exit(1)


@app.command()
def reprocess(
    image_ids: Annotated[
        list[str] | None, typer.Argument(help="images to process again in full, by imageId")
    ] = None,
    stale: Annotated[
        bool,
        typer.Option(
            "--stale",
            help="re-render the presets whose settings changed, for every stale PROCESSED image",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    wait: Annotated[
        bool, typer.Option(help="with --stale: wait until the re-renders are done")
    ] = True,
    timeout: Annotated[float, typer.Option(min=0, help="seconds --wait waits at most")] = 3600.0,
) -> None:
    """Process images again: IMAGE_IDS in full, or with --stale only the renditions that the
    current rendition settings would make differently (see README: Versioned renditions)."""
    if stale == bool(image_ids):
        err.print("[red]pass --stale or some image ids (not both)[/red]")
        raise typer.Exit(2)
    if image_ids:
        from imgpipe.core.errors import NotFoundError

        with _service_and_settings(data_dir, config) as (service, _):
            try:
                for image_id in image_ids:
                    service.processing.reprocess(image_id)
            except NotFoundError as exc:
                err.print(f"[red]{escape(str(exc))}[/red]")
                raise typer.Exit(1) from exc
        typer.echo(f"queued {len(image_ids)} image(s) to be processed again")
        return
    from imgpipe.entrypoints.stale import reprocess_stale

    overrides: dict[str, Any] = {"local": {"data_dir": data_dir}} if data_dir else {}
    settings = _settings(config, **overrides)
    run = reprocess_stale(settings, wait=wait, timeout_s=timeout, console=err)
    for line in run.summary():
        typer.echo(line)
    if run.left:
        err.print(
            f"[yellow]{run.left} record(s) still stale after {timeout:g} s:[/yellow] the workers"
            " render with their own settings; restart `imgpipe serve` (or deploy) with this"
            " configuration, then run this again"
        )
    if run.failed or run.left:
        raise typer.Exit(1)


# -- cost -------------------------------------------------------------------------------------


@app.command()
def cost(
    images_per_day: Annotated[
        float, typer.Option("--images-per-day", min=0, help="originals uploaded a day")
    ],
    duration_ms: Annotated[
        float | None, typer.Option(min=0, help="worker ms per image [default: measured]")
    ] = None,
    memory_mb: Annotated[
        int | None, typer.Option(min=128, help="worker memory [default: the template's]")
    ] = None,
    original_kb: Annotated[
        float | None, typer.Option(min=0, help="mean original size [default: measured]")
    ] = None,
    renditions_kb: Annotated[
        float | None, typer.Option(min=0, help="renditions of one image [default: measured]")
    ] = None,
    api_calls_per_image: Annotated[
        float | None, typer.Option(min=0, help="API calls per image [default: 3]")
    ] = None,
    api_duration_ms: Annotated[
        float | None, typer.Option(min=0, help="API function ms per call [default: 50]")
    ] = None,
    gets_per_image: Annotated[
        float, typer.Option(min=0, help="S3 GETs of renditions served per image")
    ] = 0.0,
    months: Annotated[
        int, typer.Option(min=1, help="bill of month N: storage holds N months of uploads")
    ] = 1,
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=10, help="images per worker invocation [default: 10]")
    ] = None,
    pending_write: Annotated[
        bool, typer.Option(help="uploads write a PENDING record (presigned ones do not)")
    ] = True,
    events: Annotated[
        bool, typer.Option(help="the events function and its EventBridge events (always deployed)")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    config: ConfigOpt = None,
) -> None:
    """Estimate the monthly AWS bill of a workload: list prices, no free tier, 30-day month."""
    from dataclasses import replace

    from imgpipe.ops import cost as costs

    settings = _settings(config)
    try:
        from imgpipe.adapters.aws.emf_metrics import COUNTERS, TIMINGS

        labels = {name: spec[1] for name, spec in COUNTERS.items()} | dict(TIMINGS)
        metrics = costs.emf_metric_series(labels)
    except ImportError:  # without the aws extra
        metrics = costs.DEFAULT_CUSTOM_METRICS
    default = costs.Workload(images_per_day)
    workload = replace(
        default,
        duration_ms=default.duration_ms if duration_ms is None else duration_ms,
        memory_mb=memory_mb or default.memory_mb,
        original_kb=default.original_kb if original_kb is None else original_kb,
        renditions_kb=default.renditions_kb if renditions_kb is None else renditions_kb,
        api_calls_per_image=(
            default.api_calls_per_image if api_calls_per_image is None else api_calls_per_image
        ),
        api_duration_ms=default.api_duration_ms if api_duration_ms is None else api_duration_ms,
        batch_size=batch_size or default.batch_size,
        renditions_per_image=sum(len(r.formats) for r in settings.renditions),
        gets_per_image=gets_per_image,
        months=months,
        pending_write=pending_write,
        events=events,
        custom_metrics=metrics,
    )
    estimate = costs.estimate(workload)
    if as_json:
        sys.stdout.write(json.dumps(estimate.to_dict(), indent=2) + "\n")
        return
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
    for note in estimate.notes:
        console.print(f"[dim]{escape(note)}[/dim]")


def main() -> None:
    # Fewer glibc arenas: far less RSS with libvips' threads. Set before libvips loads.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    app()


if __name__ == "__main__":
    main()
