"""The identity of a rendition: each preset's `specHash` and a record's `renditionHash`.

A hash is of everything that shapes a rendition's bytes, so that a record rendered under other
settings is known to be stale (lifecycle.is_stale) and re-rendered. It is pure: the same
presets hash the same in the server, the Lambda worker and `imgpipe process`. A rendering
process never imports this module (nor hashlib: see engine.pipeline.render_unhashed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from imgpipe.core.rendering import RenderPreset


def spec_hashes(
    presets: Iterable[RenderPreset], background: Iterable[int], strip_exif: bool
) -> dict[str, str]:
    """Each preset's `specHash`: a short hash of everything that shapes its bytes (its own
    fields plus the global background and EXIF stripping), by preset name. The JSON is the
    one RenditionSpec.model_dump(mode="json") gives: records keep their hashes. A field added
    since with its default value is left out (`_NEW_FIELDS`), so that adding it did not make
    every record stale; set to anything else, it changes the preset's hash."""
    shared = {"background": list(background), "strip": strip_exif}
    return {preset.name: _short_hash({"preset": _hashed(preset), **shared}) for preset in presets}


# Fields added to RenderPreset after records were hashed, with the value they had before.
_NEW_FIELDS: dict[str, Any] = {"gravity": "centre"}


def _hashed(preset: RenderPreset) -> dict[str, Any]:
    fields = preset._asdict()
    for name, old in _NEW_FIELDS.items():
        if fields.get(name) == old:
            del fields[name]
    return fields


def rendition_hash(spec_hashes: Mapping[str, str]) -> str:
    """A record's `renditionHash`: its presets' hashes together (their order aside)."""
    return _short_hash(sorted(spec_hashes.items()))


def _short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
