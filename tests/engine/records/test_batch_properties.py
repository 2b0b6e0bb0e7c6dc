"""Property tests: whatever a batch file holds, and whatever kind of file it is, loading ends in a
:class:`Batch` or a :class:`BatchInputError` — never another exception, never a hang, never a file created.

The error must name the file, and every line it blames must be a line of
that file; a batch that loads holds only jobs that can run (unique ids, no
NUL in a field that becomes a path, a flow that loaded or a fallback).
Inputs are built from the kinds of damage real batches show: NUL bytes
(raw and ``\\u0000``), invalid UTF-8, byte-order marks (on line 1 and
later), CRLF, huge and deeply nested lines, duplicate ids, wrong types,
unknown fields, empty files — and FIFOs, directories, devices and
dangling links in place of the file.  (Nesting stays far below the depth
where orjson crashes the process; ``test_batch.py`` tests that in a child.)
"""
from __future__ import annotations

import codecs
import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import event, given, settings, strategies as st

from engine.errors import BatchInputError
from engine.records.batch import MAX_LINE_BYTES, MAX_LINE_DEPTH, Batch, load_batch
from navigation.legacy import REGISTRY
from navigation.steps import default_registry

GOOD_FLOW = {"title": "good", "steps": [{"type": "navigate", "url": "${BASE_URL}/form.html"}]}
BAD_FLOW = {"title": "bad", "steps": [{"type": "clip", "selectors": [["#x"]]}]}

# What a file in place of the batch can be, and what its error must say (None: a regular file, read it).
KINDS: dict[str, str | None] = {
    "regular": None,
    "fifo": "is a FIFO (named pipe), not a batch file",
    "link-to-fifo": "is a FIFO (named pipe), not a batch file",
    "directory": "is a directory, not a batch file",
    "device": "is a character device, not a batch file",
    "dangling-link": "no such batch file",
    "missing": "no such batch file",
    "nul-in-name": "is not a usable file name",
}

FLOW_REFS = st.sampled_from(["good.json", "bad.json", "missing.json", "pipe.json", "sub", "/dev/null",
                             "../root/good.json", "legacy:fixture_form", "legacy:nope", "fixture_form",
                             "go\0od.json", "legacy:fix\0ture_form", ""])
IDS = st.sampled_from(["j1", "j2", "j3", "j1", "", "  ", "a/b", "a@1", "n\0ul", "x" * 201]) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
JOB = st.fixed_dictionaries(
    {"id": IDS | VALUES, "flow": FLOW_REFS | VALUES},
    optional={"credential": st.sampled_from(["shop/alice", "alice", "a/b/c", "sh\0p/alice", "/b"]) | VALUES,
              "vars": st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=3) | VALUES,
              "retries": st.integers(-2, 25) | VALUES, "timeout": st.floats(-1, 90000) | VALUES,
              "fallback": st.sampled_from(["fixture_form", "ghost", ""]) | VALUES,
              "navigation": st.sampled_from(["recorder", "legacy", "fast"]) | VALUES,
              "colour": VALUES})
VALID_JOB = st.fixed_dictionaries(  # most lines of a real batch are fine: the paths that accept must be exercised too
    {"id": st.sampled_from(["j1", "j2", "j3", "j4", "j5", "é-1"]),
     "flow": st.sampled_from(["good.json", "../root/good.json", "legacy:fixture_form"])},
    optional={"credential": st.just("shop/alice"), "vars": st.dictionaries(st.text(max_size=4), st.text(max_size=6),
                                                                           max_size=2),
              "retries": st.integers(0, 20), "timeout": st.floats(0.5, 86400),
              "fallback": st.just("fixture_form")})
HANG_S = 10.0  # refusing a FIFO is a stat away; a load still running after this is blocked in open() or read()
HUGE = json.dumps({"id": "huge", "flow": "good.json", "vars": {"pad": "x" * MAX_LINE_BYTES}}).encode()


