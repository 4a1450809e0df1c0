"""The on-request section: thumbor, ipx and imgpipe's `/img` route asked for the same transforms
of the corpus' camera-like 12 MP JPEGs on loopback, each server pinned to one core and the
client on the other: cold renders per second, cached hits per second with their p50 and p99,
output bytes and SSIM. Each repeat starts every server afresh (an empty result cache), taking
turns; medians of the repeats."""

from __future__ import annotations

import io
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import quality
import shrink_on_load
from http_runs import Pass, PeerError, get_bodies, get_pass
from imgpipe_peer import Imgpipe
from peer_servers import Ipx, Peer, PeerUnavailable, Request, Server, Thumbor, stage_links
from PIL import Image

from sections.common import Bench

FILES = 8  # the corpus' first camera-like 12 MP JPEGs (orientations 1, 6, 3 and 8)
COLD_ROUNDS = 3  # a cold pass asks for each file this many times, each time under a new name
HITS = 400  # a hits pass asks for the primed URLs, in turn, this many times at most
HIT_SECONDS = 5.0  # or for this long: ipx keeps no results, so each of its hits is a render
REQUESTS = (
    Request("WebP q80", 400, 300, "webp", 80),
    Request("JPEG q82", 400, 300, "jpeg", 82),
)
# Then each file at these fills too, as a page's srcset asks for one image at several sizes:
# renders of an image rendered before, where imgpipe reads its twin (engine/twin.py).
NEXT_SIZES = ((320, 240), (288, 216), (256, 192))


@dataclass(frozen=True)
class PeerRun:
    """One server from start to stop: per request (by name) its cold pass and its hits."""

    cold: dict[str, Pass]
    hits: dict[str, Pass]
    nexts: dict[str, Pass] = field(default_factory=dict)  # NEXT_SIZES of the primed files


@dataclass(frozen=True)
class Outputs:
    """A server's answers to one request over the files, as a user sees them."""

    kb: float  # mean bytes per answer / 1000
    ssim: float  # mean SSIM of the luma against the reference fill (quality.Reference.fill)
    metadata: int  # answers that carry EXIF or an ICC profile
    wrong_size: int  # answers that are not the size asked for


@dataclass(frozen=True)
class Figures:
    """A server's medians for one request."""

    cold_per_s: float
    cold_cpu_ms: float  # the server's CPU per cold render
    hits_per_s: float
    hit_p50_ms: float
    hit_p99_ms: float
    hit_cpu_ms: float  # the server's CPU per cached hit
    outputs: Outputs
    # median cold latency of the files stored upright, and of those stored rotated (EXIF
    # orientation other than 1: the server must turn them); None when there are none
    cold_upright_ms: float | None = None
    cold_rotated_ms: float | None = None
    next_per_s: float | None = None  # renders at NEXT_SIZES of images rendered before
    next_cpu_ms: float | None = None


@dataclass
class OnRequestRuns:
    """Empty (files 0) when the section was skipped."""

    files: int = 0
    rotated: list[bool] = field(default_factory=list)  # per file: stored rotated (EXIF)
    versions: dict[str, str] = field(default_factory=dict)  # per server: what was measured
    missing: dict[str, str] = field(default_factory=dict)  # per server: why it was not
    runs: dict[str, list[PeerRun]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Outputs]] = field(default_factory=dict)  # server, request
    shrink: list[shrink_on_load.Row] = field(default_factory=list)  # imgpipe's decode choices
    decode_floor_ms: float | None = None  # libjpeg-turbo's decode alone at ipx's scale

    def figures(self, peer: str, request: str) -> Figures | None:
        """The medians of the runs, or None when `peer` was not measured."""
        runs = self.runs.get(peer)
        if not runs or peer in self.missing:
            return None
        cold = [run.cold[request] for run in runs]
        hits = [run.hits[request] for run in runs]
        nexts = [run.nexts[request] for run in runs if request in run.nexts]
        return Figures(
            statistics.median(p.per_second for p in cold),
            statistics.median(p.cpu_ms for p in cold),
            statistics.median(p.per_second for p in hits),
            statistics.median(p.latency(0.5) for p in hits),
            statistics.median(p.latency(0.99) for p in hits),
            statistics.median(p.cpu_ms for p in hits),
            self.outputs[peer][request],
            *self._by_orientation(cold),
            statistics.median(p.per_second for p in nexts) if nexts else None,
            statistics.median(p.cpu_ms for p in nexts) if nexts else None,
        )

    def _by_orientation(self, cold: list[Pass]) -> tuple[float | None, float | None]:
        """Median cold latency of the upright files, then of the rotated ones: a cold pass
        asks for the files in order, COLD_ROUNDS times over."""
        if not self.rotated:
            return None, None
        split: dict[bool, list[float]] = {False: [], True: []}
        for p in cold:
            for n, ms in enumerate(p.latencies_ms):
                split[self.rotated[n % len(self.rotated)]].append(ms)
        upright, rotated = split[False], split[True]
        return (
            statistics.median(upright) if upright else None,
            statistics.median(rotated) if rotated else None,
        )


def camera_files(files: list[Path]) -> list[Path]:
    return [f for f in files if f.name.startswith("camera-")][:FILES]


def _orientation(file: Path) -> int:
    with Image.open(file) as im:
        return int(im.getexif().get(0x0112, 1))


