"""`imgpipe backfill`, `redrive`, `replay-events` and `reprocess`: the queue and the records of
the configured backend (a data folder, or the AWS stack), set right after the fact."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.markup import escape

from imgpipe.entrypoints.cli.app import ConfigOpt, DataDirOpt, data_dir_override, err, settings_from

if TYPE_CHECKING:
    from imgpipe.config import Settings
    from imgpipe.service import UseCases


@contextmanager
def _service_and_settings(
    data_dir: Path | None, config: Path | None
) -> Iterator[tuple[UseCases, Settings]]:
    """The configured backend's wiring without workers: local (the default) or AWS."""
    from imgpipe.bootstrap import build_aws, build_local

    settings = settings_from(config, **data_dir_override(data_dir))
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
        _backfill_index_keys(config, start)
        return
    with _service_and_settings(data_dir, config) as (service, _):
        count = service.maintenance.backfill(prefix)
    typer.echo(f"queued {count} object(s) under {prefix}")


def _backfill_index_keys(config: Path | None, start: str | None) -> None:
    settings = settings_from(config)
    if settings.backend != "aws":
        typer.echo("nothing to do locally: SQLite's indexes are expressions over the record")
        return
    from imgpipe.bootstrap import build_aws

    aws = build_aws(settings)
    try:
        echo_index_backfill(aws.records, start)
    finally:
        aws.close()


class IndexKeysPage(Protocol):
    """What the printout reads of a page of the records store's backfill_index_keys."""

    @property
    def scanned(self) -> int: ...
    @property
    def rewritten(self) -> int: ...
    @property
    def raced(self) -> int: ...
    @property
    def unreadable(self) -> int: ...
    @property
    def resume(self) -> str | None: ...


class IndexKeysBackfill(Protocol):
    """A records store that can add the index keys older records lack (DynamoDB's)."""

    @property
    def table(self) -> str: ...
    def backfill_index_keys(self, start: str | None = None) -> Iterator[IndexKeysPage]: ...


def echo_index_backfill(records: IndexKeysBackfill, start: str | None = None) -> None:
    """Backfill the table's index keys to its end, a line per page, each saying where to
    resume (`imgpipe backfill --index-keys`, and deploy for the indexes it added)."""
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


def redrive(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """Move dead-lettered jobs back to the queue to be tried again (AWS: the DLQ); locally
    also make dead webhook deliveries due again."""
    with _service_and_settings(data_dir, config) as (service, settings):
        count = service.maintenance.redrive()
    typer.echo(f"moved {count} dead-lettered job(s) back to the queue")
    if settings.backend == "local":
        from imgpipe.bootstrap import local_outbox

        outbox = local_outbox(settings)
        try:
            hooks = outbox.redrive()
        finally:
            outbox.close()
        typer.echo(f"made {hooks} dead webhook delivery(ies) due again")


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
    from imgpipe.bootstrap import aws_stream_replay

    settings = settings_from(config)
    replay = aws_stream_replay(settings)
    try:
        report = replay.replay(queue_url, bus or settings.events.event_bus or "default")
    finally:
        replay.close()
    typer.echo(f"replayed {report.replayed} batch(es): {report.events} event(s) put")
    for reason in report.kept:
        err.print(f"[yellow]kept a batch:[/yellow] {escape(reason)}")
    if report.kept:
        raise typer.Exit(1)


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
        _reprocess_in_full(image_ids, data_dir, config)
    else:
        _rerender_stale(data_dir, config, wait=wait, timeout=timeout)


def _reprocess_in_full(image_ids: list[str], data_dir: Path | None, config: Path | None) -> None:
    """Queue each image to be processed again from its original (exit code 1 at one unknown)."""
    from imgpipe.core.errors import NotFoundError

    with _service_and_settings(data_dir, config) as (service, _):
        try:
            for image_id in image_ids:
                service.processing.reprocess(image_id)
        except NotFoundError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from exc
    typer.echo(f"queued {len(image_ids)} image(s) to be processed again")


def _rerender_stale(
    data_dir: Path | None, config: Path | None, *, wait: bool, timeout: float
) -> None:
    """Queue the stale renditions' re-renders (and with `wait` see them done); exit code 1
    when any failed or is still stale at the timeout."""
    from imgpipe.entrypoints.cli.stale import reprocess_stale

    settings = settings_from(config, **data_dir_override(data_dir))
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
