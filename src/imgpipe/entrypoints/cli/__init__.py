"""The `imgpipe` command (Typer + Rich): its commands in the order `imgpipe --help` lists them,
and `main`, the console script.

    app          the Typer app, --version, and what the commands share (--config, --data-dir)
    serve        serve: the local server
    local        process, info: files on this machine, no server
    aws          package, deploy: the Lambda zip and the stack
    maintenance  backfill, redrive, replay-events, reprocess (stale: reprocess --stale)
    cost         cost: the monthly AWS bill of a workload
    cdn          purge: an image's copies out of the stack's CloudFront caches
"""

from __future__ import annotations

import os

from imgpipe.entrypoints.cli import aws, cdn, cost, local, maintenance, serve
from imgpipe.entrypoints.cli.app import app

app.command()(serve.serve)
app.command()(local.process)
app.command()(local.info)
app.command()(aws.package)
app.command()(aws.deploy)
app.command()(maintenance.backfill)
app.command()(maintenance.redrive)
app.command("replay-events")(maintenance.replay_events)
app.command()(maintenance.reprocess)
app.command()(cost.cost)
app.command()(cdn.purge)


def main() -> None:
    # Fewer glibc arenas: far less RSS with libvips' threads. Set before libvips loads.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    app()