def measure(bench: Bench, peers: list[Peer] | None = None) -> OnRequestRuns:
    """Install the peers, then per repeat each server in turn; SSIM once the clock is off."""
    if "on_request" in bench.skip:
        return OnRequestRuns()
    bench.settle("on request")
    files = camera_files(bench.corpus.files)
    runs = OnRequestRuns(files=len(files), rotated=[_orientation(f) != 1 for f in files])
    peers = peers if peers is not None else [Thumbor(), Ipx(), Imgpipe(), Imgpipe(fast=True)]
    for peer in peers:
        try:
            runs.versions[peer.label] = peer.install()
        except PeerUnavailable as exc:
            runs.missing[peer.label] = str(exc)
    answers: dict[str, dict[str, list[bytes]]] = {}
    with tempfile.TemporaryDirectory(prefix="imgpipe-on-request-") as tmp:
        originals = Path(tmp) / "originals"
        originals.mkdir()
        for file in files:  # copied once: the nonces' hard links need one filesystem
            shutil.copyfile(file, originals / file.name)
        for repeat in range(bench.args.repeats):
            for peer in (p for p in peers if p.label not in runs.missing):
                print(f"on request: {peer.label}, run {repeat + 1} ...", flush=True)
                work = Path(tmp) / f"{peer.label}-{repeat}"
                work.mkdir()
                try:
                    run, bodies = one_run(peer, originals, files, work, str(repeat))
                except (PeerUnavailable, PeerError, OSError) as exc:
                    runs.missing[peer.label] = str(exc)[:300]
                    continue
                runs.runs.setdefault(peer.label, []).append(run)
                answers.setdefault(peer.label, bodies)  # the first run's
    print("on request: quality ...", flush=True)
    runs.outputs = score(files, answers)
    print("on request: shrink on load ...", flush=True)
    runs.shrink = shrink_on_load.measure(files, REQUESTS)
    fill = REQUESTS[0]  # every request is the same fill
    runs.decode_floor_ms = shrink_on_load.decode_floor_ms(files, fill.width, fill.height)
    return runs


def one_run(
    peer: Peer, originals: Path, files: list[Path], work: Path, tag: str
) -> tuple[PeerRun, dict[str, list[bytes]]]:
    """A fresh server: per request a warm-up render (untimed), the cold pass, the files'
    own URLs rendered once (their answers are kept), the hits pass on those URLs, then the
    files at NEXT_SIZES."""
    cold: dict[str, Pass] = {}
    hits: dict[str, Pass] = {}
    nexts: dict[str, Pass] = {}
    bodies: dict[str, list[bytes]] = {}
    with peer.serve(originals, files, work) as server:
        for request in REQUESTS:
            warm = f"{tag}-{request.format}-warm"
            _staged(peer, server, originals, files[:1], [warm])
            get_bodies(server, [peer.path(files[0], request, warm)])
            order = files * COLD_ROUNDS
            nonces = [f"{tag}-{request.format}-{n}" for n in range(len(order))]
            _staged(peer, server, originals, order, nonces)
            paths = [peer.path(f, request, n) for f, n in zip(order, nonces, strict=True)]
            cold[request.name] = get_pass(server, paths)
            primed = [peer.path(f, request, "") for f in files]
            bodies[request.name] = get_bodies(server, primed)
            cycle = (primed * (HITS // len(primed) + 1))[:HITS]
            hits[request.name] = get_pass(server, cycle, limit_s=HIT_SECONDS)
            sizes = [replace(request, width=w, height=h) for w, h in NEXT_SIZES]
            nexts[request.name] = get_pass(
                server, [peer.path(f, r, "") for r in sizes for f in files]
            )
    return PeerRun(cold, hits, nexts), bodies


def _staged(
    peer: Peer, server: Server, originals: Path, files: list[Path], nonces: list[str]
) -> None:
    """Each file new to every cache of `server` under its nonce (untimed)."""
    stage_links(originals, files, nonces)
    peer.stage(server, files, nonces)


def score(
    files: list[Path], answers: dict[str, dict[str, list[bytes]]]
) -> dict[str, dict[str, Outputs]]:
    """Every server's answers per request: bytes, SSIM against the reference at the answer's
    own size, and what metadata they carry. One reference decode per file, shared."""
    ssims: dict[tuple[str, str], list[float]] = {}
    for n, file in enumerate(files):
        reference = quality.Reference(file)
        fills: dict[tuple[int, int], quality.Array] = {}
        for peer, by_request in answers.items():
            for request, bodies in by_request.items():
                luma = quality.decode_luma(bodies[n])
                size = (luma.shape[1], luma.shape[0])
                if size not in fills:
                    fills[size] = reference.fill(*size)
                ssims.setdefault((peer, request), []).append(quality.ssim(luma, fills[size]))
    wanted = {r.name: (r.width, r.height) for r in REQUESTS}
    return {
        peer: {
            request: outputs(bodies, ssims[(peer, request)], wanted[request])
            for request, bodies in by_request.items()
        }
        for peer, by_request in answers.items()
    }


def outputs(bodies: list[bytes], ssims: list[float], size: tuple[int, int]) -> Outputs:
    metadata = wrong_size = 0
    for data in bodies:
        with Image.open(io.BytesIO(data)) as im:
            metadata += bool(im.info.get("exif") or im.info.get("icc_profile"))
            wrong_size += im.size != size
    kb = statistics.mean(len(b) for b in bodies) / 1000
    return Outputs(kb, statistics.mean(ssims), metadata, wrong_size)
