"""tools/check_shape.py, which `make lint` runs on src/: it fails on a module over 400 lines or
a function over 60, but for the exceptions pyproject.toml names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "check_shape.py"


def function(name: str, lines: int) -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    return f"def {name}() -> None:\n    '''doc'''\n{body}"


def run(root: Path, pyproject: str = "") -> subprocess.CompletedProcess[str]:
    (root / "pyproject.toml").write_text(pyproject)
    return subprocess.run(
        [sys.executable, str(TOOL), "pkg", "--pyproject", "pyproject.toml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_function_of_61_lines_fails_and_one_of_60_passes(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text(function("fits", 60))
    assert run(tmp_path).returncode == 0

    (tmp_path / "pkg" / "long.py").write_text(function("fits", 60) + function("too_long", 61))
    done = run(tmp_path)
    assert done.returncode == 1
    assert "pkg/long.py:too_long: 61 lines" in done.stdout
    assert "fits" not in done.stdout


def test_a_nested_function_and_a_method_are_named_by_their_path(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    nested = "class Box:\n    def outer(self) -> None:\n" + "".join(
        "        " + line + "\n" for line in function("inner", 70).splitlines()
    )
    (tmp_path / "pkg" / "box.py").write_text(nested)
    done = run(tmp_path)
    assert "pkg/box.py:Box.outer: 71 lines" in done.stdout
    assert "pkg/box.py:Box.outer.inner: 70 lines" in done.stdout


def test_a_long_module_fails_unless_named_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("".join(f"x{i} = {i}\n" for i in range(401)))
    assert "pkg/big.py: 401 lines" in run(tmp_path).stdout
    allowed = '[tool.imgpipe.shape.exceptions]\n"pkg/big.py" = "a generated table"\n'
    assert run(tmp_path, allowed).returncode == 0
