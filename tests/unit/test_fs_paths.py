"""Keys to paths in the local store: any key S3 accepts stays inside the data folder, and back."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imgpipe.adapters.local.fs_paths import NAME_MAX, UnmappablePathError, relative_parts
from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.core.errors import InvalidRequestError, KeyConflictError, ObjectNotFoundError
from imgpipe.core.keys import validate_key

PATH_MAX = 4096
TRICKY = [
    "/", "//", ".", "..", "../", "/..", "\\", "..\\", "\x00", "%", "%2F", "%25", "%+", "+",
    "%2e%2e", ".imgpipe", ".IMGPIPE", ".imgpipe/", "\n", "\r", "\t", "\x7f", "\x85", "\u2028",
    "é", "写真", "📷", " ", "~", "uploads/", "renditions/", "IMG 0001.jpg", "\ud800",
]  # fmt: skip

any_chars = st.characters(exclude_categories=())  # surrogates too: validate_key refuses them
keys = st.one_of(
    st.text(),
    st.text(any_chars),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(any_chars, max_size=4)), max_size=60).map(
        "".join
    ),
    st.text(
        st.sampled_from(["a", "é", "写", "📷", "/", "%", "\\", "\x00", ".", "+"]), max_size=1100
    ),
    st.integers(200, 1030).map(lambda n: "uploads/" + "x" * n),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path_factory.mktemp("data"))


def assert_safe(store: FilesystemObjectStore, key: str) -> Path:
    path = store.path_for(key)
    parts = path.relative_to(store.root).parts
    assert parts
    for part in parts:
        assert part not in ("", ".", "..")
        assert "/" not in part
        assert "\\" not in part
        assert "\x00" not in part
        assert len(part.encode("utf-8")) <= NAME_MAX
    assert not (parts[0].isascii() and parts[0].lower() == ".imgpipe")
    resolved = path.resolve()
    assert resolved != store.root
    assert resolved.is_relative_to(store.root)
    assert not resolved.is_relative_to(store.state_dir)
    assert len(os.fsencode(path)) < PATH_MAX
    return path


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys)
@example(key="..")
@example(key="../../etc/passwd")
@example(key="/etc/passwd")
@example(key="uploads/\x00/x")
@example(key=".imgpipe/imgpipe.db")
@example(key="\x01" * 1024)
@example(key="/" * 1024)
@example(key="%" * 1024)
@example(key="/.imgpipe")
@example(key="é" * 512)
def test_every_key_s3_accepts_maps_inside_the_data_folder_and_back(
    store: FilesystemObjectStore, key: str
) -> None:
    try:
        validate_key(key)
    except InvalidRequestError:
        with pytest.raises(InvalidRequestError):
            store.path_for(key)
        return

    path = assert_safe(store, key)

    assert store.key_for(path) == key


names = st.text(st.characters(exclude_categories=()), min_size=1, max_size=40).filter(
    lambda n: "/" not in n and "\x00" not in n and n not in (".", "..")
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(names, min_size=1, max_size=4))
def test_a_path_maps_to_at_most_one_key(store: FilesystemObjectStore, parts: list[str]) -> None:
    # GIVEN any file dropped into the data folder
    path = store.root.joinpath(*parts)
    try:
        key = store.key_for(path)
    except UnmappablePathError:
        return  # not a file of the store (a ValueError too: the watcher skips it)
    # THEN the key it maps to maps back to that very file
    assert store.path_for(key) == path


@settings(max_examples=60, deadline=None)
@given(key=keys)
@example(key="/.imgpipe")
@example(key=".imgpipe")
@example(key="\x01" * 1024)
@example(key="a/" * 511 + "b")
def test_any_key_round_trips_through_the_disk(key: str) -> None:
    try:
        validate_key(key)
    except InvalidRequestError:
        return
    body = key.encode("utf-8", "surrogatepass") + b"\x00body"
    with tempfile.TemporaryDirectory() as tmp:
        store = FilesystemObjectStore(Path(tmp))

        info = store.put(key, body, "application/octet-stream")

        assert store.get(key) == body
        assert store.get(key, version_id=info.version_id) == body
        assert [o.key for o in store.list("")] == [key]
        files = [p for p in store.root.rglob("*") if p.is_file()]
        [found] = [p for p in files if not p.is_relative_to(store.state_dir)]
        assert store.key_for(found) == key
        store.delete(key)
        assert store.head(key) is None
        assert list(store.list("")) == []
        assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("key", ["uploads/" + "a" * 3000, "é" * 513, "uploads/" + "写" * 339])
def test_a_key_over_1024_bytes_is_refused(tmp_path: Path, key: str) -> None:
    store = FilesystemObjectStore(tmp_path)
    with pytest.raises(InvalidRequestError, match="1024"):
        store.path_for(key)
    with pytest.raises(InvalidRequestError):
        store.put(key, b"x", "image/jpeg")


@pytest.mark.parametrize("char", ["a", "é", "\x01", "%", "写"])
def test_a_1024_byte_key_with_a_1000_byte_name_works_end_to_end(tmp_path: Path, char: str) -> None:
    name = char * (1000 // len(char.encode()))
    name += "b" * (1000 - len(name.encode()))
    key = "uploads/" + name + "/" + "c" * (1024 - 8 - 1000 - 1)
    assert len(name.encode()) == 1000
    assert len(key.encode()) == 1024
    store = FilesystemObjectStore(tmp_path)

    info = store.put(key, b"long", "application/octet-stream")

    assert_safe(store, key)
    assert store.get(key) == b"long"
    assert store.head(key) == info
    assert [o.key for o in store.list("uploads/")] == [key]
    store.delete(key)
    assert list(store.list("")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".imgpipe", "uploads"]


def test_plain_names_are_kept_as_they_are() -> None:
    key = "uploads/abc/IMG 0001 (1) + copy %zz 100%.jpg"
    assert relative_parts(key) == ["uploads", "abc", "IMG 0001 (1) + copy %zz 100%.jpg"]
    assert relative_parts("uploads/ünïcödé/写真 📷.heic") == ["uploads", "ünïcödé", "写真 📷.heic"]
    assert relative_parts("renditions/x/.hidden") == ["renditions", "x", ".hidden"]


def test_names_that_are_not_plain_are_escaped() -> None:
    assert relative_parts("/a//b/") == ["%", "a", "%", "b", "%"]
    assert relative_parts("../.") == ["%..", "%."]
    assert relative_parts(".imgpipe/x") == ["%.imgpipe", "x"]
    assert relative_parts("x/.imgpipe") == ["x", ".imgpipe"]  # only the top level is reserved
    assert relative_parts("%41+") == ["%%2541%2B"]
    assert relative_parts("a\\b\x00c\td") == ["%a%5Cb%00c%09d"]
    long = relative_parts("x" * 600)
    assert [len(p) for p in long] == [255, 255, 95]
    assert long[0].startswith("%+")
    assert long[-1].startswith("%")
    assert long[-1][1] != "+"


def test_a_folder_and_a_file_of_the_same_name_conflict(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put("uploads/a/b", b"1", "image/jpeg")

    with pytest.raises(KeyConflictError, match="'uploads/a/b' is already an object"):
        store.put("uploads/a/b/c", b"2", "image/jpeg")
    store.put("uploads/x/y/z", b"3", "image/jpeg")
    with pytest.raises(KeyConflictError, match="other keys start with 'uploads/x/'"):
        store.put("uploads/x", b"4", "image/jpeg")

    assert [o.key for o in store.list("")] == ["uploads/a/b", "uploads/x/y/z"]
    assert list(store.tmp_dir.iterdir()) == []


def test_an_empty_folder_gives_way_to_an_object(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    (tmp_path / "uploads" / "empty").mkdir(parents=True)

    store.put("uploads/empty", b"1", "image/jpeg")

    assert store.get("uploads/empty") == b"1"


def test_a_dropped_file_is_an_object(tmp_path: Path) -> None:
    # GIVEN a file copied into the uploads folder by hand
    store = FilesystemObjectStore(tmp_path)
    dropped = tmp_path / "uploads" / "holiday" / "IMG 0001.JPG"
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(b"jpeg bytes")

    # THEN the store sees it, under its own name
    key = store.key_for(dropped)
    assert key == "uploads/holiday/IMG 0001.JPG"
    info = store.head(key)
    assert info is not None
    assert (info.size, info.content_type) == (10, "image/jpeg")
    assert info.etag == hashlib.sha256(b"jpeg bytes").hexdigest()
    assert [o.key for o in store.list("uploads/")] == [key]

    # WHEN it is replaced in place, THEN the etag follows
    time.sleep(0.01)
    dropped.write_bytes(b"other bytes!")
    info2 = store.head(key)
    assert info2 is not None
    assert info2.etag == hashlib.sha256(b"other bytes!").hexdigest()


def test_open_hands_over_the_sha256_only_for_the_very_file_hashed(tmp_path: Path) -> None:
    # GIVEN an object put through the store (which hashed it as it wrote it)
    store = FilesystemObjectStore(tmp_path)
    key = "uploads/h/a.jpg"
    store.put(key, b"first bytes", "image/jpeg")

    # THEN opening it hands over that sha256: the render's caller does not read it again
    with store.open(key) as opened:
        assert opened.digest == hashlib.sha256(b"first bytes").hexdigest()

    # WHEN it is rewritten in place by hand (same size; its mtime moves), THEN the open no
    # longer knows the digest, and sha256() reads the file: the new bytes' hash, not the old
    path = store.path_for(key)
    time.sleep(0.01)
    with path.open("r+b") as f:
        f.write(b"FIRST")
    with store.open(key) as opened:
        assert opened.digest is None
        assert opened.sha256() == hashlib.sha256(b"FIRST bytes").hexdigest()

    # WHEN it is then headed (which hashes it for its ETag), THEN the next open knows it again
    info = store.head(key)
    assert info is not None
    with store.open(key) as opened:
        assert opened.digest == info.etag == hashlib.sha256(b"FIRST bytes").hexdigest()


def test_put_moves_its_own_spool_into_place_instead_of_copying(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    with store.spool() as spool:
        # GIVEN a spool written in two pieces
        spool.write(b"first ")
        spool.write(memoryview(b"bytes"))
        inode = os.fstat(spool.fileno()).st_ino
        spool.seek(0)

        # WHEN it is put THEN the object is that very file (moved, not copied), and its ETag
        # is the sha256 taken as it was written
        info = store.put("uploads/m/a.jpg", spool, "image/jpeg")
        assert os.stat(store.path_for("uploads/m/a.jpg")).st_ino == inode
        assert info.etag == hashlib.sha256(b"first bytes").hexdigest()

        # THEN it takes no more writes, and is not put twice
        with pytest.raises(io.UnsupportedOperation):
            spool.write(b"more")
        with pytest.raises(ValueError, match="put once"):
            store.put("uploads/m/b.jpg", spool, "image/jpeg")
    assert store.get("uploads/m/a.jpg") == b"first bytes"
    assert os.listdir(store.tmp_dir) == []

    # WHEN a spool is written out of order (its hash would not be its bytes') THEN it refuses;
    # closed, it leaves nothing in the tmp folder
    with store.spool() as spool:
        spool.write(b"abc")
        spool.seek(0)
        with pytest.raises(io.UnsupportedOperation):
            spool.write(b"x")
    assert os.listdir(store.tmp_dir) == []


def test_a_dropped_file_no_key_maps_to_is_skipped(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    (tmp_path / "uploads").mkdir()
    for name in ("%zz.jpg", "%+x", "tab\there.jpg"):
        (tmp_path / "uploads" / name).write_bytes(b"x")
        with pytest.raises(ValueError, match="rename"):  # what the watcher catches
            store.key_for(tmp_path / "uploads" / name)
    (tmp_path / "uploads" / "ok.jpg").write_bytes(b"x")

    assert [o.key for o in store.list("")] == ["uploads/ok.jpg"]


def test_internal_state_is_never_an_object(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    (store.state_dir / "imgpipe.db").write_bytes(b"secret")
    (store.tmp_dir / "put-leftover").write_bytes(b"half")

    with pytest.raises(UnmappablePathError):
        store.key_for(store.state_dir / "imgpipe.db")
    with pytest.raises(UnmappablePathError):
        store.key_for(tmp_path.parent / "elsewhere.jpg")
    assert list(store.list("")) == []
    assert store.head(".imgpipe/imgpipe.db") is None

    store.put(".imgpipe/imgpipe.db", b"an object", "application/octet-stream")

    assert (store.state_dir / "imgpipe.db").read_bytes() == b"secret"
    assert store.get(".imgpipe/imgpipe.db") == b"an object"


def test_symbolic_links_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    store = FilesystemObjectStore(tmp_path / "data")
    (store.root / "uploads").mkdir()
    (store.root / "uploads" / "dir").symlink_to(outside, target_is_directory=True)
    (store.root / "uploads" / "file.jpg").symlink_to(outside / "secret.jpg")
    (store.root / "state").symlink_to(store.state_dir, target_is_directory=True)
    (store.root / "uploads" / "loop").symlink_to(store.root / "uploads" / "loop")

    assert store.head("uploads/dir/secret.jpg") is None
    assert store.head("uploads/file.jpg") is None
    assert store.head("uploads/loop/x.jpg") is None
    with pytest.raises(ObjectNotFoundError):
        store.get("uploads/dir/secret.jpg")
    with pytest.raises(InvalidRequestError):
        store.put("uploads/dir/new.jpg", b"x", "image/jpeg")
    with pytest.raises(InvalidRequestError):
        store.put("uploads/dir/made/on/the/way.jpg", b"x", "image/jpeg")
    with pytest.raises(InvalidRequestError):
        store.put("state/tmp/x", b"x", "image/jpeg")
    store.delete("uploads/dir/secret.jpg")
    assert list(store.list("")) == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret.jpg"]


@pytest.mark.parametrize("prefix", ["\ud800", "uploads/\ud800/", "x" * 5000 + "/", "a/" * 3000])
def test_list_of_a_prefix_no_key_can_have_is_empty(tmp_path: Path, prefix: str) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put("uploads/a.jpg", b"x", "image/jpeg")

    assert list(store.list(prefix)) == []


def test_an_old_version_is_gone_after_an_overwrite(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    old = store.put("uploads/a.jpg", b"1", "image/jpeg")
    new = store.put("uploads/a.jpg", b"2", "image/jpeg")

    with pytest.raises(ObjectNotFoundError):
        store.get("uploads/a.jpg", version_id=old.version_id)
    assert store.get("uploads/a.jpg", version_id=new.version_id) == b"2"


def test_sequencers_increase_even_when_the_clock_stands_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemObjectStore(tmp_path)
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)

    seqs = [store.put("uploads/a.jpg", b"%d" % i, "image/jpeg").sequencer for i in range(5)]

    assert [int(s or "0", 16) for s in seqs] == [1_700_000_000_000_000_000 + i for i in range(5)]
    head = store.head("uploads/a.jpg")
    assert head is not None
    assert head.sequencer == seqs[-1]


def test_delete_removes_emptied_folders_but_not_the_top_level(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put("uploads/a/b/c.jpg", b"x", "image/jpeg")
    store.put("uploads/a/keep.jpg", b"x", "image/jpeg")

    store.delete("uploads/a/b/c.jpg")
    assert sorted(p.name for p in (tmp_path / "uploads" / "a").iterdir()) == ["keep.jpg"]
    store.delete("uploads/a/keep.jpg")

    assert (tmp_path / "uploads").is_dir()
    assert list((tmp_path / "uploads").iterdir()) == []


def test_stale_temporary_files_are_swept_on_start(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    stale, fresh = store.tmp_dir / "put-stale", store.tmp_dir / "put-fresh"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 3 * 24 * 3600,) * 2)

    FilesystemObjectStore(tmp_path)

    assert sorted(p.name for p in store.tmp_dir.iterdir()) == ["put-fresh"]


@given(st.text(max_size=40))
@example("a\\b")
@example("tab\there")
@example("c1\x85")
@example("del\x7f")
@example("fine é ✓")
def test_a_segment_is_plain_exactly_when_no_character_needs_escaping(segment: str) -> None:
    """_is_plain's one regex says what the per-character rule says (backslash, C0, DEL, C1)."""
    from imgpipe.adapters.local.fs_paths import _is_control, _is_plain

    needs_escaping = any(ch == "\\" or _is_control(ch) for ch in segment)
    named_otherwise = segment in ("", ".", "..") or segment.startswith("%")
    too_long = len(segment.encode("utf-8", "surrogatepass")) > NAME_MAX
    if named_otherwise or too_long:
        return
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate: no key holds one
    assert _is_plain(segment, first=False) == (not needs_escaping)


