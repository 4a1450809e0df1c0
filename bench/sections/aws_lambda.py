"""The Lambda section: the deployment zip's size, the handlers' cold imports under python3.13
(bench/lambda_cost.py); the page prices a render from the side-by-side section's time."""

from __future__ import annotations

from dataclasses import dataclass

import lambda_cost

from sections.common import Bench


@dataclass(frozen=True)
class LambdaRuns:
    report: lambda_cost.LambdaReport | None = None
    error: str = ""  # why there is no report, when the section ran


def measure(bench: Bench) -> LambdaRuns:
    if "lambda" in bench.skip:
        return LambdaRuns()
    bench.settle("lambda")
    try:
        return LambdaRuns(lambda_cost.measure())
    except Exception as exc:  # no python3.13, no network: say so in the doc
        return LambdaRuns(error=f"{type(exc).__name__}: {str(exc)[:300]}")
