"""Bad flows give one clear error that names the file (and the step and field), never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import navigation.flow._load as flow_load
from navigation.errors import FlowError, FlowFileError, FlowValidationError
from navigation.flow import load_flow, nesting_depth, parse_flow
from navigation.flow._parse import MAX_DEPTH
from tests.flow.conftest import DATA

BAD = DATA / "bad"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, error, expected", [
    ("malformed.json", FlowFileError, "malformed JSON at line 5, column 48: trailing comma is not allowed"),
    ("missing_steps.json", FlowFileError, '"steps" is missing'),
    ("steps_not_list.json", FlowFileError, '"steps" must be a list, got object'),
    ("top_level_list.json", FlowFileError, "the top level must be a JSON object (a recorder flow), got list"),
    ("not_utf8.json", FlowFileError, "is not UTF-8 text (byte 0xe9 at line 1, column 87)"),
    ("unknown_type.json", FlowValidationError, 'step 1 (swipe): unknown step type "swipe"'),
    ("empty_selectors.json", FlowValidationError, 'step 3 (click): "selectors" must be a non-empty list'),
    ("rx_out_of_range.json", FlowValidationError,
     'step 1 (click): "rx" must be between 0 and 1 (a fraction of the element\'s box), got 1.5'),
])
def test_each_bad_file_gives_one_clear_error(name: str, error: type[FlowError], expected: str) -> None:
    with pytest.raises(error) as info:
        load_flow(BAD / name)
    message = str(info.value)
    assert message.startswith(f"{BAD / name}: ")
    assert expected in message
    assert type(info.value).category == "input"


def test_wrong_types_are_all_collected_with_locations() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_flow(BAD / "wrong_types.json")
    assert info.value.source == str(BAD / "wrong_types.json")
    assert info.value.problems == [
        'flow: "timeout" must be a number (ms), got string',
        'step 0 (setViewport): "width" must be a whole number (px), got string',
        'step 0 (setViewport): "isMobile" must be true or false, got string',
        'step 1 (navigate): "url" must be a string, got number',
        'step 2 (click): "offsetX" must be a number (px), got string',
        'step 2 (click): "button" must be one of primary, auxiliary, secondary, back, forward; got "left-ish"',
        'step 3 (waitForElement): "operator" must be one of >=, ==, <=; got "!="',
        'step 3 (waitForElement): "count" must be a whole number, got 1.5',
        'step 4 (keyDown): "key" must be a string or {"secret": NAME}, got list',
        'step 5: "type" must be a string, got number',
    ]


def test_a_20_mb_file_is_refused_from_its_size_without_being_read(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(20 * 1024 * 1024)

    def must_not_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(flow_load, "open", must_not_open, raising=False)
    with pytest.raises(FlowFileError) as info:
        load_flow(big)
    assert str(info.value) == f"{big}: is 20.0 MB, over the 10.0 MB limit for a flow file"


def test_max_bytes_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.json"
    path.write_text('{"title": "t", "steps": [{"type": "close"}]}')
    with pytest.raises(FlowFileError, match="over the 0.0 MB limit"):
        load_flow(path, max_bytes=10)
    assert load_flow(path, max_bytes=1000).steps[0].type == "close"


def test_missing_directory_and_fifo(tmp_path: Path) -> None:
    with pytest.raises(FlowFileError, match=r"nope\.json: no such file$"):
        load_flow(tmp_path / "nope.json")
    with pytest.raises(FlowFileError, match="is a directory, not a flow file"):
        load_flow(tmp_path)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(FlowFileError, match=r"is a FIFO \(named pipe\), not a flow file"):
        load_flow(fifo)  # would block forever if it were opened


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    with pytest.raises(FlowFileError, match="cannot read it"):
        load_flow(path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"title": "t", "steps": [{"type": "close"}]}))
    assert load_flow(path).title == "t"


def test_absurd_nesting_is_refused_before_the_decoder_sees_it(tmp_path: Path) -> None:
    """orjson 3.8 segfaults on ~1M nested brackets; run in a child so a regression cannot kill the session."""
    path = tmp_path / "deep.json"
    depth = 1_000_000
    path.write_text('{"title": "t", "steps": ' + "[" * depth + "]" * depth + "}")
    code = ("import sys\nfrom navigation.flow import load_flow\nfrom navigation.errors import FlowFileError\n"
            "try:\n    load_flow(sys.argv[1])\nexcept FlowFileError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "JSON nests deeper than 64 levels" in done.stdout


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    selector = "[" * 100 + "]" * 100
    data = orjson.dumps({"title": "t", "steps": [{"type": "click", "selectors": [[f"div{selector}"]]}] * 2})
    assert nesting_depth(data, MAX_DEPTH) == 5


def test_problem_list_is_capped() -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": [{"type": "nope"}] * 500}, source="many.json")
    assert len(info.value.problems) == 201
    assert info.value.problems[-1] == "... and 300 more problem(s) not shown"


def test_too_many_steps_and_empty_steps() -> None:
    with pytest.raises(FlowFileError, match='"steps" has 10001 entries; the limit is 10000'):
        parse_flow({"title": "t", "steps": [{"type": "close"}] * 10_001}, source="huge.json")
    with pytest.raises(FlowValidationError, match='"steps" is empty'):
        parse_flow({"title": "t", "steps": []}, source="empty.json")


def test_missing_title_and_non_object_step() -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"steps": [[1], {"url": "x"}]}, source="f.json")
    assert info.value.problems == ['flow: "title" is required (a string)', "step 0: must be an object, got list",
                                   'step 1: "type" is required (a string)']


def test_validate_style_run_over_bad_files_prints_no_traceback() -> None:
    """What a `validate` command does: every bad file -> one message on stdout, nothing on stderr."""
    code = ("import sys\nfrom navigation.flow import load_flow\nfrom navigation.errors import FlowError\n"
            "for path in sys.argv[1:]:\n    try:\n        load_flow(path)\n    except FlowError as e:\n"
            "        print(type(e).__name__, str(e).splitlines()[0])\n")
    files = sorted(str(p) for p in BAD.iterdir())
    done = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 0 and done.stderr == ""
    assert len(done.stdout.splitlines()) == len(files)
