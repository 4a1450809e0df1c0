"""The use cases over the ports: ingest, process, re-render, queries, maintenance.

The local worker, the Lambda worker, the API and the CLI all call these; none of them holds
logic of its own. Decisions come from core.lifecycle (pure); the use cases apply them. Each is
given the ports and a ServiceOptions (plain values the edge takes from the settings), never
Settings itself; `UseCases.build` makes one of each over one shared context.

    context      ServiceOptions, ServiceContext (ports, render gate, running jobs); the
                 Renderer port is core's (re-exported here)
    ingest       uploads, accepted as one unit or withdrawn; Idempotency-Key retries
    process      claim, render, write, commit; give up
    rerender     stale presets rendered again
    queries      records, near-duplicates
    duplicates   duplicateOf, and copies linked after a commit
    maintenance  delete, removals, backfill, redrive, lease recovery
    delivery     the /img route: on-request results, cached under derived/, rendered once
    singleflight identical work at once done once (delivery's renders)
    renditions   render -> renditions written -> final record (also `imgpipe process`'s)
    records      commit, events, leases given back
    dispatch     one job -> one use case; giving up on a job; the use cases as a worker's
                 JobHandler (UseCaseJobs)
"""

from imgpipe.core.ports import Renderer
from imgpipe.service.context import DeliveryOptions, ServiceOptions
from imgpipe.service.dispatch import UseCaseJobs, dispatch, give_up
from imgpipe.service.use_cases import UseCases

__all__ = [
    "DeliveryOptions",
    "Renderer",
    "ServiceOptions",
    "UseCaseJobs",
    "UseCases",
    "dispatch",
    "give_up",
]
