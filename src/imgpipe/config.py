"""Settings: the one module that reads configuration files and IMGPIPE_* environment variables.

Precedence, highest first: values passed in code (CLI flags), environment variables
(`IMGPIPE_LIMITS__MAX_BYTES=...`, nested with `__`), the TOML file (`--config FILE` or
`IMGPIPE_CONFIG`), then the defaults, which work with no file at all.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from imgpipe.config_render import Limits, MetadataOptions, RenditionSpec, default_renditions
from imgpipe.config_transform import TransformOptions
from imgpipe.core.rendering import RenderOptions
from imgpipe.core.rendition_identity import rendition_hash, spec_hashes

# What callers import from here; the render's models live in config_render.py.
__all__ = [
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "LEASE_MARGIN_S",
    "AwsBackend",
    "EventType",
    "EventsOptions",
    "Limits",
    "LocalBackend",
    "MetadataOptions",
    "RenditionSpec",
    "Server",
    "Settings",
    "SimilarityOptions",
    "TransformOptions",
    "WebhookTarget",
    "load_settings",
]

ENV_PREFIX = "IMGPIPE_"
CONFIG_FILE_ENV = "IMGPIPE_CONFIG"
LEASE_MARGIN_S = 30.0


class LocalBackend(BaseModel):
    """The local backend: the data folder (objects, SQLite) of `imgpipe serve` and the CLI."""

    data_dir: Path = Field(
        default=Path("imgpipe-data"),
        description="objects live here (uploads/, renditions/); internal state in .imgpipe/",
    )
    bucket_name: str = Field(default="local", description="the `bucket` field of local records")
    busy_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="how long a write waits for a locked database before it fails (the API"
        " answers 503, a job is retried)",
    )


class AwsBackend(BaseModel):
    """The AWS backend (backend = "aws"): the stack's resources; the template sets them."""

    region: str | None = Field(default=None, description="by default the SDK's region")
    bucket: str = Field(default="", description="the S3 bucket of originals and renditions")
    table: str = Field(default="", description="the DynamoDB table of records")
    queue_url: str = Field(default="", description="the SQS queue of jobs")
    dlq_url: str = Field(default="", description="its dead-letter queue (imgpipe redrive)")
    endpoint_url: str | None = Field(default=None, description="for tests against moto")
    presign_ttl_s: int = Field(
        default=900,
        gt=0,
        le=7 * 24 * 3600,
        description="lifetime of presigned upload URLs and rendition links",
    )
    transform_secret: str = Field(
        default="",
        description="name of the SSM SecureString parameter holding transform.key and"
        ' transform.salt as JSON ({"key": ..., "salt": ...}); read at cold start',
    )
    # The stack's CloudFront distribution (docs/aws.md, "At the edge"); the template sets them.
    cdn_base_url: str = Field(
        default="",
        description="https://{the distribution's domain}: records' rendition URLs and /img URLs"
        " point there (versioned, cacheable); empty: presigned S3 GETs",
    )
    cdn_privacy: Literal["public", "signed"] = Field(
        default="public",
        description="public: anyone with the (unguessable, versioned) URL; signed: CloudFront"
        " signed URLs (canned policy) made with the key of cdn_private_key_secret",
    )
    cdn_key_pair_id: str = Field(
        default="", description="the CloudFront public key's id (signed: the Key-Pair-Id)"
    )
    cdn_private_key_secret: str = Field(
        default="",
        description="name of the SSM SecureString parameter holding the signing key's PEM"
        " (RSA); read at cold start",
    )
    cdn_signed_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        le=366 * 24 * 3600,
        description="a signed CDN URL is good at least this long (its expiry is rounded up to"
        " the hour, so that repeated reads give the same, cacheable URL)",
    )

    @field_validator("cdn_privacy", mode="before")
    @classmethod
    def _no_privacy_is_public(cls, value: object) -> object:
        # The template passes "" when the distribution is off.
        return "public" if value == "" else value

    @model_validator(mode="after")
    def _cdn_complete(self) -> AwsBackend:
        self.cdn_base_url = self.cdn_base_url.rstrip("/")
        if (
            self.cdn_base_url
            and self.cdn_privacy == "signed"
            and not (self.cdn_key_pair_id and self.cdn_private_key_secret)
        ):
            raise ValueError(
                "aws.cdn_privacy = signed needs aws.cdn_key_pair_id and aws.cdn_private_key_secret"
            )
        return self


