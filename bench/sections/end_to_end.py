"""The end-to-end section: `imgpipe serve` on loopback taking the corpus' uploads (in name
order, largest first, and the corpus four times over against the raw engine), and the API
under wrk's load."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from typing import NamedTuple

from engine_runs import Engine, EngineRun, run_engine

import e2e as e2e_bench
from sections.common import Bench

# The end-to-end section's sustained run: the corpus this many times over.
SUSTAINED_ROUNDS = 4


class Sustained(NamedTuple):
    rate: float  # images/s end to end (median of the runs)
    raw: float  # images/s of the raw engine on the same list (median)
    held: float  # the overhead: raw over end to end, minus one


@dataclass
class EndToEndRuns:
    """Empty when the section was skipped; `api_error` says why the API was not measured."""

    end_to_end: list[e2e_bench.EndToEnd] = field(default_factory=list)
    # The same uploads with the largest file first: how much of the tail is the order
    reordered: list[e2e_bench.EndToEnd] = field(default_factory=list)
    # Sustained: the corpus SUSTAINED_ROUNDS times over, so that what happens once per batch
    # (the first upload landing, the last image rendering alone) weighs a quarter as much;
    # the raw engine renders the same list (two processes, pre-split), taking turns.
    sustained: list[tuple[e2e_bench.EndToEnd, EngineRun]] = field(default_factory=list)
    loads: list[e2e_bench.Load] = field(default_factory=list)
    api_error: str = ""

    def overhead(self, raw: EngineRun, n: int) -> float | None:
        """The raw engine's images/s (two processes) over the end-to-end images/s, minus one."""
        if not self.end_to_end:
            return None
        e2e_rate = statistics.median(r.per_second for r in self.end_to_end)
        raw_rate = n / raw.seconds
        return raw_rate / e2e_rate - 1

    def sustained_figures(self, n: int) -> Sustained | None:
        if not self.sustained:
            return None
        rate = statistics.median(e.per_second for e, _ in self.sustained)
        raw = statistics.median(n * SUSTAINED_ROUNDS / r.seconds for _, r in self.sustained)
        return Sustained(rate, raw, raw / rate - 1)


def measure(bench: Bench, raw_engine: Engine) -> EndToEndRuns:
    """Each repeat: a fresh server for each order of the uploads, and the raw engine (imgpipe,
    `raw_engine`) on the sustained list, taking turns."""
    runs = EndToEndRuns()
    if "e2e" in bench.skip:
        return runs
    bench.settle("end to end and API")
    files, largest = bench.corpus.files, bench.corpus.largest
    largest_first = [largest, *(f for f in files if f != largest)]
    for _ in range(bench.args.repeats):
        with e2e_bench.serve() as server:
            runs.end_to_end.append(e2e_bench.e2e(server, files))
            if "api" not in bench.skip and not runs.loads and not runs.api_error:
                _api_load(server, runs)
        with e2e_bench.serve() as server:
            runs.reordered.append(e2e_bench.e2e(server, largest_first))
        rounds = files * SUSTAINED_ROUNDS
        raw = run_engine(raw_engine, rounds, 2, pin=False)
        with e2e_bench.serve() as server:
            runs.sustained.append((e2e_bench.e2e(server, rounds), raw))
    return runs


def _api_load(server: e2e_bench.Server, runs: EndToEndRuns) -> None:
    """wrk against a record and a list, on the first server only; why not, if it cannot run."""
    try:
        for route in (f"/images/{runs.end_to_end[-1].ids[0]}", "/images?limit=50"):
            runs.loads.append(e2e_bench.api_load(server, route))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        runs.api_error = str(exc)
