"""The use cases over the ports: ingest, process, re-render, queries, maintenance.

The local worker, the Lambda worker, the API and the CLI all call these; none of them holds
logic of its own. Decisions come from core.lifecycle (pure); the use cases apply them. Each is
given the ports and a ServiceOptions (plain values the edge takes from the settings), never
Settings itself; `UseCases.build` makes one of each over one shared context.

    context      ServiceOptions, the Renderer port, ServiceContext (ports, render gate,
                 running jobs)
    ingest       uploads, accepted as one unit or withdrawn; Idempotency-Key retries
    process      claim, render, write, commit; give up
    rerender     stale presets rendered again
    queries      records, renditions' bytes, near-duplicates
    duplicates   duplicateOf, and copies linked after a commit
    maintenance  delete, removals, backfill, redrive, lease recovery
    renditions   render -> renditions written -> final record (also `imgpipe process`'s)
    records      commit, events, leases given back
    dispatch     one job -> one use case; giving up on a job
"""

from imgpipe.service.context import Renderer, ServiceOptions
from imgpipe.service.dispatch import dispatch, give_up
from imgpipe.service.use_cases import UseCases

__all__ = ["Renderer", "ServiceOptions", "UseCases", "dispatch", "give_up"]
