"""make bench's on-request section on canned data: the figures it takes from its passes, the
table and goals it writes, what each peer is asked and how thumbor is configured. No server,
no network: the section runs for real only under `make bench`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import procs
import quality
from http_runs import Pass
from imgpipe_peer import Imgpipe, has_img_route
from peer_servers import Ipx, Request, Thumbor, stage_links, thumbor_conf
from report import on_request as page
from sections.on_request import REQUESTS, OnRequestRuns, Outputs, PeerRun, outputs

WEBP = Request("WebP q80", 400, 300, "webp", 80)


def passes(per_second: float, hit_ms: float, runs: int = 3) -> list[PeerRun]:
    """`runs` canned runs whose medians are `per_second` cold and hits of `hit_ms`."""
    made = []
    for spread in (0.8, 1.0, 1.25)[:runs]:
        cold = Pass(24 / (per_second * spread), [1000 / per_second] * 24, [18_000] * 24, 2.4)
        latencies = [hit_ms * spread] * 98 + [hit_ms * spread * 10, hit_ms * spread * 20]
        hits = Pass(hit_ms * spread / 10, latencies, [18_000] * 100, 0.1)
        nexts = Pass(24 / (per_second * 3 * spread), [300 / per_second] * 24, [9_000] * 24, 0.8)
        by_request = {r.name: cold for r in REQUESTS}, {r.name: hits for r in REQUESTS}
        made.append(PeerRun(*by_request, {r.name: nexts for r in REQUESTS}))
    return made


def canned(**peers: tuple[float, float, float, float]) -> OnRequestRuns:
    """Runs of each peer: (cold renders/s, hit ms, KB, SSIM), the same for every request."""
    runs = OnRequestRuns(files=8, rotated=[False, True, True, True, False, True, False, True])
    for label, (per_second, hit_ms, kb, ssim) in peers.items():
        runs.versions[label] = f"{label} 1.0"
        runs.runs[label] = passes(per_second, hit_ms)
        runs.outputs[label] = {r.name: Outputs(kb, ssim, 0, 0) for r in REQUESTS}
    return runs


def test_a_peers_figures_are_the_medians_of_its_runs() -> None:
    runs = canned(thumbor=(8.0, 2.0, 18.3, 0.971))
    f = runs.figures("thumbor", "WebP q80")
    assert f is not None
    assert f.cold_per_s == pytest.approx(8.0)
    assert f.cold_cpu_ms == pytest.approx(100.0)  # 2.4 CPU-s over 24 renders
    assert f.hits_per_s == pytest.approx(500.0)  # 100 in 0.2 s
    assert f.hit_p50_ms == pytest.approx(2.0)
    # nearest rank: the 99th of 100 latencies is the second slowest (10x), not the slowest
    assert f.hit_p99_ms == pytest.approx(20.0)
    assert f.hit_cpu_ms == pytest.approx(1.0)  # 0.1 CPU-s over 100 hits
    assert runs.figures("ipx", "WebP q80") is None


def test_cold_latency_is_split_between_upright_and_rotated_files() -> None:
    # GIVEN two files, the second stored rotated, asked for three times over in a cold pass
    runs = canned(thumbor=(8.0, 2.0, 18.3, 0.971))
    runs.files, runs.rotated = 2, [False, True]
    cold = Pass(1.0, [50.0, 280.0, 54.0, 290.0, 58.0, 285.0], [18_000] * 6, 0.9)
    for run in runs.runs["thumbor"]:
        run.cold.update({r.name: cold for r in REQUESTS})
    # THEN the rotated file's renders are told apart from the upright one's
    f = runs.figures("thumbor", "WebP q80")
    assert f is not None
    assert (f.cold_upright_ms, f.cold_rotated_ms) == (54.0, 285.0)
    assert "WebP q80: thumbor 54 vs 285 ms; JPEG q82: thumbor 54 vs 285 ms." in "".join(
        page.orientation(runs)
    )


def test_the_table_compares_with_thumbor_and_ipx_and_says_why_imgpipe_is_missing() -> None:
    # GIVEN thumbor and ipx measured, and imgpipe's route not built yet
    runs = canned(thumbor=(8.0, 2.0, 18.3, 0.971), ipx=(20.0, 50.0, 17.5, 0.969))
    runs.missing["imgpipe"] = "the /img route is not built yet"
    lines = page.on_request(runs)
    (header,) = (line for line in lines if line.startswith("| request | server | cold"))
    rows = {
        line.split(" | ")[1]: line
        for line in lines
        if line.startswith("| WebP q80 |") and line.count("|") == header.count("|")
    }
    # THEN each peer's row has its ratios to the others, and imgpipe's row says why not
    assert (
        "| 20.0 | 100 ms | 2.50× | 1.00× | 20 | 50.0 ms | 500.0 ms | 1.00 ms | 0.04× |"
        in rows["ipx 1.0"]
    )
    assert (
        "| 8.0 | 100 ms | 1.00× | 0.40× | 500 | 2.0 ms | 20.0 ms | 1.00 ms | 1.00× |"
        in rows["thumbor 1.0"]
    )
    assert "not measured: the /img route is not built yet" in rows["imgpipe"]
    # AND the three goals are reported as not measured, neither met nor failed
    goals = [line for line in lines if line.startswith("| cold renders") or "cached hits ≥" in line]
    assert len(goals) == 3
    assert all("| not measured: imgpipe: the /img route is not built yet | – |" in g for g in goals)


def test_next_sizes_compare_the_renders_of_images_rendered_before() -> None:
    # GIVEN runs whose next-sizes passes go at 3x their cold renders (canned's passes)
    runs = canned(thumbor=(8.0, 2.0, 18.3, 0.971), ipx=(20.0, 50.0, 17.5, 0.969))
    runs.runs["imgpipe"] = passes(40.0, 1.0)
    runs.versions["imgpipe"] = "imgpipe 1.0"
    runs.outputs["imgpipe"] = runs.outputs["ipx"]
    lines = page.on_request(runs)
    # THEN a table of their own says each server's rate, CPU and ratios to thumbor and ipx
    start = next(n for n, line in enumerate(lines) if line.startswith("**Next sizes.**"))
    table = [line for line in lines[start:] if line.startswith("| JPEG q82 |")][:3]
    assert table == [
        "| JPEG q82 | thumbor 1.0 | 24.0 | 33 ms | 1.00× | 0.40× |",
        "| JPEG q82 | ipx 1.0 | 60.0 | 33 ms | 2.50× | 1.00× |",
        "| JPEG q82 | imgpipe 1.0 | 120.0 | 33 ms | 5.00× | 2.00× |",
    ]
    assert "24 renders of images it has rendered once" in lines[start]


def test_no_next_sizes_table_without_their_passes() -> None:
    runs = canned(thumbor=(8.0, 2.0, 18.3, 0.971))
    for run in runs.runs["thumbor"]:
        run.nexts.clear()
    assert not any(line.startswith("**Next sizes.**") for line in page.on_request(runs))


FAST_LIKE_IPX = (21.0, 0.9, 17.5, 0.9690)


@pytest.mark.parametrize(
    ("imgpipe", "fast", "met"),
    [
        # 2.1x thumbor, 0.84x ipx, hits 0.5x; fast 1.05x ipx
        ((16.8, 4.0, 18.3, 0.9706), FAST_LIKE_IPX, ["yes", "no", "no", "no"]),
        ((24.0, 0.9, 17.0, 0.9710), (22.0, 0.9, 17.5, 0.9690), ["yes", "yes", "yes", "yes"]),
        # larger than ipx's and thumbor's
        ((24.0, 0.9, 18.4, 0.9710), FAST_LIKE_IPX, ["no", "no", "no", "yes"]),
        # thumbor's SSIM - 0.001; fast 1.2x ipx but 0.001 under its SSIM
        ((24.0, 0.9, 17.0, 0.9700), (24.0, 0.9, 17.5, 0.9680), ["no", "yes", "no", "yes"]),
    ],
)
def test_goals_need_the_lead_at_no_more_bytes_and_no_lower_ssim(
    imgpipe: tuple[float, float, float, float],
    fast: tuple[float, float, float, float],
    met: list[str],
) -> None:
    runs = canned(
        thumbor=(8.0, 2.0, 18.3, 0.9710),
        ipx=(20.0, 50.0, 17.5, 0.9690),
        imgpipe=imgpipe,
        **{"imgpipe-fast": fast},
    )
    goals = page.goals(runs)[3:]
    assert [g.rsplit(" | ", 1)[1].rstrip(" |") for g in goals] == met
    assert "WebP q80: " in goals[0] and "; JPEG q82: " in goals[0]


def test_the_ceiling_over_ipx_is_its_cpu_over_the_engine_alone_at_its_settings() -> None:
    import shrink_on_load

    # GIVEN ipx at 100 ms of CPU per cold render, imgpipe's engine at ipx's settings at 80 ms
    # (WebP) and 90 ms (JPEG) in the bench's process, the decode alone at 70 ms
    runs = canned(ipx=(8.0, 2.0, 17.5, 0.969), imgpipe=(8.0, 2.0, 17.5, 0.969))
    fast = shrink_on_load.CHOICES[1][0]
    runs.shrink = [
        shrink_on_load.Row("WebP q80", fast, 17.5, 0.969, 80.0),
        shrink_on_load.Row("JPEG q82", fast, 22.5, 0.967, 90.0),
    ]
    assert page.ceiling(runs) == []  # no floor measured: no line
    runs.decode_floor_ms = 70.0
    # THEN no lead over ipx could pass 1.25x (WebP) and 1.11x (JPEG)
    (text,) = (line for line in page.goals(runs) if "bounds any lead" in line)
    assert "WebP q80: 100 over 80 ms, 1.25×; JPEG q82: 100 over 90 ms, 1.11×." in text
    assert "decode alone takes 70 ms per file" in text


def test_each_peer_is_asked_the_same_transform_in_its_own_grammar() -> None:
    photo = Path("camera-00.jpg")
    assert Thumbor().path(photo, WEBP, "") == (
        "/unsafe/400x300/filters:format(webp):quality(80):no_upscale()/camera-00.jpg"
    )
    assert Ipx().path(photo, WEBP, "1-webp-3") == "/s_400x300,f_webp,q_80/c/1-webp-3/camera-00.jpg"
    imgpipe = Imgpipe()
    # an image of its own per nonce (Imgpipe.stage uploads it again): a twin serves every URL
    # of one image, so a cachebuster alone would not be new to every cache
    imgpipe.ids = {("camera-00.jpg", ""): "img-1", ("camera-00.jpg", "7"): "img-2"}
    jpeg = Request("JPEG q82", 400, 300, "jpeg", 82)
    assert (
        imgpipe.path(photo, jpeg, "7")
        == "/img/insecure/rs:fill:400:300:0/q:82/cb:7/plain/img-2@jpg"
    )
    assert imgpipe.path(photo, WEBP, "") == "/img/insecure/rs:fill:400:300:0/q:80/plain/img-1@webp"


def test_a_nonce_is_another_name_for_the_same_original(tmp_path: Path) -> None:
    (tmp_path / "camera-00.jpg").write_bytes(b"original")
    stage_links(tmp_path, [Path("camera-00.jpg")] * 2, ["a", "b"])
    linked = [tmp_path / "c" / nonce / "camera-00.jpg" for nonce in ("a", "b")]
    assert [p.read_bytes() for p in linked] == [b"original"] * 2
    assert {p.stat().st_ino for p in linked} == {(tmp_path / "camera-00.jpg").stat().st_ino}


def test_thumbor_conf_keeps_results_for_unsafe_urls_and_applies_orientation(
    tmp_path: Path,
) -> None:
    # thumbor reads its conf as Python (derpconf): run it as thumbor would
    settings: dict[str, object] = {}
    exec(thumbor_conf(tmp_path / "originals", tmp_path / "results"), {}, settings)
    assert settings["RESULT_STORAGE"] == "thumbor.result_storages.file_storage"
    assert settings["RESULT_STORAGE_FILE_STORAGE_ROOT_PATH"] == str(tmp_path / "results")
    assert settings["RESULT_STORAGE_STORES_UNSAFE"] is True
    assert settings["FILE_LOADER_ROOT_PATH"] == str(tmp_path / "originals")
    assert settings["RESPECT_ORIENTATION"] is True
    assert settings["PROGRESSIVE_JPEG"] is False


def test_imgpipe_is_measured_only_once_it_serves_img() -> None:
    assert not has_img_route({"paths": {"/images": {}, "/images/{image_id}": {}}})
    assert has_img_route({"paths": {"/img/{signature}/{options}/{source}": {}}})
    assert not has_img_route({})


def test_outputs_count_metadata_and_wrong_sizes() -> None:
    def webp(size: tuple[int, int], exif: bool) -> bytes:
        buf = io.BytesIO()
        extra = {}
        img = Image.new("RGB", size, (200, 100, 50))
        if exif:
            tags = Image.Exif()
            tags[0x010F] = "Apple"
            extra = {"exif": tags.tobytes()}
        img.save(buf, "WEBP", quality=80, **extra)
        return buf.getvalue()

    bodies = [webp((400, 300), False), webp((400, 300), True), webp((300, 400), False)]
    got = outputs(bodies, [0.96, 0.97, 0.98], (400, 300))
    assert got.metadata == 1
    assert got.wrong_size == 1
    assert got.ssim == pytest.approx(0.97)
    assert got.kb == pytest.approx(sum(map(len, bodies)) / 3 / 1000)


def test_the_fill_reference_is_the_centre_cut_to_the_aspect(tmp_path: Path) -> None:
    # GIVEN a 2:1 picture whose centre square is a texture, with flat bands either side
    rng = np.random.default_rng(5)
    centre = np.kron(rng.integers(0, 256, (50, 50)), np.ones((4, 4))).astype(np.uint8)
    wide = np.concatenate([np.zeros((200, 100)), centre, np.full((200, 100), 255)], axis=1)
    Image.fromarray(wide.astype(np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(centre).save(tmp_path / "centre.png")
    # THEN its 1:1 fill is the centre square resized, and not the whole picture squeezed
    fill = quality.Reference(tmp_path / "wide.png").fill(100, 100)
    assert quality.ssim(fill, quality.Reference(tmp_path / "centre.png").at(100, 100)) > 0.999
    assert quality.ssim(fill, quality.Reference(tmp_path / "wide.png").at(100, 100)) < 0.5


def test_tree_cpu_counts_a_child_process() -> None:
    # GIVEN a child that burns CPU for a moment
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 20  # a hang guard
        while time.monotonic() < deadline and procs.tree_cpu_s(child.pid) < 0.25:
            time.sleep(0.05)
        # THEN this process's tree holds the child's CPU on top of its own
        own = time.process_time()
        assert procs.tree_cpu_s(os.getpid()) >= own + 0.25 - 0.05
        assert procs.tree_rss_kb(os.getpid()) > procs.tree_rss_kb(child.pid) > 0
    finally:
        child.kill()
        child.wait()


PAGE = "# imgpipe benchmarks\n\nintro\n\n## API under load (loopback)\n\nrows\n\n## Lambda\n\nlam\n"


def test_the_part_goes_where_the_page_puts_it_and_the_rest_is_kept() -> None:
    part = page.on_request(canned(thumbor=(8.0, 2.0, 18.3, 0.971)))
    # GIVEN a page written before the markers: the part goes before Lambda's
    first = page.replaced(PAGE, part)
    assert first.startswith("# imgpipe benchmarks\n\nintro\n\n## API under load (loopback)\n\nrows")
    assert first.endswith(f"{page.END}\n\n## Lambda\n\nlam\n")
    assert (
        first.index("## API under load") < first.index("## On request") < first.index("## Lambda")
    )
    # WHEN it is measured again THEN only the part between the markers changes
    again = page.on_request(canned(thumbor=(9.0, 1.0, 17.0, 0.97)))
    second = page.replaced(first, again)
    assert second.split(page.START)[0] == first.split(page.START)[0]
    assert second.split(page.END)[1] == first.split(page.END)[1]
    assert "\n".join(again) in second and "\n".join(part) not in second
    assert page.replaced(second, again) == second


def test_the_full_page_marks_the_part_as_replaced_marks_it() -> None:
    part = page.on_request(canned(thumbor=(8.0, 2.0, 18.3, 0.971)))
    written = "\n".join(["# imgpipe benchmarks", "", "x", *page.marked(part), "", "## Lambda"])
    assert page.replaced(written, part) == written
    assert page.marked([]) == []


def test_write_section_rewrites_the_page_file_in_place(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    part = page.on_request(canned(thumbor=(8.0, 2.0, 18.3, 0.971)))
    assert not page.write_section(out, part)  # no page yet: nothing written
    assert not out.exists()
    out.write_text(PAGE, encoding="utf-8")
    assert not page.write_section(out, [])  # the section skipped: the page as it was
    assert out.read_text(encoding="utf-8") == PAGE
    assert page.write_section(out, part)
    assert out.read_text(encoding="utf-8") == page.replaced(PAGE, part)


def test_shrink_on_load_is_measured_for_both_choices_on_a_real_jpeg(tmp_path: Path) -> None:
    import shrink_on_load

    photo = tmp_path / "camera-00.jpg"
    Image.radial_gradient("L").resize((1600, 1200)).convert("RGB").save(photo, quality=92)
    rows = shrink_on_load.measure([photo], (WEBP,), rounds=1)
    assert [r.choice for r in rows] == [label for label, *_ in shrink_on_load.CHOICES]
    assert all(r.request == "WebP q80" and r.kb > 0 and 0.5 < r.ssim <= 1 for r in rows)


def test_the_shrink_table_compares_each_choice_and_thumbor() -> None:
    import shrink_on_load

    runs = canned(thumbor=(8.0, 2.0, 17.9, 0.9731))
    (ours, *_), (wider, *_), _ = shrink_on_load.CHOICES
    runs.shrink = [
        shrink_on_load.Row("WebP q80", ours, 17.5, 0.9690, 50.0),
        shrink_on_load.Row("WebP q80", wider, 18.1, 0.9746, 60.0),
    ]
    text = "\n".join(page.shrink(runs))
    assert f"| WebP q80 | {ours} | 17.5 | 0.9690 | 50 ms | 1.00× |" in text
    assert f"| WebP q80 | {wider} | 18.1 | 0.9746 | 60 ms | 1.20× |" in text
    assert "| WebP q80 | thumbor (its answers above) | 17.9 | 0.9731 |" in text
    assert page.shrink(canned(thumbor=(8.0, 2.0, 17.9, 0.9731))) == []


def test_the_decode_floor_decodes_at_the_scale_that_covers_the_fill(tmp_path: Path) -> None:
    import pyvips
    import shrink_on_load

    # GIVEN a 1600x1200 JPEG as stored, upright and turned by its EXIF (orientation 6)
    upright, turned = tmp_path / "camera-00.jpg", tmp_path / "camera-01.jpg"
    picture = Image.radial_gradient("L").resize((1600, 1200)).convert("RGB")
    picture.save(upright, quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(turned, quality=92, exif=exif)
    # THEN a 400x300 fill needs 1/4 of the upright one, and 1/2 of the turned one (533 wide
    # as stored once upright: 1/4 would give 400)
    shrinks = [
        shrink_on_load._cover_shrink(pyvips.Image.new_from_file(str(f)), 400, 300)
        for f in (upright, turned)
    ]
    assert shrinks == [4, 2]
    assert shrink_on_load.decode_floor_ms([upright, turned], 400, 300, rounds=1) > 0
