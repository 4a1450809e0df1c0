"""Settings converted to the plain options a render is given."""

from __future__ import annotations

import json

import pytest

from imgpipe.config import RenditionSpec, Settings
from imgpipe.core.rendering import MetadataRules, RenderLimits, RenderPreset


def test_render_options_from_settings() -> None:
    settings = Settings(background=(1, 2, 3), metadata={"keep_gps": True})
    opts = settings.render_options()
    assert [r.name for r in opts.renditions] == ["thumb", "medium", "large"]
    assert opts.background == (1, 2, 3)
    assert opts.metadata == MetadataRules(keep_gps=True, strip_exif=True)
    assert opts.limits == RenderLimits(
        max_bytes=settings.limits.max_bytes,
        max_pixels=settings.limits.max_pixels,
        max_frames=settings.limits.max_frames,
        allowed_formats=tuple(settings.limits.allowed_formats),
    )


def test_a_preset_carries_every_field_of_its_rendition_spec() -> None:
    # A field added to RenditionSpec and not to RenderPreset would be lost on its way to a render
    assert set(RenderPreset._fields) == set(RenditionSpec.model_fields)
    spec = RenditionSpec(
        name="x",
        width=10,
        height=20,
        fit="cover",
        formats=["webp", "avif"],
        quality={"webp": 70},
        webp_effort=5,
        webp_smart_subsample=True,
        jpeg_optimize_coding=False,
        jpeg_progressive=True,
        jpeg_subsample="off",
        jpeg_trellis=True,
        encoder="libvips",
    )
    preset = spec.render_preset()
    assert preset._asdict() == {**spec.model_dump(), "formats": ("webp", "avif")}
    assert preset.quality_for("webp") == 70
    assert preset.quality_for("avif") == 55  # the format's default


# The transform secret of an AWS stack (aws.transform_secret names an SSM SecureString)
KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"


def test_the_transform_secret_sets_the_signing_keys() -> None:
    settings = Settings(transform={"signature_size": 8})
    secret = json.dumps({"key": KEY, "salt": SALT})
    transforms = settings.transform.with_secret(secret)
    assert transforms.signing_keys() == ((bytes.fromhex(KEY), bytes.fromhex(SALT)),)
    assert transforms.signature_size == 8  # the rest of the section is kept


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (KEY, "not JSON"),
        (json.dumps([KEY]), '{"key": ..., "salt": ...}'),
        (json.dumps({"key": KEY, "salt": SALT, "max_width": 1}), "no more"),
        (json.dumps({"key": KEY + "zz", "salt": SALT + "zz"}), "hex-encoded"),
        (json.dumps({"key": [KEY], "salt": []}), "1 keys and 0 salts"),
    ],
)
def test_a_bad_transform_secret_is_refused_without_quoting_it(secret: str, says: str) -> None:
    with pytest.raises(ValueError, match="transform secret") as refused:
        Settings().transform.with_secret(secret)
    assert says in str(refused.value)
    # the function's logs would show the message: never the key or the salt
    assert KEY not in str(refused.value) and SALT not in str(refused.value)


# The CDN settings as the template passes them (IMGPIPE_AWS__CDN_*; docs/aws.md, "At the edge")


def test_the_cdn_settings_as_the_template_passes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the distribution off: an empty base URL and an empty privacy
    monkeypatch.setenv("IMGPIPE_AWS__CDN_BASE_URL", "")
    monkeypatch.setenv("IMGPIPE_AWS__CDN_PRIVACY", "")
    off = Settings().aws
    assert (off.cdn_base_url, off.cdn_privacy) == ("", "public")
    # GIVEN it on, public
    monkeypatch.setenv("IMGPIPE_AWS__CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net/")
    monkeypatch.setenv("IMGPIPE_AWS__CDN_PRIVACY", "public")
    assert Settings().aws.cdn_base_url == "https://d111111abcdef8.cloudfront.net"
    # GIVEN signed without the key's id or secret THEN refused, naming what is missing
    monkeypatch.setenv("IMGPIPE_AWS__CDN_PRIVACY", "signed")
    with pytest.raises(ValueError, match=r"cdn_key_pair_id and aws\.cdn_private_key_secret"):
        Settings()
    monkeypatch.setenv("IMGPIPE_AWS__CDN_KEY_PAIR_ID", "K2JCJMDEHXQW5F")
    monkeypatch.setenv("IMGPIPE_AWS__CDN_PRIVATE_KEY_SECRET", "/imgpipe/cdn-key")
    assert Settings().aws.cdn_privacy == "signed"
    # AND an unknown privacy is refused
    monkeypatch.setenv("IMGPIPE_AWS__CDN_PRIVACY", "private")
    with pytest.raises(ValueError, match="cdn_privacy"):
        Settings()
