"""`imgpipe process` and `imgpipe info`: images on this machine, no server, no data folder."""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from imgpipe.entrypoints.cli.app import ConfigOpt, err, settings_from

if TYPE_CHECKING:
    from imgpipe.service import ServiceOptions


@dataclass(frozen=True)
class FileOutcome:
    """One input file and the record it got (FAILED ones carry their error)."""

    path: str
    record: dict[str, Any]

    @property
    def failed(self) -> bool:
        return bool(self.record.get("status") == "FAILED")


def process(
    paths: Annotated[list[Path], typer.Argument(help="image files and folders (recursed)")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    config: ConfigOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="processes to use")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Process files with no server: OUT/<stem>/<rendition>.<ext> and OUT/<stem>/record.json."""
    from imgpipe.bootstrap import service_options

    options = service_options(settings_from(config))
    files = _collect(paths)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = _process_all(files, out, options, jobs=jobs, quiet=as_json)
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


def _collect(paths: list[Path]) -> list[Path]:
    """The files named and those in the folders named (hidden ones left out), in order."""
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


def _process_all(
    files: list[Path], out: Path, options: ServiceOptions, *, jobs: int, quiet: bool
) -> list[FileOutcome]:
    """Each file into its own folder under `out`, here or in `jobs` processes; a progress bar
    on a terminal unless `quiet`."""
    from imgpipe.batch import process_file

    folders = [str(out / name) for name in _out_names(files)]
    outcomes: list[FileOutcome] = []
    progress = Progress(
        TextColumn("[bold]processing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=not err.is_terminal or quiet,
    )
    with progress:
        task = progress.add_task("", total=len(files))
        if jobs == 1:
            for f, folder in zip(files, folders, strict=True):
                progress.update(task, description=f.name)
                outcomes.append(FileOutcome(str(f), process_file(str(f), folder, options)))
                progress.advance(task)
        else:
            with ProcessPoolExecutor(jobs) as pool:
                futures: list[Future[dict[str, Any]]] = [
                    pool.submit(process_file, str(f), folder, options)
                    for f, folder in zip(files, folders, strict=True)
                ]
                for f, future in zip(files, futures, strict=True):
                    outcomes.append(FileOutcome(str(f), future.result()))
                    progress.advance(task)
    return outcomes


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


def info(
    file: Annotated[Path, typer.Argument(help="an image file")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the metadata imgpipe would record for FILE; no renditions are written."""
    from imgpipe.core.errors import ImageError
    from imgpipe.engine import probe

    settings = settings_from(config)
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
