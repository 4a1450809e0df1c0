"""The composition root: the one place that picks adapters and wires them into the use cases.

    options     the data folder's layout; the use cases' options from the settings
    local_app   LocalApp and build_local: `imgpipe serve` and the local commands
    local       build_local's named steps (stores, metrics, renderer, events, job threads...)
    aws         AwsClients, AwsApp, build_aws, the Lambda functions' apps
    commands    what a CLI command needs of an adapter (redrive's outbox, replay's clients...)

Nothing here decides anything about an image; it builds, and hands over.
"""

from imgpipe.bootstrap.aws import (
    AwsApp,
    AwsClients,
    AwsEventsApp,
    aws_clients,
    build_aws,
    build_aws_events,
    client_config,
    lambda_app,
    lambda_events_app,
)
from imgpipe.bootstrap.commands import (
    AwsStreamReplay,
    aws_index_backfill,
    aws_stream_replay,
    emf_metric_labels,
    local_outbox,
)
from imgpipe.bootstrap.local_app import LocalApp, build_local
from imgpipe.bootstrap.options import DB_NAME, STATE_DIR, is_loopback, service_options

__all__ = [
    "DB_NAME",
    "STATE_DIR",
    "AwsApp",
    "AwsClients",
    "AwsEventsApp",
    "AwsStreamReplay",
    "LocalApp",
    "aws_clients",
    "aws_index_backfill",
    "aws_stream_replay",
    "build_aws",
    "build_aws_events",
    "build_local",
    "client_config",
    "emf_metric_labels",
    "is_loopback",
    "lambda_app",
    "lambda_events_app",
    "local_outbox",
    "service_options",
]
