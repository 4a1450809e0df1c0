"""service.hits.HitMemory: the byte budget is kept, least recently used out first, and a
result over its share of the budget is not kept."""

from __future__ import annotations

from imgpipe.service.hits import LARGEST_SHARE, HitMemory, Remembered


def entry(size: int, name: str = "a") -> Remembered[bytes]:
    return Remembered(name, (1, "2026-01-01T00:00:00.000Z"), b"x" * size, size)


def test_the_budget_is_kept_least_recently_used_out_first() -> None:
    memory: HitMemory[bytes] = HitMemory(budget_bytes=1600)
    for n in range(15):
        memory.put((f"/p{n}", "default"), entry(100))
    assert memory.total_bytes == 1500
    assert memory.get(("/p0", "default")) is not None  # now the most recently used
    memory.put(("/p15", "default"), entry(100))
    memory.put(("/p16", "default"), entry(100))
    assert memory.total_bytes <= 1600
    assert memory.get(("/p0", "default")) is not None
    assert memory.get(("/p1", "default")) is None  # the least recently used went
    assert memory.get(("/p16", "default")) is not None


def test_a_result_over_its_share_is_not_kept() -> None:
    memory: HitMemory[bytes] = HitMemory(budget_bytes=16 * 1000)
    memory.put(("/big", "webp"), entry(1000 * 16 // LARGEST_SHARE + 1))
    assert memory.get(("/big", "webp")) is None
    assert memory.total_bytes == 0
    memory.put(("/small", "webp"), entry(1000))
    assert memory.get(("/small", "webp")) == entry(1000)


def test_a_zero_budget_keeps_nothing_and_forget_frees() -> None:
    assert not HitMemory[bytes](budget_bytes=0).fits(1)
    memory: HitMemory[bytes] = HitMemory(budget_bytes=1600)
    memory.put(("/a", "avif"), entry(100))
    memory.put(("/a", "avif"), entry(50))  # replaced, counted once
    assert memory.total_bytes == 50
    memory.forget(("/a", "avif"))
    assert (memory.total_bytes, len(memory)) == (0, 0)
