"""The batch engine: supervisor, workers, results, telemetry, soak and readiness."""
__all__: list[str] = []