class Server(BaseModel):
    """`imgpipe serve`: the local HTTP API, its job queue and its rendering processes."""

    host: str = Field(default="127.0.0.1", description="address to bind (--host)")
    port: int = Field(default=8080, ge=0, le=65535, description="port to bind (--port)")
    workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="concurrent processing jobs: rendering processes, two job threads each",
    )
    api_token: str | None = Field(default=None, description="Bearer token; required off loopback")
    upload_url_ttl_s: int = Field(
        default=900,
        gt=0,
        le=24 * 3600,
        description="lifetime of signed upload URLs and of signed rendition links",
    )
    signing_secret: str | None = Field(
        default=None, description="HMAC key for upload and rendition URLs; made per data dir"
    )
    watch_uploads: bool = Field(
        default=True, description="pick up files dropped into (or removed from) uploads/"
    )
    max_attempts: int = Field(default=5, ge=1, description="receives before a job dead-letters")
    visibility_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="a job leased this long without an ack is delivered again; must exceed"
        " limits.processing_timeout_s + 30 s (the image lease)",
    )
    max_list_limit: int = Field(default=100, ge=1, description="largest `limit` of GET /images")
    rate_limit_per_s: float = Field(
        default=50.0, ge=0, description="requests a second per client address; 0: no limit"
    )
    rate_limit_burst: int = Field(
        default=200, ge=1, description="requests at once before the rate applies (not /health)"
    )
    # The HTTP edge (entrypoints/http_edge.py; docs/operations.md, "The HTTP edge").
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="request line and headers together; past it: 431 and the connection closed",
    )
    max_headers: int = Field(default=100, ge=8, description="header fields per request (431)")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a new connection, or a request once begun, must finish its headers within"
        " this; else closed (408 if a request had begun)",
    )
    idle_timeout_s: int = Field(
        default=5, ge=1, description="a keep-alive connection idle this long is closed"
    )
    max_connections: int = Field(
        default=384,
        ge=8,
        description="open connections at once, and at most 3/8 of the open-file limit (ulimit"
        " -n); past it the longest-idle connection is closed, or else the new one (503)",
    )
    max_json_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="body of every route but the two uploads (413, from Content-Length first)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto are believed; none by default: the client is the socket's peer",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {proxy!r} is not an IP address or network"
                ) from None
        return proxies


EventType = Literal["image.processed", "image.failed"]


def _all_event_types() -> list[EventType]:
    return ["image.processed", "image.failed"]


class WebhookTarget(BaseModel):
    """A receiver of signed POSTs of image events (local; docs/api.md: Events)."""

    url: str = Field(pattern=r"^https?://", description="receives a POST of each event")
    secret: str = Field(
        min_length=16, repr=False, description="HMAC-SHA256 key of the signature header"
    )
    events: list[EventType] = Field(
        default_factory=_all_event_types, min_length=1, description="the event types it receives"
    )


class EventsOptions(BaseModel):
    """Where image.processed / image.failed go (docs/api.md: Events)."""

    log: bool = Field(default=True, description="local: append each event to events.jsonl")
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, description="local: receivers of signed POSTs; each url once"
    )
    max_attempts: int = Field(default=8, ge=1, description="deliveries before a dead letter")
    backoff_s: float = Field(
        default=2.0, gt=0, description="first retry delay, then doubled (with jitter)"
    )
    max_backoff_s: float = Field(default=600.0, gt=0, description="the longest retry delay")
    timeout_s: float = Field(default=5.0, gt=0, description="per webhook request")
    webhook_senders: int = Field(
        default=4, ge=1, le=32, description="local: deliveries in flight at once"
    )
    event_bus: str = Field(
        default="", description="AWS: the bus the events function puts image events on"
    )

    @field_validator("webhooks")
    @classmethod
    def _one_target_per_url(cls, webhooks: list[WebhookTarget]) -> list[WebhookTarget]:
        urls = [w.url for w in webhooks]
        if len(set(urls)) != len(urls):
            raise ValueError("each webhook url may be listed once")
        return webhooks


