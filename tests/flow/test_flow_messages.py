"""Messages on real exports: each warning names its file, drift is summarised once per file, type lists once."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from engine.cli.console import Console
from engine.cli.exit_codes import EXIT_OK
from engine.cli.main import main
from navigation.errors import FlowValidationError
from navigation.flow import load_flow, parse_flow
from navigation.steps import default_registry

DOMAIN = "drover.domain.navigation.flow"


def _old_export(n: int) -> dict:
    """An early Recorder export: ``n`` clicks with the singular ``selector`` and old ``keydown``/``keyup``."""
    steps: list[dict] = [{"type": "navigate", "url": "https://shop.example/", "recorderNote": "start"}]
    for i in range(n):
        steps.append({"type": "click", "selector": f"#b{i}", "offsetX": 1, "offsetY": 1, "pointerId": i})
    steps += [{"type": "keydown", "key": "Enter"}, {"type": "keyup", "key": "Enter"}]
    return {"title": "old", "exportedBy": "Chrome 95", "steps": steps}


def _drift_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(DOMAIN) and r.levelno == logging.WARNING]


def test_old_spellings_and_unknown_fields_are_one_warning_each_naming_the_file(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "old_export.json"
    path.write_text(json.dumps(_old_export(12)), encoding="utf-8")
    flow = load_flow(path)
    assert len(flow.aliases_applied) == 14
    warnings = _drift_warnings(caplog)
    assert len(warnings) == 2
    unknown, old = (w.getMessage() for w in warnings)
    assert unknown.startswith(f"{path}: flow has unknown fields")
    assert "pointerId: 12" in unknown and "recorderNote: 1" in unknown and "flow.exportedBy: 1" in unknown
    assert old.startswith(f"{path}: flow uses older spellings")
    assert "selector-single: 12" in old and "type-keydown: 1" in old and "type-keyup: 1" in old
    assert old.count("selector-single") == 1  # counted per spelling, not one entry per use


def test_validate_prints_one_summary_line_per_kind_of_drift(tmp_path: Path) -> None:
    path = tmp_path / "old_export.json"
    path.write_text(json.dumps(_old_export(30)), encoding="utf-8")
    out = io.StringIO()
    code = main(["validate", str(path)], console=Console(out=out, err=io.StringIO(), quiet=False))
    text = out.getvalue()
    assert code == EXIT_OK, text
    lines = text.splitlines()
    assert lines[0].startswith(f"ok   {path}: 'old', 33 steps, 32 unknown field(s) ignored, 32 old spelling(s) mapped")
    assert [line.strip().split(":")[0] for line in lines[1:]] == [
        "unknown fields (kept, not acted on), count per field", "old spellings mapped, count per spelling"]
    assert "pointerId: 30" in lines[1] and "selector-single: 30" in lines[2]


def test_unknown_step_types_list_the_known_types_once() -> None:
    steps = [{"type": "navigate", "url": "u"}] + [{"type": f"swipe{i}"} for i in range(5)]
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": steps}, source="flows/many.json")
    problems = info.value.problems
    assert len(problems) == 5 and all(f'unknown step type "swipe{i}"' in p for i, p in enumerate(problems))
    assert str(info.value).count("known types: change, click") == 1
    assert problems[1].endswith("known types: as listed above")
    assert str(info.value).startswith("flows/many.json: 5 problem(s)")


def test_steps_no_strategy_runs_list_the_registered_types_once() -> None:
    flow = parse_flow({"title": "t", "steps": [{"type": "swipe"}, {"type": "swipe"}, {"type": "swipe"}]},
                      source="f.json", extra_types={"swipe"})
    problems = default_registry().problems(flow)
    assert len(problems) == 3
    assert sum("registered: change, click" in p for p in problems) == 1
    assert problems[2] == "step 2 (swipe): no step strategy handles it (registered: as listed above)"
