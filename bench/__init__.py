"""Benchmarks: micro-benchmarks, end-to-end throughput against a saved baseline, peer comparison.

``python -m bench run|peer|scale`` (see ``bench/README.md``); the
micro-benchmarks are pytest-benchmark tests under ``tests/bench/``.
"""
from bench._e2e import BenchConfig, RunFigures, run_once
from bench._gate import GateResult, evaluate

__all__ = ["BenchConfig", "RunFigures", "run_once", "GateResult", "evaluate"]