class SimilarityOptions(BaseModel):
    """Near-duplicates (docs/api.md: GET /images/{imageId}/similar)."""

    max_distance: int = Field(
        default=6,
        ge=0,
        le=7,  # core.similarity.MAX_DISTANCE: what the pHash band index finds in full
        description="largest pHash Hamming distance (of 64 bits) that counts as similar",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    backend: Literal["local", "aws"] = Field(
        default="local",
        description="where objects, records and jobs live; aws needs aws.bucket and aws.table",
    )
    renditions: list[RenditionSpec] = Field(
        default_factory=default_renditions,
        min_length=1,
        description="the presets every image is rendered to; names unique",
    )
    limits: Limits = Field(default_factory=Limits)
    metadata: MetadataOptions = Field(default_factory=MetadataOptions)
    background: tuple[int, int, int] = Field(
        default=(255, 255, 255), description="what transparent pixels become in JPEG"
    )
    local: LocalBackend = Field(default_factory=LocalBackend)
    aws: AwsBackend = Field(default_factory=AwsBackend)
    server: Server = Field(default_factory=Server)
    events: EventsOptions = Field(default_factory=EventsOptions)
    similarity: SimilarityOptions = Field(default_factory=SimilarityOptions)
    transform: TransformOptions = Field(default_factory=TransformOptions)
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")

    @field_validator("renditions")
    @classmethod
    def _unique_names(cls, value: list[RenditionSpec]) -> list[RenditionSpec]:
        names = [r.name for r in value]
        if len(set(names)) != len(names):
            raise ValueError(f"rendition names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.backend == "aws" and not (self.aws.bucket and self.aws.table):
            raise ValueError("backend 'aws' needs aws.bucket and aws.table")
        if self.server.visibility_timeout_s <= self.lease_s:
            # A redelivered job must find the dead worker's lease lapsed, or it waits in vain.
            raise ValueError(
                f"server.visibility_timeout_s ({self.server.visibility_timeout_s:g}) must exceed "
                f"the image lease, limits.processing_timeout_s + {LEASE_MARGIN_S:g} "
                f"({self.lease_s:g})"
            )
        return self

    @property
    def lease_s(self) -> float:
        """How long a worker holds an image: its render time limit plus a margin for I/O."""
        return self.limits.processing_timeout_s + LEASE_MARGIN_S

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    def render_options(self) -> RenderOptions:
        """Everything that shapes a render, as the plain data a rendering process is sent."""
        return RenderOptions(
            renditions=tuple(spec.render_preset() for spec in self.renditions),
            limits=self.limits.render_limits(),
            metadata=self.metadata.rules(),
            background=self.background,
        )

    def spec_hashes(self) -> dict[str, str]:
        """Each preset's `specHash`, by preset name (core.rendition_identity.spec_hashes)."""
        presets = (spec.render_preset() for spec in self.renditions)
        return spec_hashes(presets, self.background, self.metadata.strip_exif)

    def rendition_hash(self) -> str:
        """The record's `renditionHash` (core.rendition_identity.rendition_hash)."""
        return rendition_hash(self.spec_hashes())

    def renditions_json(self) -> str:
        """The presets as IMGPIPE_RENDITIONS takes them: compact JSON, defaults left out (a
        Lambda's whole environment must fit in 4 KB). Read back, they hash the same."""
        presets = [spec.model_dump(mode="json", exclude_defaults=True) for spec in self.renditions]
        return json.dumps(presets, separators=(",", ":"))


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings once: the TOML file (if any), then the environment, then `overrides`."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        previous = os.environ.get(CONFIG_FILE_ENV)
        os.environ[CONFIG_FILE_ENV] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop(CONFIG_FILE_ENV, None)
            else:
                os.environ[CONFIG_FILE_ENV] = previous
    return Settings(**overrides)
