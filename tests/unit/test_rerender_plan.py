"""Versioned renditions, pure: the hashes settings make, which presets are stale, the decision."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from imgpipe.config import RenditionSpec, Settings
from imgpipe.core import lifecycle
from imgpipe.core.model import ImageMetadata, ImageRecord, ObjectEvent, Rendition, Status, iso
from imgpipe.core.rendition_identity import spec_hashes

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = "uploads/abc/IMG_0001.jpg"


def presets_of(settings: Settings) -> tuple[lifecycle.Preset, ...]:
    hashes = settings.spec_hashes()
    return tuple(
        lifecycle.Preset(s.name, hashes[s.name], tuple(s.formats)) for s in settings.renditions
    )


def renditions_for(settings: Settings) -> list[Rendition]:
    """The renditions a full render with `settings` records."""
    hashes = settings.spec_hashes()
    ext = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "png": "png"}
    return [
        Rendition(
            name=s.name,
            format=f,
            key=f"renditions/ID/{s.name}.{ext[f]}",
            width=s.width,
            height=s.height,
            bytes=100,
            specHash=hashes[s.name],
        )
        for s in settings.renditions
        for f in s.formats
    ]


def record_for(settings: Settings, status: Status = Status.PROCESSED) -> ImageRecord:
    return ImageRecord(
        imageId="ID",
        key=KEY,
        bucket="b",
        sequencer="0a",
        status=status,
        renditions=renditions_for(settings) if status is Status.PROCESSED else [],
        renditionHash=settings.rendition_hash() if status is Status.PROCESSED else None,
        uploadedAt=iso(NOW),
        updatedAt=iso(NOW),
        revision=3,
    )


def with_presets(*specs: RenditionSpec) -> Settings:
    return Settings(renditions=list(specs))


THUMB = RenditionSpec(name="thumb", width=256, height=256)
MEDIUM = RenditionSpec(name="medium", width=800, height=800)
LARGE = RenditionSpec(name="large", width=1600, height=1600)
BASE = with_presets(THUMB, MEDIUM, LARGE)


def decide(current: ImageRecord | None, settings: Settings, **kw: object) -> object:
    args: dict[str, object] = {"same_version": True, "now": NOW, "lease_s": 90.0, **kw}
    return lifecycle.decide_rerender(
        current,
        presets_of(settings),
        settings.rendition_hash(),
        **args,  # type: ignore[arg-type]
    )


# -- hashes -------------------------------------------------------------------------------------


def test_hashes_are_stable_and_ignore_preset_order() -> None:
    again = with_presets(LARGE, THUMB, MEDIUM)
    assert BASE.spec_hashes() == again.spec_hashes()
    assert BASE.rendition_hash() == again.rendition_hash()
    assert len(BASE.rendition_hash()) == 12
    assert len(set(BASE.spec_hashes().values())) == 3


def test_a_preset_hashes_as_it_did_when_the_hash_was_of_its_rendition_spec() -> None:
    # Records keep their renditionHash across this change: the hash is of the same JSON as
    # RenditionSpec.model_dump(mode="json") gave, whether from the settings or the
    # RenderPresets a render carries (`imgpipe process` hashes those).
    spec = THUMB.model_copy(
        update={"fit": "cover", "formats": ["webp", "avif"], "quality": {"webp": 70}}
    )
    settings = with_presets(spec).model_copy(update={"background": (1, 2, 3)})
    shared = {"background": [1, 2, 3], "strip": True}
    # gravity came later: at its default it is left out of the hash (the next test)
    fields = spec.model_dump(mode="json", exclude={"gravity"})
    before = json.dumps({"preset": fields, **shared}, sort_keys=True)
    expected = {spec.name: hashlib.sha256(before.encode()).hexdigest()[:12]}
    assert settings.spec_hashes() == expected
    presets = settings.render_options().renditions
    assert spec_hashes(presets, settings.background, settings.metadata.strip_exif) == expected


def test_adding_gravity_left_every_record_hash_as_it_was() -> None:
    # The default presets' hashes before RenditionSpec had a gravity (computed at af2c725):
    # a preset with the default gravity keeps them, so no record became stale.
    assert BASE.spec_hashes() == {
        "thumb": "bd024014dc54",
        "medium": "99d09d0dd322",
        "large": "38730dbcf439",
    }
    assert BASE.rendition_hash() == "cbae8f08250d"
    smart = with_presets(THUMB.model_copy(update={"fit": "cover", "gravity": "smart"}))
    centre = with_presets(THUMB.model_copy(update={"fit": "cover"}))
    assert smart.spec_hashes()["thumb"] != centre.spec_hashes()["thumb"]


def test_a_preset_hash_changes_with_its_own_fields_only() -> None:
    sharper = with_presets(THUMB, MEDIUM.model_copy(update={"quality": {"jpeg": 90}}), LARGE)
    before, after = BASE.spec_hashes(), sharper.spec_hashes()
    assert before["medium"] != after["medium"]
    assert before["thumb"] == after["thumb"] and before["large"] == after["large"]
    assert BASE.rendition_hash() != sharper.rendition_hash()


@pytest.mark.parametrize(
    "change",
    [{"background": (0, 0, 0)}, {"metadata": {"strip_exif": False}}],
    ids=["background", "strip_exif"],
)
def test_global_settings_that_shape_bytes_change_every_preset(change: dict[str, object]) -> None:
    other = Settings(renditions=[THUMB, MEDIUM, LARGE], **change)  # type: ignore[arg-type]
    assert all(BASE.spec_hashes()[name] != other.spec_hashes()[name] for name in BASE.spec_hashes())


def test_settings_that_do_not_shape_bytes_change_no_hash() -> None:
    other = Settings(
        renditions=[THUMB, MEDIUM, LARGE],
        limits={"max_bytes": 1000},
        metadata={"keep_gps": True},
        server={"workers": 7},
    )
    assert other.rendition_hash() == BASE.rendition_hash()


# -- the plan -----------------------------------------------------------------------------------


def test_unchanged_settings_plan_nothing() -> None:
    plan = lifecycle.plan_renditions(renditions_for(BASE), presets_of(BASE))
    assert plan.render == () and plan.drop == ()
    assert list(plan.keep) == renditions_for(BASE)
    assert not plan.changes_renditions


def test_an_added_preset_is_the_only_one_rendered() -> None:
    wider = with_presets(THUMB, MEDIUM, LARGE, RenditionSpec(name="xl", width=2400, height=2400))
    plan = lifecycle.plan_renditions(renditions_for(BASE), presets_of(wider))
    assert plan.render == ("xl",)
    assert list(plan.keep) == renditions_for(BASE) and plan.drop == ()


def test_a_changed_quality_renders_that_preset_only() -> None:
    sharper = with_presets(THUMB, MEDIUM.model_copy(update={"quality": {"jpeg": 90}}), LARGE)
    plan = lifecycle.plan_renditions(renditions_for(BASE), presets_of(sharper))
    assert plan.render == ("medium",)
    assert {r.name for r in plan.keep} == {"thumb", "large"} and plan.drop == ()


def test_a_removed_preset_is_dropped_and_nothing_rendered() -> None:
    fewer = with_presets(THUMB, MEDIUM)
    plan = lifecycle.plan_renditions(renditions_for(BASE), presets_of(fewer))
    assert plan.render == ()
    assert {(r.name, r.format) for r in plan.drop} == {("large", "jpeg"), ("large", "webp")}
    assert {r.name for r in plan.keep} == {"thumb", "medium"}


def test_renditions_without_a_spec_hash_are_stale() -> None:
    old = [r.model_copy(update={"spec_hash": None}) for r in renditions_for(BASE)]
    plan = lifecycle.plan_renditions(old, presets_of(BASE))
    assert plan.render == ("thumb", "medium", "large") and plan.keep == ()


def test_a_missing_format_makes_its_preset_stale() -> None:
    partial = [r for r in renditions_for(BASE) if (r.name, r.format) != ("thumb", "webp")]
    plan = lifecycle.plan_renditions(partial, presets_of(BASE))
    assert plan.render == ("thumb",)


# -- the decision -------------------------------------------------------------------------------


def test_an_up_to_date_record_is_left_alone() -> None:
    assert decide(record_for(BASE), BASE) == lifecycle.Skip("up_to_date")
    assert not lifecycle.is_stale(record_for(BASE), BASE.rendition_hash())


def test_a_stale_record_is_leased_but_stays_processed_with_its_renditions() -> None:
    fewer = with_presets(THUMB, MEDIUM)
    current = record_for(BASE)
    assert lifecycle.is_stale(current, fewer.rendition_hash())
    decision = decide(current, fewer)
    assert isinstance(decision, lifecycle.Rerender)
    leased = decision.record
    assert leased.status is Status.PROCESSED
    assert leased.renditions == current.renditions  # users keep seeing these meanwhile
    assert leased.lease_until == iso(NOW + timedelta(seconds=90))
    assert leased.revision == current.revision and leased.updated_at == current.updated_at

    # AND the result lists the kept renditions in configured order, with the new hash
    done = lifecycle.rerendered(
        leased, decision.plan, [], presets_of(fewer), fewer.rendition_hash(), NOW
    )
    assert done.status is Status.PROCESSED and done.lease_until is None
    assert [r.name for r in done.renditions] == ["thumb", "thumb", "medium", "medium"]
    assert done.rendition_hash == fewer.rendition_hash()


def test_fresh_renditions_take_their_presets_place() -> None:
    sharper = with_presets(THUMB, MEDIUM.model_copy(update={"quality": {"jpeg": 90}}), LARGE)
    decision = decide(record_for(BASE), sharper)
    assert isinstance(decision, lifecycle.Rerender)
    fresh = [
        r.model_copy(update={"bytes": 999, "spec_hash": sharper.spec_hashes()["medium"]})
        for r in renditions_for(BASE)
        if r.name == "medium"
    ]
    done = lifecycle.rerendered(
        decision.record, decision.plan, fresh, presets_of(sharper), sharper.rendition_hash(), NOW
    )
    assert [(r.name, r.bytes) for r in done.renditions] == [
        ("thumb", 100),
        ("thumb", 100),
        ("medium", 999),
        ("medium", 999),
        ("large", 100),
        ("large", 100),
    ]
    assert lifecycle.plan_renditions(done.renditions, presets_of(sharper)).render == ()


def test_only_processed_records_are_rerendered() -> None:
    assert decide(None, BASE) == lifecycle.Skip("not_processed")
    for status in (Status.FAILED, Status.PENDING, Status.PROCESSING):
        record = record_for(BASE, status)
        assert decide(record, with_presets(THUMB)) == lifecycle.Skip("not_processed")
        assert not lifecycle.is_stale(record, "anything")


def test_another_version_of_the_original_is_left_to_its_own_event() -> None:
    assert decide(record_for(BASE), with_presets(THUMB), same_version=False) == lifecycle.Skip(
        "stale"
    )


def test_a_leased_record_is_busy_for_rerenders_and_for_new_versions() -> None:
    # GIVEN a record another worker is re-rendering (PROCESSED, with a lease)
    until = iso(NOW + timedelta(seconds=30))
    leased = record_for(BASE).model_copy(update={"lease_until": until})
    # THEN a second re-render waits, and so does a new version of the original
    assert decide(leased, with_presets(THUMB)) == lifecycle.Busy(until)
    event = ObjectEvent(key=KEY, sequencer="0b")
    assert lifecycle.decide_start(leased, event, bucket="b", now=NOW, lease_s=90) == lifecycle.Busy(
        until
    )
    assert lifecycle.decide_pending(leased, event, "b", NOW) is None
    # AND once the lease has lapsed (a dead worker), the work can start
    later = NOW + timedelta(seconds=31)
    assert isinstance(decide(leased, with_presets(THUMB), now=later), lifecycle.Rerender)


def test_a_transient_failure_gives_the_lease_back() -> None:
    decision = decide(record_for(BASE), with_presets(THUMB))
    assert isinstance(decision, lifecycle.Rerender)
    back = lifecycle.unleased(decision.record)
    assert back.lease_until is None and back.renditions == record_for(BASE).renditions


def test_processed_and_failed_set_the_rendition_hash() -> None:
    claimed = record_for(BASE, Status.PROCESSING)
    meta = ImageMetadata(
        contentType="image/jpeg",
        format="jpeg",
        fileSize=10,
        width=4,
        height=3,
        hasAlpha=False,
        colorSpace="srgb",
        sha256="0" * 64,
    )
    done = lifecycle.processed(claimed, meta, [], NOW, 5, rendition_hash="abc")
    assert done.rendition_hash == "abc"
    assert lifecycle.failed(done, "internal", "x", NOW).rendition_hash is None
