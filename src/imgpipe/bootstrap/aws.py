"""The AWS wiring: one boto3 client per service, the stores over them, and the apps the three
Lambda functions run (the worker and the API share AwsApp; the events function has its own,
lighter one). Adapters are imported inside the builders: a cold start loads only what its
function runs (the events function: no service, no imaging)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgpipe.bootstrap.options import delivery_options, service_options
from imgpipe.config import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from imgpipe.adapters.aws.cdn_links import CdnUrls
    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.adapters.aws.emf_metrics import EmfMetrics
    from imgpipe.adapters.aws.links import S3Links
    from imgpipe.adapters.aws.s3_store import S3ObjectStore
    from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
    from imgpipe.adapters.aws.table_stream import Failure
    from imgpipe.core.ports import Renderer
    from imgpipe.service import UseCases


# The largest /img result the API function answers itself; a larger one is a 307 to a presigned
# GET of the cached object. Lambda refuses a synchronous response over 6 MB (6,291,556 bytes)
# and an image body goes base64-encoded in it (4 bytes for 3): 4,500,000 bytes are 6,000,000
# of response, which leaves 291,556 for the headers and the JSON around them.
LAMBDA_INLINE_LIMIT = 4_500_000


@dataclass(frozen=True)
class AwsClients:
    """One boto3 client per service, made once per process (Lambda warm starts reuse them)."""

    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient

    def close(self) -> None:
        for client in (self.s3, self.dynamodb, self.sqs):
            client.close()


def client_config(settings: Settings) -> Config:
    """Every client's: settings.aws.region (or the environment's), standard retry mode (the
    first attempt and up to 4 retries, with backoff), short connect timeout."""
    from botocore.config import Config

    return Config(
        region_name=settings.aws.region,
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=3,
        read_timeout=30,
        tcp_keepalive=True,
    )


def aws_clients(settings: Settings, session: boto3.session.Session | None = None) -> AwsClients:
    """Clients for settings.aws.region (or the environment's), pointed at endpoint_url when
    it is set (moto in tests)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    config = client_config(settings)
    endpoint = settings.aws.endpoint_url
    # SigV4 for presigned URLs and POSTs too (botocore would sign a POST policy with SigV2).
    s3_config = config.merge(Config(signature_version="s3v4"))
    return AwsClients(
        s3=session.client("s3", endpoint_url=endpoint, config=s3_config),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=config),
        sqs=session.client("sqs", endpoint_url=endpoint, config=config),
    )


@dataclass
class AwsApp:
    """The AWS wiring: what the Lambda handlers and the CLI's AWS commands run."""

    settings: Settings
    clients: AwsClients
    objects: S3ObjectStore
    records: DynamoMetadataStore
    queue: SqsJobQueue
    metrics: EmfMetrics
    service: UseCases
    links: S3Links

    def close(self) -> None:
        self.clients.close()


def build_aws(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    clients: AwsClients | None = None,
    renderer: Renderer | None = None,
    metrics: EmfMetrics | None = None,
    inline_limit_bytes: int = LAMBDA_INLINE_LIMIT,
) -> AwsApp:
    """The distributed engine: S3, DynamoDB, SQS, EMF metrics; rendering in this process.
    The bucket's own notifications queue new uploads (store_notifies=True). It publishes no
    events: the events function reads them from the table's stream (build_aws_events). /img
    takes signed URLs only, and answers results over `inline_limit_bytes` with a redirect."""
    from imgpipe.adapters.aws.dynamodb_store import DynamoMetadataStore
    from imgpipe.adapters.aws.emf_metrics import EmfMetrics
    from imgpipe.adapters.aws.links import S3Links
    from imgpipe.adapters.aws.s3_store import S3ObjectStore
    from imgpipe.adapters.aws.sqs_queue import SqsJobQueue
    from imgpipe.engine import InProcessRenderer
    from imgpipe.service import UseCases

    aws = settings.aws
    missing = [
        f"aws.{name}"
        for name in ("bucket", "table", "queue_url", "dlq_url")
        if not getattr(aws, name)
    ]
    if missing:
        raise ValueError(f"the AWS backend needs {', '.join(missing)}")
    clients = clients or aws_clients(settings, session)
    records = DynamoMetadataStore(clients.dynamodb, aws.table)

    objects = S3ObjectStore(clients.s3, aws.bucket)
    queue = SqsJobQueue(clients.sqs, aws.queue_url, aws.dlq_url)
    metrics = metrics or EmfMetrics()
    service = UseCases.build(
        objects,
        records,
        queue,
        renderer or InProcessRenderer(),
        metrics,
        service_options(
            settings,
            store_notifies=True,
            delivery=delivery_options(
                settings, unsafe_allowed=False, inline_limit_bytes=inline_limit_bytes
            ),
        ),
    )
    links = S3Links(objects, aws.presign_ttl_s, cdn_urls(settings, session))
    return AwsApp(settings, clients, objects, records, queue, metrics, service, links)


