"""docs/configuration.md, written from the Settings model: every setting's TOML name,
environment variable, type, default and description, so the page cannot drift from the code.

    python -m imgpipe.config_doc            # writes docs/configuration.md
    python -m imgpipe.config_doc --check    # exit 1 when the file is not what it would write

The text around the tables (PREAMBLE) is kept here; each setting's words are its
`description=` in config.py (or config_render.py, config_transform.py) and each section's its
model's docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode

from imgpipe.config import ENV_PREFIX, Settings

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
COMMAND = "python -m imgpipe.config_doc"

PREAMBLE = """\
# Configuration

<!-- Written by `python -m imgpipe.config_doc` from src/imgpipe/config.py,
config_render.py and config_transform.py: edit the descriptions there (or the preamble in
config_doc.py), then run the command again. -->

imgpipe runs on its defaults with no file at all. Where a setting comes from, highest first:

1. a command-line flag: `imgpipe serve --host --port --workers --data-dir` set `server.host`,
   `server.port`, `server.workers` and `local.data_dir`;
2. an environment variable: `IMGPIPE_` and the setting's path in capitals, `__` between
   levels (`IMGPIPE_LIMITS__MAX_BYTES=10000000`, `IMGPIPE_SERVER__API_TOKEN=...`); lists,
   tables and arrays of tables are written as JSON
   (`IMGPIPE_SERVER__TRUSTED_PROXIES='["10.0.0.0/8"]'`);
3. the TOML file, given as `--config FILE` to any command or as `IMGPIPE_CONFIG=FILE`;
4. the defaults below.

`imgpipe.config` is the one module that reads files and the environment. A value it refuses
(a wrong type, a number out of range, an unknown name at the top level of the file) stops a
command with `configuration error: ...` and exit code 2, and so does `--config` naming a file
that does not exist. Inside a section an unknown name is ignored, and so is `IMGPIPE_CONFIG`
naming a file that does not exist: check the spelling. Two rules span settings:
`server.visibility_timeout_s` must exceed `limits.processing_timeout_s` + 30 s (the image
lease a worker holds), and `backend = "aws"` needs `aws.bucket` and `aws.table`.

On AWS the template sets the functions' `IMGPIPE_*` variables (a test checks that each is one
these settings read), and `imgpipe deploy --config FILE` hands the file's renditions to the
functions as `IMGPIPE_RENDITIONS` ([aws.md](aws.md)).

A rendition's encoder settings (`webp_effort` and the ones after it) default to what
[benchmarks.md](benchmarks.md) measured as the smallest, best files per CPU second on
photographs; its section "Each optimisation, one at a time" measures each alternative.
Changing a rendition's settings makes the records rendered before stale:
`imgpipe reprocess --stale` re-renders what changed ([operations.md](operations.md)).

A file that changes a few things:

```toml
log_level = "DEBUG"

[[renditions]]               # the list replaces the default presets as a whole
name = "thumb"
width = 320
height = 320
fit = "cover"
formats = ["webp", "avif"]

[limits]
max_bytes = 20971520         # 20 MiB

[server]
workers = 4

[[events.webhooks]]          # one table per receiver
url = "https://hooks.example.com/imgpipe"
secret = "at-least-16-characters"
events = ["image.failed"]
```
"""


class Row(NamedTuple):
    toml: str
    env: str
    type: str
    default: str
    description: str


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a list-of-tables setting (`[[renditions]]`), else None."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if _is_model(item):
            return typing.cast("type[BaseModel]", item)
    return None


def type_name(annotation: Any) -> str:
    """A setting's type in words a TOML file's author reads."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = " (optional)" if len(rest) < len(args) else ""
        return " or ".join(type_name(a) for a in rest) + optional
    if origin in (list, dict, tuple):
        return _collection_name(origin, args)
    if _is_model(annotation):
        return "table"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _collection_name(origin: Any, args: tuple[Any, ...]) -> str:
    """A list's, table's or tuple's type in words."""
    if origin is list:
        item = args[0]
        return "list of tables" if _is_model(item) else f"list of {_plain(item)}"
    if origin is dict:
        return f"table of {_plain(args[0])} to {type_name(args[1])}"
    return "[" + ", ".join(type_name(a) for a in args) + "]"


