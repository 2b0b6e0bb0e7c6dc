"""Benchmarks: micro-benchmarks, end-to-end throughput against a saved baseline, peer comparison."""
__all__: list[str] = []
