"""Segment lifecycle: explicit create/attach/close/unlink, crash leftovers cleaned, tracker kept quiet."""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from coordination import ContentionTelemetry, OwnershipTable, SlotState, sweep_stale_segments
from coordination import _layout as L
from coordination._segment import SHM_DIR, Segment, segment_name
from coordination.errors import SegmentError, SegmentInUse

from . import _procs

REPO = Path(__file__).resolve().parents[2]


def _exists(name: str) -> bool:
    return (SHM_DIR / name).exists()


def _crash_a_supervisor(directory: Path) -> None:
    """A real process creates both segments and is SIGKILLed before it can clean up."""
    p = multiprocessing.get_context("fork").Process(target=_procs.create_and_die, args=(str(directory),))
    p.start()
    p.join(30)
    assert p.exitcode == -9


def test_create_attach_close_unlink_leaves_nothing(run_dir: Path) -> None:
    table = OwnershipTable.create(run_dir, 3)
    other = OwnershipTable.attach(run_dir)
    assert other.name == table.name == segment_name(run_dir, L.KIND_OWNERSHIP)
    slot = table.claim(0)
    assert other.read(slot.index).state is SlotState.CLAIMED  # one segment, two mappings
    other.close()
    table.close()
    assert _exists(table.name)  # closing unmaps; only unlink removes
    table.unlink()
    assert not _exists(table.name)
    assert not Segment.marker_path(run_dir, L.KIND_OWNERSHIP).exists()


def test_context_manager_unlinks_only_in_the_creator(run_dir: Path) -> None:
    with OwnershipTable.create(run_dir, 1) as table:
        with OwnershipTable.attach(run_dir):
            pass
        assert _exists(table.name)  # the attacher's exit did not unlink
    assert not _exists(table.name)
    with ContentionTelemetry.create(run_dir, 2) as tele:
        name = tele.name
    assert not _exists(name)


def test_attach_without_segment_is_a_segment_error(run_dir: Path) -> None:
    with pytest.raises(SegmentError, match="no ownership segment"):
        OwnershipTable.attach(run_dir)


def test_second_create_while_creator_lives_is_refused(run_dir: Path) -> None:
    with OwnershipTable.create(run_dir, 1):
        with pytest.raises(SegmentInUse, match="live pid"):
            OwnershipTable.create(run_dir, 1)


def test_crashed_runs_segments_are_cleaned_by_the_next_run(run_dir: Path, coordination_logs) -> None:
    _crash_a_supervisor(run_dir)
    own, ctn = segment_name(run_dir, L.KIND_OWNERSHIP), segment_name(run_dir, L.KIND_CONTENTION)
    assert _exists(own) and _exists(ctn)  # the crash left them behind
    with OwnershipTable.create(run_dir, 4) as table, ContentionTelemetry.create(run_dir, 4):
        assert table.slots == 4  # a fresh table, not the dead run's 2 slots
        assert all(s.state is SlotState.FREE and s.epoch == 0 for s in table.snapshot())
    cleaned = [r for r in coordination_logs.records if r.getMessage() == "stale segment cleaned"]
    assert {r.segment for r in cleaned} == {own, ctn}
    assert all(r.name.startswith("drover.audit.") for r in cleaned)
    assert not _exists(own) and not _exists(ctn)


def test_orphan_segment_without_marker_is_cleaned(run_dir: Path) -> None:
    _crash_a_supervisor(run_dir)
    Segment.marker_path(run_dir, L.KIND_OWNERSHIP).unlink()  # as if it died between the two steps
    with OwnershipTable.create(run_dir, 1) as table, ContentionTelemetry.create(run_dir, 1) as tele:
        assert table.slots == 1 and tele.rows == 1


def test_sweep_removes_only_segments_of_dead_creators(tmp_path: Path) -> None:
    dead_dir, live_dir = tmp_path / "dead", tmp_path / "live"
    _crash_a_supervisor(dead_dir)
    with OwnershipTable.create(live_dir, 1) as live:
        swept = sweep_stale_segments()
        names = {s.name for s in swept}
        assert segment_name(dead_dir, L.KIND_OWNERSHIP) in names
        assert segment_name(dead_dir, L.KIND_CONTENTION) in names
        assert live.name not in names and _exists(live.name)
    assert not _exists(segment_name(dead_dir, L.KIND_OWNERSHIP))


def test_attach_from_an_unrelated_interpreter_does_not_destroy_the_segment(run_dir: Path) -> None:
    """Python 3.11's resource tracker of an attaching process would unlink the segment at its exit."""
    with OwnershipTable.create(run_dir, 2) as table:
        code = (
            "import sys; from coordination import OwnershipTable\n"
            "t = OwnershipTable.attach(sys.argv[1]); s = t.claim(5, session_id='outsider')\n"
            "t.activate(s.index, 5, s.epoch); t.close()\n"
        )
        done = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "leaked" not in done.stderr and "resource_tracker" not in done.stderr, done.stderr
        assert _exists(table.name)
        slot = next(s for s in table.snapshot() if s.owner_worker == 5)
        assert slot.state is SlotState.ACTIVE and slot.session_id == "outsider"


def test_forked_and_spawned_children_keep_the_tracker_quiet(tmp_path: Path) -> None:
    """A whole process tree (fork + spawn children attaching at once) and the tracker's stderr stay clean."""
    directory = tmp_path / "tree"
    code = "import sys; from tests.coordination._procs import tracker_scenario; tracker_scenario(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(directory)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for bad in ("leaked", "KeyError", "Traceback", "Warning"):
        assert bad not in done.stderr, done.stderr
    assert not _exists(segment_name(directory, L.KIND_OWNERSHIP))


def test_creating_and_attaching_segments_starts_no_resource_tracker_process(tmp_path: Path) -> None:
    """The multiprocessing resource tracker is a Python process of its own (8 MB): segments do not start it."""
    code = (
        "import sys, psutil; from coordination import OwnershipTable\n"
        "with OwnershipTable.create(sys.argv[1], 2) as t:\n"
        "    a = OwnershipTable.attach(sys.argv[1]); a.claim(1, session_id='x'); a.close()\n"
        "    kids = [' '.join(c.cmdline()) for c in psutil.Process().children(recursive=True)]\n"
        "print(repr(kids))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