def _plain(annotation: Any) -> str:
    """A list's or table's item type, its Literal values without the words 'one of'."""
    if typing.get_origin(annotation) is Literal:
        return ", ".join(json.dumps(a) for a in typing.get_args(annotation))
    return type_name(annotation) + "s"


def bounds(field: FieldInfo) -> str:
    """The field's constraints: ≥ 1, ≤ 64, at least 16 long, matching a pattern."""
    words = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Gt):
            words.append(f"> {rule.gt}")
        elif isinstance(rule, annotated_types.Ge):
            words.append(f"≥ {rule.ge}")
        elif isinstance(rule, annotated_types.Lt):
            words.append(f"< {rule.lt}")
        elif isinstance(rule, annotated_types.Le):
            words.append(f"≤ {rule.le}")
        elif isinstance(rule, annotated_types.MinLen):
            words.append(f"at least {rule.min_length} long")
        elif isinstance(rule, annotated_types.MaxLen):
            words.append(f"at most {rule.max_length} long")
        elif getattr(rule, "pattern", None):
            words.append(f"matching `{rule.pattern}`")
    return ", ".join(words)


def toml_value(value: Any) -> str:
    """A default as it would be written in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, BaseModel):
        return toml_value(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def default_text(name: str, field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    if value is None:
        return "unset"
    if _item_model(field.annotation) is not None and value:
        return "below"
    text = f"`{toml_value(value)}`"
    if name.endswith("_bytes") and isinstance(value, int) and value >= 1024:
        text += f" ({_binary_size(value)})"
    return text


def _binary_size(n: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def row(path: Sequence[str], field: FieldInfo, env: bool = True) -> Row:
    annotation = field.annotation
    kind = ", ".join(p for p in (type_name(annotation), bounds(field)) if p)
    variable = "in the list's JSON"
    if env:
        variable = f"`{ENV_PREFIX}{'__'.join(p.upper() for p in path)}`"
        if any(isinstance(m, NoDecode) or m is NoDecode for m in field.metadata):
            variable += " (one value, or several with commas)"
        elif typing.get_origin(annotation) in (list, dict, tuple):
            variable += " (JSON)"
    return Row(
        toml=f"`{path[-1]}`",
        env=variable,
        type=kind,
        default=default_text(path[-1], field),
        description=(field.description or "").replace("|", "\\|"),
    )


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| setting | environment variable | type | default | what it does |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def section(
    heading: str, model: type[BaseModel], path: Sequence[str], env: bool = True
) -> Iterator[str]:
    """One model's settings: a heading, its docstring, a table, then its lists of tables."""
    yield f"## `{heading}`"
    yield ""
    doc = (model.__doc__ or "").strip()
    if doc:
        yield doc
        yield ""
    fields = model.model_fields.items()
    yield from table([row([*path, name], f, env) for name, f in fields])
    yield ""
    for name, field in fields:
        item = _item_model(field.annotation)
        if item is not None:
            yield from items_section([*path, name], item, field)


def items_section(path: Sequence[str], item: type[BaseModel], field: FieldInfo) -> Iterator[str]:
    """A list of tables (`[[renditions]]`): its item's settings and its default, as TOML."""
    yield from section("[[" + ".".join(path) + "]]", item, path, env=False)
    value = field.get_default(call_default_factory=True, validated_data={})
    if not value:
        return
    yield "The default, in full:"
    yield ""
    yield "```toml"
    for i, entry in enumerate(value):
        if i:
            yield ""  # a blank line between presets
        yield f"[[{'.'.join(path)}]]"
        for key, v in entry.model_dump(mode="json", exclude_defaults=True).items():
            yield f"{key} = {toml_value(v)}"
    yield "```"
    yield ""


def render() -> str:
    """The whole of docs/configuration.md."""
    lines = [PREAMBLE]
    fields = Settings.model_fields
    top = [row([n], f) for n, f in fields.items() if not _is_model(f.annotation)]
    lines += ["## Top level", "", *table(top), ""]
    for name, field in fields.items():
        item = _item_model(field.annotation)
        if item is not None:
            lines += items_section([name], item, field)
    for name, field in fields.items():
        if _is_model(field.annotation):
            model = typing.cast("type[BaseModel]", field.annotation)
            lines += section(f"[{name}]", model, [name])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
