"""The libwebp section: libwebp's own settings searched one at a time (bench/webp_search.py)."""

from __future__ import annotations

import webp_search

from sections.common import Bench


def measure(bench: Bench) -> list[webp_search.Row]:
    if "webp" in bench.skip:
        return []
    bench.settle("libwebp settings")
    return webp_search.search(bench.corpus.files[::3])
