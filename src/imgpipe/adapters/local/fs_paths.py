"""Keys to paths in the local store's data folder, and back: one to one, escaped where needed.

Key -> path: a key is split on `/` into segments, and each segment becomes one file name.
A *plain* segment maps verbatim, so a file dropped into `root/uploads/` keeps its name.
A segment is plain unless it

- is empty (`a//b`, a leading or trailing `/`), `.` or `..`;
- starts with `%` (the escape marker);
- holds a backslash or a control character (U+0000-U+001F, U+007F-U+009F);
- is longer than 255 UTF-8 bytes (NAME_MAX);
- is the first segment and spells `.imgpipe` in any ASCII case.

Any other segment is escaped: `%` + the segment with `%`, `+`, `\\` and control characters
percent-encoded (UTF-8, `%XX`); the rest, unicode included, stays readable. An escaped name
longer than 255 bytes is split into folders: `%+chunk/%+chunk/.../%last`. The `%+` marker
never starts a single escaped name (a literal `+` is always encoded there), and a plain name
never starts with `%`, so the mapping is one-to-one and `key_for(path_for(key)) == key`.

A key's content type is guessed from its extension (S3 keeps the one its uploader sent).
"""

from __future__ import annotations

import errno
import mimetypes
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.keys import validate_key

STATE_DIR = ".imgpipe"
NAME_MAX = 255
ESCAPE = "%"
CONTINUED = "%+"
_CHUNK_BYTES = NAME_MAX - len(CONTINUED)

_CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".json": "application/json",
}


# A backslash or a control character (C0, DEL, C1): what _is_control tells, for a whole
# segment at once (every store call maps its key: a loop per character was most of that).
_NOT_PLAIN = re.compile(r"[\\\x00-\x1f\x7f-\x9f]")


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _is_plain(segment: str, first: bool) -> bool:
    if segment in ("", ".", "..") or segment.startswith(ESCAPE):
        return False
    if len(segment.encode("utf-8")) > NAME_MAX:
        return False
    if first and segment.isascii() and segment.lower() == STATE_DIR:
        return False
    return _NOT_PLAIN.search(segment) is None


def _escape_tokens(segment: str) -> list[str]:
    """The escaped body of a segment, one token per character (a `%XX` run or the char)."""
    tokens = []
    for ch in segment:
        if ch in "%+\\" or _is_control(ch):
            tokens.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            tokens.append(ch)
    return tokens


def segment_names(segment: str, first: bool) -> list[str]:
    """The file name(s) one key segment maps to: one name, or several for a long segment."""
    if _is_plain(segment, first):
        return [segment]
    tokens = _escape_tokens(segment)
    body = "".join(tokens)
    if len(body.encode("utf-8")) + len(ESCAPE) <= NAME_MAX:
        return [ESCAPE + body]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for token in tokens:
        token_size = len(token.encode("utf-8"))
        if current and size + token_size > _CHUNK_BYTES:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(token)
        size += token_size
    chunks.append("".join(current))
    return [CONTINUED + chunk for chunk in chunks[:-1]] + [ESCAPE + chunks[-1]]


def resolves_inside(path: str, root: str, excluded: str, *, folder: bool) -> bool:
    """Whether `path`, symbolic links followed, is under `root` (or `root` itself, where
    `folder`) and neither is nor is under `excluded`; `root` and `excluded` resolved already.
    A symbolic link loop is outside. What pathlib's resolve and is_relative_to answered, on
    strings: every store call asks, and pathlib's wrapping was most of a cached read's work."""
    resolved = os.path.realpath(path)
    try:
        os.stat(resolved)  # realpath leaves a loop unresolved: this tells it (as pathlib does)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
    if resolved == root:
        return folder
    return _under(resolved, root) and resolved != excluded and not _under(resolved, excluded)


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def relative_parts(key: str) -> list[str]:
    """The path components (relative to the data folder) of a valid key; pure."""
    validate_key(key)
    parts: list[str] = []
    for index, segment in enumerate(key.split("/")):
        parts.extend(segment_names(segment, first=index == 0))
    return parts


class UnmappablePathError(InvalidRequestError, ValueError):
    """A path that no object key maps to (outside the data folder, internal, or misnamed)."""


def key_from_parts(parts: Sequence[str]) -> str:
    """The key whose path components are `parts`; UnmappablePathError if no key maps there."""
    shown = "/".join(parts)
    broken = f"{shown!r}: a '%+' folder must continue a name: rename it"
    segments: list[str] = []
    pending: list[str] = []
    try:
        for name in parts:
            if name.startswith(CONTINUED):
                pending.append(name[len(CONTINUED) :])
            elif name.startswith(ESCAPE):
                pending.append(name[len(ESCAPE) :])
                segments.append(unquote("".join(pending), errors="strict"))
                pending = []
            elif pending:
                raise UnmappablePathError(broken)
            else:
                segments.append(name)
        if pending:
            raise UnmappablePathError(broken)
        key = "/".join(segments)
        canonical = relative_parts(key)
    except UnmappablePathError:
        raise
    except (InvalidRequestError, UnicodeError) as exc:
        raise UnmappablePathError(f"{shown!r} does not name an object key") from exc
    if canonical != list(parts):
        raise UnmappablePathError(
            f"{shown!r} is not how imgpipe names a key's file (names starting with '%' are "
            "escaped key segments; control characters and backslashes are escaped): rename it"
        )
    return key


def guess_content_type(key: str) -> str:
    """The content type of an object, from the extension of its key."""
    suffix = PurePosixPath(key.rsplit("/", 1)[-1]).suffix.lower()
    if not suffix:
        return "application/octet-stream"
    known = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type("x" + suffix, strict=False)[0]
    return known or "application/octet-stream"


def walk_files(root: Path, start: Path) -> Iterator[Path]:
    """Regular files under `start` (symbolic links not followed), skipping `root/.imgpipe`."""
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                continue
            raise
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not (folder == root and entry.name == STATE_DIR):
                    stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield Path(entry.path)
