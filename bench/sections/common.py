"""What every section of `make bench` shares: the run's options, the corpus, and the wait for
a quiet machine before each section (the load it found goes on the page)."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import corpus
from PIL import Image


def wait_idle(limit_s: float, threshold: float = 0.5) -> str:
    """Wait (30 s polls) until the 1-minute load is below `threshold`, at most `limit_s`."""
    deadline = time.monotonic() + limit_s
    while True:
        load = os.getloadavg()[0]
        if load < threshold:
            return f"1-minute load {load:.2f} at the start"
        if time.monotonic() >= deadline:
            return (
                f"1-minute load {load:.2f} at the start: it never settled below {threshold} "
                f"in {limit_s:.0f} s (other work was running)"
            )
        print(f"waiting for the machine to settle (load {load:.2f})", flush=True)
        time.sleep(30)


@dataclass(frozen=True)
class Corpus:
    files: list[Path]
    megapixels: list[float]
    line: str  # what it is: count, mean MP and MB, the MP range
    largest: Path  # by bytes: the file that sets every engine's peak

    @property
    def n(self) -> int:
        return len(self.files)

    @property
    def total_mp(self) -> float:
        return sum(self.megapixels)


def load_corpus() -> Corpus:
    files = corpus.build()
    megapixels = []
    for f in files:
        with Image.open(f) as im:
            megapixels.append(im.width * im.height / 1e6)
    line = f"{corpus.describe(files)} ({min(megapixels):.1f}–{max(megapixels):.1f} MP)"
    return Corpus(files, megapixels, line, max(files, key=lambda f: f.stat().st_size))


@dataclass
class Bench:
    """One run: its options, its corpus, the load at the start and before each later section."""

    args: argparse.Namespace
    corpus: Corpus
    idle: str  # the load at the start, as the page says it
    section_loads: dict[str, float] = field(default_factory=dict)

    @property
    def skip(self) -> set[str]:
        return set(filter(None, self.args.skip.split(",")))

    def settle(self, section: str) -> None:
        """Before each later section too: other work may have started meanwhile."""
        print(wait_idle(self.args.section_wait), flush=True)
        self.section_loads[section] = os.getloadavg()[0]
        print(f"{section} ...", flush=True)


def start(args: argparse.Namespace) -> Bench:
    """The corpus, then the first wait for a quiet machine."""
    loaded = load_corpus()
    print(f"corpus: {loaded.line}", flush=True)
    idle = wait_idle(args.wait_idle)
    print(idle, flush=True)
    return Bench(args, loaded, idle)