def _deep(n: int, balanced: bool) -> bytes:
    inner = b"[" * n + (b"]" * n if balanced else b"")
    return b'{"id": "deep", "flow": "good.json", "vars": ' + inner + b"}"


LINES = st.one_of(
    VALID_JOB.map(lambda d: json.dumps(d).encode()),
    VALID_JOB.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    JOB.map(lambda d: json.dumps(d).encode()),                       # NUL written as \u0000, non-ASCII escaped
    JOB.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),  # raw UTF-8, raw control characters
    st.builds(_deep, st.integers(MAX_LINE_DEPTH - 2, 5000), st.booleans()),
    st.binary(max_size=40),                                          # raw NUL bytes, invalid UTF-8, garbage
    st.sampled_from([b"", b"   ", b"[1, 2]", b'"str"', b"42", b"null", b'{"id": "j1", "flow": ',
                     b"\xef\xbb\xbf" + json.dumps({"id": "bom", "flow": "good.json"}).encode(),
                     b'{"id": "nul", "flow": "good.json"}\0', b"\xff\xfe{}", HUGE]),
    VALUES.map(lambda v: json.dumps(v).encode()),
)
CONTENT = st.builds(
    lambda head, lines, sep, tail: head + sep.join(line.replace(b"\n", b" ") for line in lines) + tail,
    st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE]),
    st.lists(LINES, max_size=6),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([b"", b"\n"]),
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of flows and odd files, shared by every example (each example removes what it adds)."""
    base = tmp_path_factory.mktemp("batchprops") / "root"
    base.mkdir()
    (base / "good.json").write_text(json.dumps(GOOD_FLOW))
    (base / "bad.json").write_text(json.dumps(BAD_FLOW))
    (base / "sub").mkdir()
    os.mkfifo(base / "pipe.json")
    os.mkfifo(base / "batch.fifo")
    (base / "link-to-fifo.jsonl").symlink_to(base / "batch.fifo")
    (base / "dangling.jsonl").symlink_to(base / "gone.jsonl")
    (base / "dir.jsonl").mkdir()
    return base


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    """Every entry under ``folder`` with its file type and size (lstat: a link is listed, not followed)."""
    out = []
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            info = os.lstat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), folder), stat.S_IFMT(info.st_mode),
                        info.st_size))
    return sorted(out)


def _batch_path(root: Path, kind: str) -> Path:
    return {"regular": root / "fuzz.jsonl", "fifo": root / "batch.fifo", "link-to-fifo": root / "link-to-fifo.jsonl",
            "directory": root / "dir.jsonl", "device": Path("/dev/null"), "dangling-link": root / "dangling.jsonl",
            "missing": root / "missing.jsonl", "nul-in-name": root / "fu\0zz.jsonl"}[kind]


def _line_count(content: bytes) -> int:
    return content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)


def _check_error(msg: str, source: str, kind: str, lines: int) -> None:
    assert msg.startswith(f"{source}: "), msg[:300]
    expected = KINDS[kind]
    if expected is not None:  # the file itself is refused: one line, naming what it is
        assert expected in msg and "\n" not in msg, msg[:300]
        return
    blamed = {int(n) for n in re.findall(rf"^  - {re.escape(source)}:(\d+): ", msg, re.M)}
    assert all(1 <= n <= lines for n in blamed), (sorted(blamed), lines, msg[:500])
    head = msg.splitlines()[0]
    counted = re.fullmatch(rf"{re.escape(source)}: (\d+) invalid line\(s\); nothing was run", head)
    if counted:
        assert len(blamed) == int(counted.group(1)), msg[:500]
    else:
        assert head == f"{source}: no valid jobs in the batch", msg[:500]


def _check_batch(batch: Batch, source: str, lines: int, skip: bool) -> None:
    assert batch.jobs and batch.path == source
    assert len({j.id for j in batch.jobs}) == len(batch.jobs)
    legacy_names = set(REGISTRY.names())
    for j in batch.jobs:
        assert 1 <= j.line <= lines
        assert j.id.strip() and "\0" not in j.id and "/" not in j.id and "@" not in j.id and j.id not in (".", "..")
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in j.id)
        assert j.credential is None or ("\0" not in j.credential and j.credential.count("/") == 1)
        assert "\0" not in j.flow_key
        if j.legacy is not None:
            assert j.legacy in legacy_names
        else:
            assert os.path.isabs(j.flow_key)
            assert j.flow_key in batch.flows or (j.flow_key in batch.flow_errors and j.fallback in legacy_names)
    if not skip:
        assert batch.skipped == ()
    for problem in batch.skipped:
        number = re.match(rf"{re.escape(source)}:(\d+): ", problem)
        assert number and 1 <= int(number.group(1)) <= lines, problem[:300]


def _load_or_unblock(root: Path, path: Path, skip: bool) -> Batch:
    """``load_batch`` in a thread; if it blocks (a FIFO opened for reading), release it and fail the example.

    Why not a test timeout: hypothesis would go on to shrink with examples
    that block again, and the suite would hang; this way a regression is
    a quick failure naming the cause.
    """
    outcome: list[BaseException | Batch] = []

    def target() -> None:
        try:
            outcome.append(load_batch(path, strategies=default_registry(), legacy=REGISTRY, skip_invalid=skip))
        except BaseException as exc:  # handed to the test thread below and re-raised there
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(HANG_S)
    if worker.is_alive():
        os.close(os.open(root / "batch.fifo", os.O_WRONLY | os.O_NONBLOCK))  # a writer that closes: the reader sees EOF
        worker.join(HANG_S)
        pytest.fail(f"load_batch({path}) blocked for {HANG_S:.0f} s: it opened a FIFO for reading")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@settings(max_examples=250)
@given(kind=st.sampled_from(["regular"] * 12 + sorted(KINDS)), content=CONTENT, skip=st.booleans())
def test_any_batch_file_loads_or_gives_a_batch_input_error_and_creates_nothing(root, kind, content, skip):
    path = _batch_path(root, kind)
    if kind == "regular":
        path.write_bytes(content)
    source = str(path).replace("\0", "\\0")
    before = _listing(root)
    try:
        try:
            batch = _load_or_unblock(root, path, skip) if "fifo" in kind else \
                load_batch(path, strategies=default_registry(), legacy=REGISTRY, skip_invalid=skip)
        except BatchInputError as exc:
            assert type(exc).category == "input"
            _check_error(str(exc), source, kind, _line_count(content))
            event(f"{kind}: refused")
        else:
            assert kind == "regular", f"a {kind} loaded as a batch"
            event(f"{kind}: loaded" + (" (lines skipped)" if batch.skipped else ""))
            _check_batch(batch, source, _line_count(content), skip)
        assert _listing(root) == before, "loading a batch created, removed or changed a file"
    finally:
        if kind == "regular":
            path.unlink()


@settings(max_examples=60)
@given(ids=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=8))
def test_every_repeated_id_is_blamed_on_its_line_and_the_first_one_kept(root, ids):
    path = root / "dups.jsonl"
    path.write_bytes(b"".join(json.dumps({"id": i, "flow": "good.json"}).encode() + b"\n" for i in ids))
    try:
        first: dict[str, int] = {}
        for number, i in enumerate(ids, 1):
            first.setdefault(i, number)
        repeats = [(n, i) for n, i in enumerate(ids, 1) if first[i] != n]
        batch = load_batch(path, strategies=default_registry(), legacy=REGISTRY, skip_invalid=True)
        assert [j.id for j in batch.jobs] == list(first)
        assert [j.line for j in batch.jobs] == list(first.values())
        assert list(batch.skipped) == [f"{path}:{n}: duplicate job id {i!r} (first on line {first[i]})"
                                       for n, i in repeats]
        if repeats:
            with pytest.raises(BatchInputError, match=rf"{len(repeats)} invalid line\(s\)"):
                load_batch(path, strategies=default_registry(), legacy=REGISTRY)
    finally:
        path.unlink()