@functools.cache
def lambda_app() -> AwsApp:
    """The one AwsApp of a Lambda process, from its environment: built on the first invocation
    and reused by every warm one (its clients included)."""
    from imgpipe.config import load_settings

    settings = load_settings()
    if settings.backend != "aws":
        raise RuntimeError("the Lambda handlers need IMGPIPE_BACKEND=aws")
    return build_aws(with_transform_secret(settings))


def with_transform_secret(
    settings: Settings, session: boto3.session.Session | None = None
) -> Settings:
    """`settings` with the key and salt of the SSM SecureString aws.transform_secret names,
    if it names one (the API function's: GET /img URLs are signed with them). The stack gives
    the function the parameter's name, never its value: the value stays out of the template,
    the function's configuration and CloudFormation's events. Read once per cold start."""
    name = settings.aws.transform_secret
    if not name:
        return settings
    text = _secure_string(settings, name, session)
    return settings.model_copy(update={"transform": settings.transform.with_secret(text)})


def cdn_urls(settings: Settings, session: boto3.session.Session | None = None) -> CdnUrls | None:
    """The distribution's URLs when aws.cdn_base_url names one; signed with the PEM of the SSM
    SecureString aws.cdn_private_key_secret names when aws.cdn_privacy is `signed`. Like the
    transform secret, the stack hands the function the parameter's name, never the key: it is
    read here, once per cold start."""
    from imgpipe.adapters.aws.cdn_links import CdnUrls

    aws = settings.aws
    if not aws.cdn_base_url:
        return None
    if aws.cdn_privacy == "public":
        return CdnUrls(aws.cdn_base_url)
    pem = _secure_string(settings, aws.cdn_private_key_secret, session)
    return CdnUrls.signed(aws.cdn_base_url, aws.cdn_key_pair_id, pem, aws.cdn_signed_ttl_s)


def _secure_string(
    settings: Settings, name: str, session: boto3.session.Session | None = None
) -> str:
    """The decrypted value of the SSM parameter `name`."""
    import boto3

    session = session or boto3.session.Session()
    ssm = session.client(
        "ssm", endpoint_url=settings.aws.endpoint_url, config=client_config(settings)
    )
    try:
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", "")
    finally:
        ssm.close()


@dataclass
class AwsEventsApp:
    """The events function's wiring: the EventBridge client, the bus, EMF metrics. Nothing
    else: its cold start makes one client."""

    events: EventBridgeClient
    bus: str
    metrics: EmfMetrics

    def publish(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, list[Failure]]:
        """The events of a batch of stream records, put on the bus (table_stream.publish)."""
        from imgpipe.adapters.aws.table_stream import publish

        return publish(self.events, self.bus, records)

    def close(self) -> None:
        self.events.close()


def build_aws_events(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    metrics: EmfMetrics | None = None,
) -> AwsEventsApp:
    """What turns the table's stream into events on settings.events.event_bus."""
    import boto3

    from imgpipe.adapters.aws.emf_metrics import EmfMetrics

    if not settings.events.event_bus:
        raise ValueError("the events function needs events.event_bus")
    session = session or boto3.session.Session()
    client = session.client(
        "events", endpoint_url=settings.aws.endpoint_url, config=client_config(settings)
    )
    return AwsEventsApp(client, settings.events.event_bus, metrics or EmfMetrics())


@functools.cache
def lambda_events_app() -> AwsEventsApp:
    """The one AwsEventsApp of the events function's process, built on its first invocation."""
    from imgpipe.config import load_settings

    settings = load_settings()
    if settings.backend != "aws":
        raise RuntimeError("the Lambda handlers need IMGPIPE_BACKEND=aws")
    return build_aws_events(settings)
