"""docs/benchmarks.md and its chart, written from a run's results (bench/sections/): one
module per part of the page, bench/report/page.py putting them in order."""
