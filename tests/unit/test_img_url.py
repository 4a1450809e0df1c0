"""imgproxy's URL grammar and signature, pure: every option, its aliases, the order they
apply in, presets, sources, signatures (imgproxy's own test vectors), and the refusals."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgpipe.config import Settings
from imgpipe.core.errors import ForbiddenError, InvalidRequestError
from imgpipe.core.img_url import ImgUrl, parse_img_path, rendition_presets, sign_img_path
from imgpipe.core.transform import Gravity, Transform, TransformLimits

KEY, SALT = b"test-key", b"test-salt"
SOURCE = "uploads/abc/IMG 0001.jpg"
B64 = base64.urlsafe_b64encode(SOURCE.encode()).rstrip(b"=").decode()
PRESETS = rendition_presets(
    Settings(
        renditions=[
            {"name": "thumb", "width": 256, "height": 256, "fit": "cover", "gravity": "smart"},
            {"name": "large", "width": 1600, "height": 1600, "quality": {"webp": 70}},
        ]
    )
    .render_options()
    .renditions
)


def parse(options: str, *, source: str = B64, presets: object = PRESETS) -> ImgUrl:
    path = f"/_/{options}/{source}" if options else f"/_/{source}"
    return parse_img_path(path, keys=[], unsafe=True, presets=presets)  # type: ignore[arg-type]


def transform(options: str) -> Transform:
    return parse(options).transform


def refused(options: str) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        parse(options)
    assert caught.value.status == 400 and caught.value.code == "bad_request"
    return str(caught.value)


# --- every option, by each of its names ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("rs:fill:300:200:1:1", Transform("fill", 300, 200, enlarge=True, extend=True)),
        ("resize:fill-down:300", Transform("fill-down", 300)),
        ("rs::100:100", Transform(width=100, height=100)),
        ("s:10:20:t", Transform(width=10, height=20, enlarge=True)),
        (
            "size:10:20:0:1:so:5:6",
            Transform(width=10, height=20, extend=True, extend_gravity=Gravity("so", 5, 6)),
        ),
        ("rt:force/w:5/h:6", Transform("force", 5, 6)),
        ("resizing_type:auto/width:5/height:6", Transform("auto", 5, 6)),
        ("mw:50/mh:60", Transform(min_width=50, min_height=60)),
        ("min-width:50/min-height:60", Transform(min_width=50, min_height=60)),
        ("z:1.5", Transform(zoom_x=1.5, zoom_y=1.5)),
        ("zoom:0.5:2", Transform(zoom_x=0.5, zoom_y=2.0)),
        ("dpr:2", Transform(dpr=2.0)),
        ("el:true", Transform(enlarge=True)),
        ("enlarge:1", Transform(enlarge=True)),
        ("ex:1:noea", Transform(extend=True, extend_gravity=Gravity("noea"))),
        ("extend:t:fp:0.2:0.8", Transform(extend=True, extend_gravity=Gravity("fp", 0.2, 0.8))),
        ("g:sowe:10:0.25", Transform(gravity=Gravity("sowe", 10, 0.25))),
        ("gravity:sm", Transform(gravity=Gravity("sm"))),
        ("g:fp:0.3:0.7", Transform(gravity=Gravity("fp", 0.3, 0.7))),
        ("c:0.5:100", Transform(crop_width=0.5, crop_height=100)),
        ("crop:200:0:we", Transform(crop_width=200, crop_gravity=Gravity("we"))),
        ("rot:90", Transform(rotate=90)),
        ("rotate:-90", Transform(rotate=270)),
        ("ar:0", Transform(auto_rotate=False)),
        ("auto_rotate:false", Transform(auto_rotate=False)),
        ("bg:ff8000", Transform(background=(255, 128, 0))),
        ("background:0f0", Transform(background=(0, 255, 0))),
        ("bg:1:2:3", Transform(background=(1, 2, 3))),
        ("bl:1.5/sh:0.5/pix:4", Transform(blur=1.5, sharpen=0.5, pixelate=4)),
        ("blur:2/sharpen:1/pixelate:8", Transform(blur=2.0, sharpen=1.0, pixelate=8)),
        ("sm:0", Transform(strip_metadata=False)),
        ("strip_metadata:f", Transform(strip_metadata=False)),
        ("q:70", Transform(quality=70)),
        ("quality:70", Transform(quality=70)),
        ("fq:webp:60:jpg:70", Transform(format_quality=(("jpeg", 70), ("webp", 60)))),
        ("format_quality:avif:40", Transform(format_quality=(("avif", 40),))),
        ("cb:v2", Transform(cachebuster="v2")),
        ("cachebuster:2024-01-01", Transform(cachebuster="2024-01-01")),
        ("", Transform()),
    ],
)
def test_each_option_parses_to_its_normalised_fields(options: str, expected: Transform) -> None:
    assert transform(options) == expected


@pytest.mark.parametrize(
    ("options", "source", "fmt"),
    [
        ("f:webp", B64, "webp"),
        ("format:jpg", B64, "jpeg"),
        ("ext:png", B64, "png"),
        ("f:best", B64, "best"),
        ("", B64 + ".avif", "avif"),
        ("f:webp", B64 + ".jpeg", "jpeg"),  # the extension is applied after the options
        ("", "plain/" + SOURCE + "@png", "png"),
        ("", B64, None),
    ],
)
def test_the_format_comes_from_the_option_or_the_extension(
    options: str, source: str, fmt: str | None
) -> None:
    url = parse(options, source=source)
    assert url.format == fmt and url.source == SOURCE


def test_later_options_override_earlier_ones_as_in_imgproxy() -> None:
    assert transform("rs:fill:300:200/w:100") == Transform("fill", 100, 200)
    assert transform("w:100/rs:fill:300:200") == Transform("fill", 300, 200)
    assert transform("q:50/q:60").quality == 60
    # a gravity without offsets keeps the offsets set before (imgproxy keeps them too)
    assert transform("g:ce:10:20/g:no").gravity == Gravity("no", 10, 20)
    assert transform("g:ce:10:20/g:sm").gravity == Gravity("sm")
    assert transform("bg:fff/bg:").background is None  # no argument: no background


def test_a_preset_applies_its_rendition_where_it_stands() -> None:
    thumb = transform("pr:thumb")
    assert (thumb.resizing_type, thumb.width, thumb.height) == ("fill", 256, 256)
    assert thumb.gravity == Gravity("sm") and not thumb.enlarge
    assert thumb.quality_for("jpeg", 1) == 82 and thumb.quality_for("avif", 1) == 55
    large = transform("preset:large")
    assert (large.resizing_type, large.width, large.quality_for("webp", 1)) == ("fit", 1600, 70)
    # what comes after a preset overrides it; what comes before is overridden
    assert transform("pr:thumb/w:100").width == 100
    assert transform("w:100/pr:thumb").width == 256
    # presets apply in the order named: thumb's every option overrides large's
    assert transform("pr:large:thumb") == thumb
    assert transform("pr:thumb:large").quality_for("webp", 1) == 70
    assert "unknown preset 'nope'" in refused("pr:nope")


def test_q_sets_every_format_but_png_which_stays_lossless_as_in_imgproxy() -> None:
    assert transform("q:40").quality_for("webp", 80) == 40
    assert transform("q:40").quality_for("png", 100) == 100
    assert transform("q:40/fq:png:60").quality_for("png", 100) == 60
    assert transform("fq:webp:30").quality_for("webp", 80) == 30
    assert transform("fq:webp:30").quality_for("jpeg", 82) == 82


def test_a_preset_that_names_itself_is_applied_once() -> None:
    presets = {"loop": (("w", ("10",)), ("pr", ("loop",)))}
    assert parse("pr:loop", presets=presets).transform.width == 10


# --- sources ----------------------------------------------------------------------------


def test_a_base64_source_may_be_cut_by_slashes_and_padded() -> None:
    cut = "/".join(B64[i : i + 5] for i in range(0, len(B64), 5))
    assert parse("w:10", source=cut).source == SOURCE
    padded = base64.urlsafe_b64encode(b"ab").decode()  # "YWI="
    assert parse("", source=padded).source == "ab"


def test_a_plain_source_is_percent_decoded_after_its_extension() -> None:
    url = parse("", source="plain/uploads/a%20b%40c.jpg@webp")
    assert url.source == "uploads/a b@c.jpg" and url.format == "webp"
    assert parse("", source="plain/http:/example.com/x.jpg").source == "http://example.com/x.jpg"
    assert parse("", source="plain/local:/x.jpg").source == "local:///x.jpg"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "names no source"),
        ("==", "names no source"),
        ("plain/a@png@jpg", "more than one format"),
        ("abc.png.jpg", "more than one format"),
        ("a+b", "not URL-safe base64"),
        ("abcde", "not URL-safe base64"),
        ("__8", "not base64 of UTF-8"),
        ("plain/a%zz", "invalid percent-encoding"),
        ("plain/a%ff", "not UTF-8"),
        ("plain/a@gif", "'gif' is not a format imgpipe writes"),
        ("enc/jwV3wUD9r4VBIzgv", "encrypted sources"),
    ],
)
def test_a_malformed_source_is_a_400_that_says_why(source: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse("w:1", source=source)


def test_a_path_without_signature_or_source_is_a_400() -> None:
    for path in ("", "/", "/sig", "/sig/"):
        with pytest.raises(InvalidRequestError, match="malformed path"):
            parse_img_path(path, keys=[], unsafe=True, presets={})


def test_imgproxys_basic_url_format_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError, match="basic URL format"):
        parse("fill/300/200/sm/0", source=B64)


# --- refusals name the option and the value ----------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("w:abc", "option w: 'abc' is not an integer"),
        ("width:-5", "option width: '-5' is not an integer in the range >= 0"),
        ("h:1.5", "option h: '1.5' is not an integer"),
        ("w:1:2", "option w takes at most 1 argument, got 2 (w:1:2)"),
        ("rt:cover", "option rt: 'cover' is not a resizing type"),
        ("el:yes", "option el: 'yes' is not a boolean"),
        ("z:0", "option z: '0' is not a positive number"),
        ("dpr:nan", "option dpr: 'nan' is not a number"),
        ("dpr:-1", "option dpr: '-1' is not a positive number"),
        ("g:middle", "option g: 'middle' is not a gravity"),
        ("g:sm:1", "option g takes at most 1 argument"),
        ("g:fp:0.5", "fp takes x and y"),
        ("g:fp:1.5:0.5", "option g: '1.5' is not a focus point coordinate in 0..1"),
        ("ex:1:sm", "option ex: 'sm' is not a gravity"),
        ("c:-1", "option c: '-1' is not a positive number or 0"),
        ("rot:45", "option rot: '45' is not a multiple of 90"),
        ("bg:12345", "option bg: '12345' is not a hex colour"),
        ("bg:1:2:300", "option bg: '300' is not an integer in the range 0-255"),
        ("bg:1:2", "option bg takes a hex colour or r:g:b"),
        ("q:101", "option q: '101' is not an integer in the range 0-100"),
        ("fq:webp", "a quality is missing for 'webp'"),
        ("fq:gif:50", "option fq: 'gif' is not a format imgpipe writes"),
        ("f:heic", "option f: 'heic' is not a format imgpipe writes"),
        ("pix:x", "option pix: 'x' is not an integer"),
        ("cb:a:b", "option cb takes at most 1 argument"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_option_and_the_value(options: str, message: str) -> None:
    assert message in refused(options)


@pytest.mark.parametrize(
    ("option", "full"),
    [
        ("wm:0.5", "watermark"),
        ("pd:10", "padding"),
        ("t:10", "trim"),
        ("fl:1", "flip"),
        ("exar:1", "extend_aspect_ratio"),
        ("mb:1000", "max_bytes"),
        ("exp:1", "expires"),
        ("raw:1", "raw"),
    ],
)
def test_an_imgproxy_option_imgpipe_lacks_is_refused_by_name(option: str, full: str) -> None:
    name = option.partition(":")[0]
    assert refused(option) == f"option {name} ({full}) is not supported by imgpipe"


def test_an_unknown_option_is_refused_by_name() -> None:
    assert refused("frobnicate:1") == "unknown option 'frobnicate'"


# --- limits from the options alone ---------------------------------------------------------


def test_options_over_the_limits_are_refused_before_any_source_is_read() -> None:
    limits = TransformLimits(max_width=1000, max_height=800, max_pixels=500_000, max_dpr=3)

    def check(options: str) -> None:
        parse_img_path(f"/_/{options}/{B64}", keys=[], unsafe=True, presets={}, limits=limits)

    check("w:1000/h:500")
    with pytest.raises(InvalidRequestError, match="dpr 4 is over the limit of 3"):
        check("dpr:4")
    with pytest.raises(InvalidRequestError, match="1200x\\? px; the limit is 1000x800"):
        check("w:600/dpr:2")
    with pytest.raises(InvalidRequestError, match="\\?x900 px"):
        check("h:450/z:2")
    with pytest.raises(InvalidRequestError, match="1000x600 = 600,000 pixels"):
        check("w:1000/h:600")
    with pytest.raises(InvalidRequestError, match="zoom 1e\\+308:1e\\+308 is over the limits"):
        check("w:10/z:1e308")


# --- signatures ---------------------------------------------------------------------------


def test_signatures_are_imgproxys_own_test_vectors() -> None:
    # imgproxy's security/signature_test.go: key "test-key", salt "test-salt", path "asd"
    assert sign_img_path("/asd", KEY, SALT) == "/oWaL7QoW5TsgbuiS9-5-DI8S3Ibbo1gdB2SteJh3a20/asd"
    assert sign_img_path("/asd", KEY, SALT, 8) == "/oWaL7QoW5Ts/asd"
    assert sign_img_path("/asd", b"test-key2", b"test-salt2").startswith(
        "/jYz1UZ7j1BCdSzH3pZhaYf0iuz0vusoOTdqJsUT6WXI/"
    )


def test_a_signed_url_verifies_with_any_of_the_keys_and_a_tampered_one_is_a_403() -> None:
    keys = [(b"old-key", b"old-salt"), (KEY, SALT)]
    path = f"/rs:fill:300:200/{B64}.webp"
    signed = sign_img_path(path, KEY, SALT)
    url = parse_img_path(signed, keys=keys, unsafe=False, presets={})
    assert url.transform.width == 300 and url.format == "webp"
    old = sign_img_path(path, b"old-key", b"old-salt")
    assert parse_img_path(old, keys=keys, unsafe=False, presets={}) == url
    tampered = signed.replace("300", "301")
    with pytest.raises(ForbiddenError) as caught:
        parse_img_path(tampered, keys=keys, unsafe=False, presets={})
    assert (caught.value.status, caught.value.code) == (403, "bad_signature")


def test_a_truncated_signature_verifies_at_its_configured_size_only() -> None:
    path = f"/w:10/{B64}"
    short = sign_img_path(path, KEY, SALT, 8)
    assert parse_img_path(short, keys=[(KEY, SALT)], unsafe=False, presets={}, signature_size=8)
    with pytest.raises(ForbiddenError):
        parse_img_path(short, keys=[(KEY, SALT)], unsafe=False, presets={})


def test_colons_a_proxy_escaped_still_verify_as_imgproxy_mends_them() -> None:
    signed = sign_img_path(f"/rs:fit:30:20/{B64}", KEY, SALT)
    escaped = signed.replace(":", "%3A")
    url = parse_img_path(escaped, keys=[(KEY, SALT)], unsafe=False, presets={})
    assert (url.transform.width, url.transform.height) == (30, 20)


def test_insecure_and_underscore_pass_only_where_unsafe_is_allowed() -> None:
    for word in ("insecure", "_"):
        path = f"/{word}/w:10/{B64}"
        assert parse_img_path(path, keys=[(KEY, SALT)], unsafe=True, presets={}).source == SOURCE
        with pytest.raises(ForbiddenError):
            parse_img_path(path, keys=[(KEY, SALT)], unsafe=False, presets={})
    with pytest.raises(ForbiddenError):  # not ASCII: no signature, and no TypeError either
        parse_img_path(f"/é/w:10/{B64}", keys=[(KEY, SALT)], unsafe=False, presets={})
    with pytest.raises(ForbiddenError, match="no signing key is configured"):
        parse_img_path(f"/anything/w:10/{B64}", keys=[], unsafe=False, presets={})
    with pytest.raises(ForbiddenError):
        parse_img_path(f"/anything/w:10/{B64}", keys=[(KEY, SALT)], unsafe=True, presets={})


# --- canonical(): the same meaning, the same string ---------------------------------------

# (field, option names, value strategy) for options that each set one field of their own
_INDEPENDENT = [
    (("rt", "resizing_type"), st.sampled_from(["fit", "fill", "fill-down", "force", "auto"])),
    (("w", "width"), st.integers(1, 5000).map(str)),
    (("h", "height"), st.integers(1, 5000).map(str)),
    (("mw", "min-width"), st.integers(0, 5000).map(str)),
    (("mh", "min-height"), st.integers(0, 5000).map(str)),
    (("dpr",), st.sampled_from(["1", "1.5", "2", "3"])),
    (("el", "enlarge"), st.sampled_from(["0", "1", "t", "false"])),
    (("q", "quality"), st.integers(0, 100).map(str)),
    (("bl", "blur"), st.sampled_from(["0", "0.5", "3"])),
    (("sh", "sharpen"), st.sampled_from(["0", "1.0", "2"])),
    (("pix", "pixelate"), st.integers(0, 20).map(str)),
    (("rot", "rotate"), st.sampled_from(["0", "90", "180", "270", "-90", "360"])),
    (("ar", "auto_rotate"), st.sampled_from(["0", "1"])),
    (("sm", "strip_metadata"), st.sampled_from(["0", "1"])),
    (("cb", "cachebuster"), st.text("abcxyz019-", min_size=1, max_size=8)),
    (("bg", "background"), st.sampled_from(["fff", "ffffff", "10:20:30", "0a141e"])),
    (("g", "gravity"), st.sampled_from(["sm", "no:5:0.1", "fp:0.5:0.25", "ce"])),
]


@st.composite
def option_lists(draw: st.DrawFn) -> list[tuple[tuple[str, ...], str]]:
    chosen = draw(st.sets(st.integers(0, len(_INDEPENDENT) - 1), min_size=1))
    return [(_INDEPENDENT[i][0], draw(_INDEPENDENT[i][1])) for i in sorted(chosen)]


@settings(max_examples=150, deadline=None)
@given(options=option_lists(), seed=st.integers(0, 2**32))
def test_canonical_is_stable_under_option_order_and_aliases(
    options: list[tuple[tuple[str, ...], str]], seed: int
) -> None:
    rng = random.Random(seed)
    short = "/".join(f"{names[0]}:{value}" for names, value in options)
    shuffled = [f"{rng.choice(names)}:{value}" for names, value in options]
    rng.shuffle(shuffled)
    a, b = transform(short), transform("/".join(shuffled))
    assert a == b and a.canonical() == b.canonical()
    # and the canonical string, read back as options, means the same (a fixed point)
    assert transform(_as_options(a.canonical())).canonical() == a.canonical()


def _as_options(canonical: str) -> str:
    """canonical() written back as URL options, for the fixed-point check above."""
    renamed = {"zx": "z", "exg": None, "cw": None, "ch": None, "cg": None}
    parts = []
    for part in canonical.split("/") if canonical else []:
        name, _, rest = part.partition(":")
        if name == "zy":
            continue
        parts.append(f"{renamed.get(name) or name}:{rest}")
    return "/".join(parts)


@settings(max_examples=100, deadline=None)
@given(options=option_lists(), key=st.binary(min_size=1, max_size=64), salt=st.binary(max_size=64))
def test_a_signed_path_parses_to_what_it_says(
    options: list[tuple[tuple[str, ...], str]], key: bytes, salt: bytes
) -> None:
    path = "/" + "/".join(f"{names[0]}:{value}" for names, value in options) + f"/{B64}.webp"
    signed = sign_img_path(path, key, salt)
    url = parse_img_path(signed, keys=[(key, salt)], unsafe=False, presets={})
    assert url == parse_img_path("/_" + path, keys=[], unsafe=True, presets={})
    assert url.source == SOURCE and url.format == "webp"


def test_meta_options_and_their_parts_mean_the_same() -> None:
    same = [
        "rs:fill:300:200:1:1:so",
        "rt:fill/s:300:200:t:t:so",
        "resizing_type:fill/w:300/h:200/el:1/ex:1:so:0:0",
        "h:200/ex:true:so/rt:fill/enlarge:t/w:300",
    ]
    assert len({transform(options).canonical() for options in same}) == 1
    assert transform(same[0]).canonical() == "rt:fill/w:300/h:200/el:1/ex:1/exg:so:0:0"


def test_what_cannot_change_the_output_does_not_change_the_canonical_string() -> None:
    assert transform("rt:fill").canonical() == ""  # no size: the resizing type does nothing
    assert transform("ex:0:so:5:5").canonical() == ""  # no extend: its gravity does nothing
    assert transform("c:0:0:no").canonical() == ""  # no crop: its gravity does nothing
    assert transform("g:no/c:10:10:no") == transform("g:no/c:10:10")
    assert transform("z:2") == transform("z:2:2")
    assert transform("pix:1") == transform("pix:0") == Transform()
    assert transform("rot:-90") == transform("rot:270") == transform("rot:630")
    assert transform("q:70/fq:webp:50") == transform("q:70")  # q wins over fq...
    assert transform("q:70/fq:png:50") != transform("q:70")  # ...but for PNG
    assert transform("fq:webp:50:jpeg:60") == transform("fq:jpg:60/fq:webp:50")
    assert transform("fq:webp:0") == Transform()
    assert transform("cb:v1").canonical() != transform("cb:v2").canonical()
    assert transform("bg:fff") == transform("bg:255:255:255")


_NAMES = sorted(
    {
        "rs",
        "s",
        "rt",
        "w",
        "h",
        "mw",
        "mh",
        "z",
        "dpr",
        "el",
        "ex",
        "g",
        "c",
        "rot",
        "ar",
        "bg",
        "bl",
        "sh",
        "pix",
        "sm",
        "q",
        "fq",
        "f",
        "cb",
        "pr",
        "wm",
        "x",
    }
)
_ARGS = st.text(alphabet="0123456789.-+eEtfsmcnowafp:%@x", max_size=12)


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    options = draw(st.lists(st.tuples(st.sampled_from(_NAMES), _ARGS), max_size=5))
    segments = [f"{name}:{args}" for name, args in options]
    segments += draw(st.lists(st.text(alphabet="aA0_-=.@%/:plainé", max_size=10), max_size=3))
    return "/_/" + "/".join(segments)


@settings(max_examples=400, deadline=None)
@given(path=hostile_paths() | st.text(max_size=40))
def test_any_path_parses_or_is_a_4xx_never_another_error(path: str) -> None:
    limits = TransformLimits()
    refusal: InvalidRequestError | ForbiddenError | None = None
    try:
        url = parse_img_path(path, keys=[(KEY, SALT)], unsafe=True, presets=PRESETS, limits=limits)
    except (InvalidRequestError, ForbiddenError) as exc:
        refusal = exc
    if refusal is not None:
        assert 400 <= refusal.status < 500 and str(refusal)
        return
    assert url.source and url.transform == url.transform.normalised()
    assert isinstance(url.transform.canonical(), str)