def test_resolves_inside_answers_what_pathlib_answered(tmp_path: Path) -> None:
    """The store's check on strings against pathlib's resolve and is_relative_to, over the
    cases that matter: the folder itself, its state, a sibling whose name starts the same,
    links in and out, a loop, a path not made yet."""
    from imgpipe.adapters.local.fs_paths import resolves_inside

    root, sibling = tmp_path / "data", tmp_path / "data2"
    state = root / ".imgpipe"
    for folder in (root / "uploads", state, sibling):
        folder.mkdir(parents=True)
    (root / "in").symlink_to(root / "uploads", target_is_directory=True)
    (root / "out").symlink_to(sibling, target_is_directory=True)
    (root / "st").symlink_to(state, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    cases = [
        root, state, state / "tmp", sibling / "f", root / "uploads" / "not" / "made",
        root / "in" / "f", root / "out" / "f", root / "st" / "f", root / "loop" / "f",
        root / "uploads" / ".." / ".." / "data2" / "f",
    ]  # fmt: skip

    def by_pathlib(path: Path, folder: bool) -> bool:
        try:
            resolved = path.resolve()
            resolved.stat()  # Python 3.13's resolve no longer tells a loop by itself
        except RuntimeError:  # Python 3.11-3.12: a loop
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return False
        return (
            (folder or resolved != root)
            and resolved.is_relative_to(root)
            and not resolved.is_relative_to(state)
        )

    for path in cases:
        for folder in (False, True):
            expected = by_pathlib(path, folder)
            assert resolves_inside(str(path), str(root), str(state), folder=folder) == expected
    assert not resolves_inside(str(root / "loop" / "f"), str(root), str(state), folder=True)
    assert not resolves_inside(str(sibling / "f"), str(root), str(state), folder=True)
