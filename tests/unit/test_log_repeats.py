"""Error logs are rate-limited by kind: a fault that lasts logs once per window, not per retry."""

from __future__ import annotations

import logging

from imgpipe.jsonlog import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(
    message: str, level: int = logging.ERROR, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("imgpipe.worker", level, __file__, 1, message, (), exc_info)


def test_one_error_of_a_kind_per_window_then_a_count_of_the_rest() -> None:
    clock = Clock()
    repeats = RepeatFilter(window_s=30, clock=clock)
    full = OSError(28, "No space left on device")
    # GIVEN a disk that stays full: the same error 2.4 times a second for 20 s
    passed = []
    for tick in range(48):
        clock.now = tick / 2.4
        passed.append(repeats.filter(record("receiving a job failed; retrying", exc=full)))
    # THEN the first is logged, the other 47 are held back
    assert passed.count(True) == 1 and passed[0]
    # WHEN the window has passed THEN the next one is logged, saying how many were held back
    clock.now = 31
    later = record("receiving a job failed; retrying", exc=full)
    assert repeats.filter(later)
    assert later.repeated == 47  # type: ignore[attr-defined]


def test_other_kinds_and_lower_levels_pass() -> None:
    repeats = RepeatFilter(window_s=30, clock=Clock())
    assert repeats.filter(record("a"))
    assert repeats.filter(record("b"))  # another message
    assert repeats.filter(record("a", exc=ValueError()))  # another exception type
    assert repeats.filter(record("a", level=logging.CRITICAL))  # another level
    for _ in range(5):  # INFO and WARNING without a traceback are never held back
        assert repeats.filter(record("job done", level=logging.INFO))
        assert repeats.filter(record("job failed; will retry", level=logging.WARNING))
