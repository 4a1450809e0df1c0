"""The strings of `imgpipe cost`'s table: dollars, quantities with their unit, unit prices."""

from __future__ import annotations

from imgpipe.ops.cost.result import LineItem


def format_usd(value: float) -> str:
    if 0 < value < 0.005:
        return "<$0.01"
    return f"${value:,.2f}"


def format_quantity(line: LineItem) -> str:
    q = line.quantity
    text = f"{q:,.0f}" if q >= 100 else f"{q:,.2f}".rstrip("0").rstrip(".")
    unit = line.unit
    if q == 1 and unit.endswith("s") and not unit.startswith("GB"):
        unit = unit[:-1]  # 1 dashboard
    return f"{text} {unit}"


def format_price(line: LineItem) -> str:
    text = f"{line.price:.10f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{line.price:.2f}"
    steps = {1: "", 1000: "1K ", 10_000: "10K ", 1_000_000: "1M "}
    per = steps.get(int(line.per), f"{line.per:g} ")
    unit = line.unit
    if line.scaling == "fixed" and line.per == 1 and unit.endswith("s"):
        unit = unit[:-1]  # $0.30 / metric (a month)
    return f"${text} / {per}{unit}"
