"""Fails when a module or a function under the given folders is longer than the house allows.

`make lint` runs it on src/: no module over MAX_MODULE_LINES, no function (a def, with its
decorators and docstring) over MAX_FUNCTION_LINES. The few justified exceptions are named in
pyproject.toml, `[tool.imgpipe.shape]`, each with its reason, so that a new long function is
a failure rather than a habit.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def long_functions(path: Path, limit: int) -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function in `path` longer than `limit` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    lines = (child.end_lineno or child.lineno) - first + 1
                    if lines > limit:
                        yield name, lines
                yield from walk(child, name + ".")

    yield from walk(tree, "")


def violations(roots: list[Path], allowed: dict[str, str]) -> list[str]:
    found: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            where = path.as_posix()
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES and where not in allowed:
                found.append(f"{where}: {lines} lines (a module has at most {MAX_MODULE_LINES})")
            for name, length in long_functions(path, MAX_FUNCTION_LINES):
                if f"{where}:{name}" not in allowed:
                    found.append(
                        f"{where}:{name}: {length} lines (a function has at most "
                        f"{MAX_FUNCTION_LINES})"
                    )
    return found


def exceptions(pyproject: Path) -> dict[str, str]:
    """`path` or `path:function` -> the reason it may be longer."""
    if not pyproject.is_file():
        return {}
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    shape = config.get("tool", {}).get("imgpipe", {}).get("shape", {})
    return dict(shape.get("exceptions", {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    found = violations(args.roots, exceptions(args.pyproject))
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} too long: cut them into named steps (or name a reason in "
            "pyproject.toml [tool.imgpipe.shape] exceptions)"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
