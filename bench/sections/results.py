"""A run's results, every section's together: what the page is written from."""

from __future__ import annotations

from dataclasses import dataclass

import webp_search

from sections.aws_lambda import LambdaRuns
from sections.common import Bench
from sections.end_to_end import EndToEndRuns
from sections.engines import SideBySide
from sections.levers import LeverResult
from sections.on_request import OnRequestRuns
from sections.pools import LocalRuns


@dataclass(frozen=True)
class Results:
    bench: Bench
    side: SideBySide
    levers: list[LeverResult]
    webp: list[webp_search.Row]
    local: LocalRuns
    e2e: EndToEndRuns
    on_request: OnRequestRuns
    aws: LambdaRuns
    load_after: float  # the 1-minute load once every section was done
    minutes: float  # the whole run
