"""The use cases of one service, built over one shared context: what the workers, the API and
the CLI are handed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from imgpipe.core.model import utcnow
from imgpipe.core.ports import (
    DerivedCache,
    EventPublisher,
    JobQueue,
    MetadataStore,
    Metrics,
    NullDerivedCache,
    NullEvents,
    ObjectStore,
    Renderer,
)
from imgpipe.service.context import ServiceContext, ServiceOptions
from imgpipe.service.delivery import Delivery
from imgpipe.service.ingest import Ingest
from imgpipe.service.maintenance import Maintenance
from imgpipe.service.process import Processing
from imgpipe.service.queries import Queries
from imgpipe.service.rerender import Rerendering


@dataclass(frozen=True)
class UseCases:
    """One of each use case. They share a context, so that the render gate and the count of
    running jobs are the service's, whichever use case a job runs through."""

    ingest: Ingest
    processing: Processing
    rerendering: Rerendering
    queries: Queries
    maintenance: Maintenance
    delivery: Delivery

    @classmethod
    def build(
        cls,
        objects: ObjectStore,
        records: MetadataStore,
        queue: JobQueue,
        renderer: Renderer,
        metrics: Metrics,
        options: ServiceOptions,
        *,
        events: EventPublisher | None = None,
        clock: Callable[[], datetime] = utcnow,
        derived: DerivedCache | None = None,
    ) -> UseCases:
        """`derived`: the bookkeeping of the /img route's cache (locally its size budget)."""
        ctx = ServiceContext(
            objects,
            records,
            queue,
            renderer,
            metrics,
            options,
            events or NullEvents(),
            clock,
            derived or NullDerivedCache(),
        )
        return cls(
            Ingest(ctx),
            Processing(ctx),
            Rerendering(ctx),
            Queries(ctx),
            Maintenance(ctx),
            Delivery(ctx),
        )
