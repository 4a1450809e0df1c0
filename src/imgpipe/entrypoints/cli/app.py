"""The `imgpipe` Typer app and what its commands share: the error console, the --config and
--data-dir options, and the settings they read (exit code 2 when the configuration is wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from imgpipe import __version__
from imgpipe.config import Settings, load_settings

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


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """The settings from `config`, the environment and `overrides`; a configuration error is
    printed and ends the command with exit code 2."""
    try:
        return load_settings(config, **overrides)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def data_dir_override(data_dir: Path | None) -> dict[str, Any]:
    """--data-dir as a settings override (none when it is not given)."""
    return {"local": {"data_dir": data_dir}} if data_dir is not None else {}


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
