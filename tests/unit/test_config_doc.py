"""docs/configuration.md: written from the settings model, complete, and true to what
Settings reads (the environment variables it names, the example file it shows)."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from imgpipe import config_doc
from imgpipe.config import Settings, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _settings_fields(
    model: type[BaseModel], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo, bool]]:
    """Every setting: its path, its field, and whether it has a variable of its own (the
    items of a list of tables are set through the list's JSON)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _settings_fields(annotation, (*path, name))
            continue
        yield (*path, name), field, True
        item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            yield from (((*path, name, *p), f, False) for p, f, _ in _settings_fields(item))


def _variable(path: tuple[str, ...]) -> str:
    return "IMGPIPE_" + "__".join(p.upper() for p in path)


def test_the_committed_doc_is_what_the_generator_writes() -> None:
    # GIVEN the settings model as it is now WHEN the page is rendered THEN it is the one committed
    assert DOC.read_text(encoding="utf-8") == config_doc.render(), (
        f"docs/configuration.md is stale: run `{config_doc.COMMAND}` and commit the file"
    )


def test_the_check_option_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(config_doc.render().replace("largest original", "smallest original"))
    assert config_doc.main(["--out", str(stale), "--check"]) == 1
    assert config_doc.main(["--out", str(stale)]) == 0
    assert config_doc.main(["--out", str(stale), "--check"]) == 0


def test_every_setting_has_a_description() -> None:
    missing = [".".join(p) for p, f, _ in _settings_fields(Settings) if not f.description]
    assert missing == [], f"give these a description= in src/imgpipe/config.py: {missing}"


def test_every_setting_has_a_row_under_its_section() -> None:
    text = config_doc.render()
    for path, _, own_variable in _settings_fields(Settings):
        section = "Top level" if len(path) == 1 else None
        if len(path) > 1:
            brackets = "[[{}]]" if not own_variable else "[{}]"
            section = "`" + brackets.format(".".join(path[:-1])) + "`"
        body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        expected = _variable(path) if own_variable else "in the list's JSON"
        assert f"| `{path[-1]}` | `{expected}`" in body or (
            f"| `{path[-1]}` | {expected}" in body
        ), f"{'.'.join(path)} has no row under {section}"


def _other_value(field: FieldInfo) -> Any:
    """A valid value of `field` other than its default, as an environment variable's text."""
    annotation = field.annotation
    default = field.get_default(call_default_factory=True, validated_data={})
    top = next((r.le for r in field.metadata if isinstance(r, annotated_types.Le)), None)
    if annotation is bool:
        return str(not default).lower()
    if annotation in (int, float):
        return str(default + 1 if top is None or default + 1 <= top else default - 1)
    if typing.get_origin(annotation) is Literal:
        return next(v for v in typing.get_args(annotation) if v != default)
    if annotation is Path:
        return "/srv/imgpipe"
    if annotation in (str, str | None):
        return "changed"
    return None  # lists, tables: JSON, covered by the documented example below


# Set with the variable under test, so that the settings stay valid together.
COMPANIONS = {"IMGPIPE_BACKEND": {"IMGPIPE_AWS__BUCKET": "b", "IMGPIPE_AWS__TABLE": "t"}}


def _read(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for name in path:
        value = getattr(value, name)
    return value


def test_each_documented_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config_doc.render()
    for path, field, own_variable in _settings_fields(Settings):
        raw = _other_value(field) if own_variable else None
        if raw is None:
            continue
        name = _variable(path)
        assert f"`{name}`" in text
        with monkeypatch.context() as env:
            for companion, value in {name: raw, **COMPANIONS.get(name, {})}.items():
                env.setenv(companion, value)
            read = _read(Settings(), path)
        assert str(read).lower() == raw.lower() or read == type(read)(raw), name


def test_the_documented_example_file_is_read(tmp_path: Path) -> None:
    # GIVEN the TOML example of the page's preamble, saved as a file
    example = re.search(r"```toml\n(.*?)```", config_doc.PREAMBLE, re.DOTALL)
    assert example is not None
    path = tmp_path / "imgpipe.toml"
    path.write_text(example.group(1))

    # WHEN imgpipe reads it
    settings = load_settings(path)

    # THEN it changes what the page says, and the rest keeps its defaults
    assert settings.log_level == "DEBUG"
    assert [(r.name, r.width, r.fit, r.formats) for r in settings.renditions] == [
        ("thumb", 320, "cover", ["webp", "avif"])
    ]
    assert settings.limits.max_bytes == 20 * 1024 * 1024
    assert settings.limits.max_pixels == Settings().limits.max_pixels
    assert settings.server.workers == 4
    assert [(w.url, w.events) for w in settings.events.webhooks] == [
        ("https://hooks.example.com/imgpipe", ["image.failed"])
    ]


def test_lists_are_set_as_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The preamble's example of a list in an environment variable
    assert "IMGPIPE_SERVER__TRUSTED_PROXIES='[\"10.0.0.0/8\"]'" in config_doc.PREAMBLE
    monkeypatch.setenv("IMGPIPE_SERVER__TRUSTED_PROXIES", '["10.0.0.0/8"]')
    assert Settings().server.trusted_proxies == ["10.0.0.0/8"]
