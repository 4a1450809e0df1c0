"""`imgpipe serve`: the local server (API, workers, uploads watcher, dashboard) in the
foreground."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from imgpipe import jsonlog
from imgpipe.entrypoints.cli.app import ConfigOpt, DataDirOpt, data_dir_override, err, settings_from


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
    from imgpipe.core.errors import DataDirBusyError
    from imgpipe.entrypoints.local_server import UnsafeBindError
    from imgpipe.entrypoints.local_server import serve as run

    server = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    overrides: dict[str, Any] = {"server": server} if server else {}
    settings = settings_from(config, **overrides, **data_dir_override(data_dir))
    jsonlog.configure(settings.log_level)
    try:
        run(settings)
    except (UnsafeBindError, DataDirBusyError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
