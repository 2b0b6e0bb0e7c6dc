"""Flow parse benchmark: a realistic 30-step recording, file -> validated Flow.

Why: every job of a batch starts from a parsed flow, and the regression
gate compares this number against a saved baseline; no timing is asserted
here.
"""
from __future__ import annotations

from pathlib import Path

import orjson

from navigation.flow import load_flow, parse_flow

FLOW_30 = Path(__file__).resolve().parents[1] / "flow" / "data" / "bench_30_steps.json"


def test_bench_parse_and_validate_30_step_flow(benchmark) -> None:  # type: ignore[no-untyped-def]
    raw = FLOW_30.read_bytes()

    def parse() -> int:
        return len(parse_flow(orjson.loads(raw), source=str(FLOW_30)).steps)

    assert benchmark(parse) == 30


def test_bench_load_30_step_flow_file(benchmark) -> None:  # type: ignore[no-untyped-def]
    flow = benchmark(load_flow, FLOW_30)
    assert len(flow.steps) == 30 and flow.unknown_fields == ()
