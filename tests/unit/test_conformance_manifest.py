"""tools/conformance.py's regeneration of a manifest entry: what review added to the old entry
(a known defect, a note) and when it is kept on the new run's entry."""

from __future__ import annotations

from typing import Any

from tools.conformance import Outcome, expected_entry, regenerated

NOTE = "Pillow refuses this file: imgpipe's picture has no oracle here"


def processed(psnr: float | None = 45.0) -> Outcome:
    return Outcome("processed", "tiff", psnr=psnr, oracle="Pillow", rendition_psnr=psnr)


def refused(code: str) -> Outcome:
    return Outcome("refused", "tiff", code=code, message="libvips says no")


def noted(outcome: Outcome) -> dict[str, Any]:
    """A reviewed entry for `outcome`, with a note."""
    return {**expected_entry(outcome), "note": NOTE}


def test_a_note_stays_while_the_verdict_and_code_are_unchanged() -> None:
    # GIVEN noted entries, and new runs with the same verdict and code (the PSNR moved)
    cases = [
        (noted(processed(psnr=None)), processed(psnr=None)),
        (noted(processed(psnr=20.0)), processed(psnr=22.5)),
        (noted(refused("corrupt_image")), refused("corrupt_image")),
    ]
    for reviewed, outcome in cases:
        # WHEN the entry is regenerated THEN it keeps the note, its figures the new run's
        entry = regenerated(reviewed, outcome)
        assert entry["note"] == NOTE
        assert entry.get("psnr") == outcome.psnr


def test_a_note_goes_when_the_verdict_or_code_changes() -> None:
    # GIVEN noted entries whose file now gets another verdict or another refusal code (a
    # note on why a refusal or a low PSNR is right says nothing of the new result)
    cases = [
        (noted(refused("corrupt_image")), processed()),
        (noted(processed(psnr=12.0)), refused("unsupported_variant")),
        (noted(refused("corrupt_image")), refused("unsupported_variant")),
    ]
    for reviewed, outcome in cases:
        # WHEN the entry is regenerated THEN it is the new run's, with no note
        entry = regenerated(reviewed, outcome)
        assert "note" not in entry, (reviewed, entry)
        assert (entry["verdict"], entry.get("code")) == (outcome.verdict, outcome.code)


def test_a_known_defect_stays_while_the_file_falls_short() -> None:
    # GIVEN an entry of a known defect: a right picture scores 30 dB, the file 24
    reviewed = {**expected_entry(processed(psnr=24.0)), "min_psnr": 30.0}
    reviewed["known_defect"] = "issue 25 item 2"
    # WHEN it is regenerated from a run still short of 30 dB, then from one that reaches it
    short, fixed = regenerated(reviewed, processed(psnr=24.5)), regenerated(reviewed, processed())
    # THEN the defect stays while it falls short, with the new figure, and goes once fixed
    assert short["known_defect"] == "issue 25 item 2" and short["psnr"] == 24.5
    assert "known_defect" not in fixed and fixed["min_psnr"] == 44.0
