"""The page's side-by-side part: the engines' table, each rendition's size and SSIM, and where
the time goes on one core (with the ceiling that sets on any lead at identical settings)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from engine_runs import EngineRun
from sections.common import Corpus
from sections.engines import SideBySide

# The goal: imgpipe's images/s per core over the best peer's.
GOAL_LEAD = 1.25
# The engine every speed in the side-by-side table is compared with.
BASE = "Pillow"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×"


@dataclass(frozen=True)
class Figures:
    """The side-by-side runs as the page reads them: per image, per corpus, per engine."""

    side: SideBySide
    corpus: Corpus

    @property
    def n(self) -> int:
        return self.corpus.n

    @property
    def one(self) -> dict[str, EngineRun]:
        return self.side.one

    @property
    def ssim(self) -> dict[str, dict[str, float]]:
        return self.side.ssim

    @property
    def names(self) -> list[str]:
        """The renditions' file names ("large.jpg", ...), in order."""
        return sorted({k for run in self.one.values() for k in run.bytes})

    @property
    def peers(self) -> list[str]:
        """Pillow and sharp at identical settings (not sharp at its own defaults)."""
        return [
            label
            for label in self.one
            if label.startswith(("Pillow", "sharp")) and "defaults" not in label
        ]

    @property
    def best_peer(self) -> str:
        return max(self.peers, key=lambda label: self.n / self.one[label].seconds)

    def kb(self, run: EngineRun, suffix: str = "") -> float:
        return sum(v for k, v in run.bytes.items() if k.endswith(suffix)) / self.n / 1000

    def mean_ssim(self, label: str, suffix: str) -> float:
        return statistics.mean(v for k, v in self.ssim[label].items() if k.endswith(suffix))

    def per_image(self, run: EngineRun) -> float:
        return run.seconds / self.n * 1000

    def encoding(self, run: EngineRun) -> float:
        return sum(run.encode_ms) / self.n

    def working(self, label: str) -> float:
        """An engine's peak less what its process held once its imports were done."""
        return self.one[label].peak_rss_mb - self.one[label].baseline_rss_mb


def side_by_side(f: Figures) -> list[str]:
    """The engines' table, then each rendition's KB and SSIM."""
    one, two, n = f.one, f.side.two, f.n
    lines = [
        "",
        "## Side by side",
        "",
        "| engine | images/s, one core | MP/s, one core | images/s, two processes | "
        "peak RSS, one process (after imports) | output KB per image (JPEG + WebP) | "
        "SSIM JPEG / WebP | "
        f"speed vs {BASE} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in one.items():
        rate = n / run.seconds
        lines.append(
            f"| {label} | {rate:.2f} | {f.corpus.total_mp / run.seconds:.1f} | "
            f"{n / two[label].seconds:.2f} | {run.peak_rss_mb:.0f} MB "
            f"({run.baseline_rss_mb:.0f}) | "
            f"{f.kb(run):.0f} ({f.kb(run, '.jpg'):.0f} + {f.kb(run, '.webp'):.0f}) | "
            f"{f.mean_ssim(label, '.jpg'):.4f} / {f.mean_ssim(label, '.webp'):.4f} | "
            f"{fmt_ratio(one[BASE].seconds / run.seconds)} |"
        )
    return lines + per_rendition(f)


def per_rendition(f: Figures) -> list[str]:
    names = f.names
    lines = [
        "",
        "Per rendition (KB per image, SSIM):",
        "",
        "| engine | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, run in f.one.items():
        cells = [
            f"{run.bytes[k] / f.n / 1000:.1f} / {f.ssim[label].get(k, float('nan')):.4f}"
            for k in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def time_on_one_core(f: Figures) -> list[str]:
    """Each engine's ms per image, in the encodes and the rest; then the ceiling."""
    lines = [
        "",
        "Where the time goes on one core (ms per image; the encodes are the CPU time of Pillow's "
        "Image.save, through which every Python engine here writes its JPEG and WebP files, "
        "with the same libjpeg-turbo and libwebp):",
        "",
        "| engine | ms per image | in the six encodes | everything else |",
        "|---|---:|---:|---:|",
    ]
    for label, run in f.one.items():
        if run.encode_ms and f.encoding(run) > 0:
            lines.append(
                f"| {label} | {f.per_image(run):.0f} | {f.encoding(run):.0f} "
                f"({f.encoding(run) / f.per_image(run):.0%}) | "
                f"{f.per_image(run) - f.encoding(run):.0f} |"
            )
    return lines + ceiling(f)


def ceiling(f: Figures) -> list[str]:
    """How fast imgpipe would have to be for the goal's lead, against what the floor does."""
    ip, fl, peer = f.one["imgpipe"], f.one["floor"], f.one[f.best_peer]
    # Only when both were clocked: with libvips writing the files (encoder="libvips"), no
    # Image.save runs and there is no encode figure to reason from.
    if f.encoding(ip) > 0 and f.encoding(fl) > 0:
        room = f.per_image(peer) / GOAL_LEAD - f.encoding(ip)
        floor_rest = f.per_image(fl) - f.encoding(fl)
        verdict = (
            "out of reach even of the floor" if floor_rest > room else "within what the floor does"
        )
        text = CEILING.format(
            goal=GOAL_LEAD,
            best=f.best_peer,
            need=f.per_image(peer) / GOAL_LEAD,
            room=room,
            floor_rest=floor_rest,
            verdict=verdict,
            free=f.per_image(peer) / f.encoding(ip),
        )
        return ["", text]
    return []


CEILING = """What that leaves: for imgpipe to lead {best} by {goal}×, it would have to render an
image in {need:.0f} ms, of which the six encodes already take the figure above; that leaves
{room:.0f} ms per image for everything else. The floor, which does nothing else but the
shrink-on-load decode and the cascade, spends {floor_rest:.0f} ms there. So at these output
settings {goal}× is {verdict}: the decode (libjpeg-turbo in every engine) and the encodes are
shared, and even if everything but the six encodes, the decode included, took no time at all,
the lead would be {free:.2f}×."""
