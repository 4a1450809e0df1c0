"""The conformance suites are fetched once the cases are chosen, before the first one runs:
a first download (a minute or more for Pillow's sdist) is no part of any case's hang guard."""

from __future__ import annotations

import pytest
from suites import SUITES, available


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = {
        name
        for item in session.items
        if item.path.parent.name == "conformance"
        for name in SUITES
        if f"[{name}/" in item.nodeid or item.nodeid.endswith(f"[{name}]")
    }
    for name in sorted(wanted):
        available(name)
