"""How presets reach the functions on AWS: the RenditionsJson parameter -> IMGPIPE_RENDITIONS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_template import Stack, function_env, template, transformed

from imgpipe.config import RenditionSpec, Settings

__all__ = ["template", "transformed"]  # fixtures


@pytest.mark.parametrize("function", ["WorkerFunction", "ApiFunction"])
def test_functions_get_the_default_presets_unless_the_parameter_is_set(
    transformed: dict[str, Any], function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = function_env(transformed, function)
    # GIVEN no RenditionsJson THEN no IMGPIPE_RENDITIONS: the defaults apply
    assert "IMGPIPE_RENDITIONS" not in Stack(transformed).value(env)

    # GIVEN presets from a config file, as `imgpipe deploy --config` passes them
    wanted = Settings(
        renditions=[
            RenditionSpec(name="thumb", width=200, height=200, formats=["webp"]),
            RenditionSpec(name="big", width=2000, height=2000, quality={"jpeg": 90}),
        ]
    )
    resolved = Stack(transformed, {"RenditionsJson": wanted.renditions_json()}).value(env)
    for name, value in resolved.items():
        monkeypatch.setenv(name, str(value))
    # THEN the function's settings have those presets, and the same renditionHash
    settings = Settings()
    assert [r.name for r in settings.renditions] == ["thumb", "big"]
    assert settings.rendition_hash() == wanted.rendition_hash()


def test_renditions_json_is_compact_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    text = defaults.renditions_json()
    assert json.loads(text) == [
        {"name": "thumb", "width": 256, "height": 256},
        {"name": "medium", "width": 800, "height": 800},
        {"name": "large", "width": 1600, "height": 1600},
    ]
    monkeypatch.setenv("IMGPIPE_RENDITIONS", text)
    assert Settings().rendition_hash() == defaults.rendition_hash()
    many = Settings(
        renditions=[
            RenditionSpec(name=f"p{n}", width=100 + n, height=100 + n, formats=["jpeg", "webp"])
            for n in range(20)
        ]
    )
    assert len(many.renditions_json()) < 4096  # a CloudFormation parameter's limit
