"""The Ray backend (``--backend ray``): workers as Ray actors on any node, leases with fencing epochs.

Ray is an optional dependency (``pip install 'drover[ray]'``); nothing
here imports it until a cluster run starts.  See
:mod:`engine.execution.cluster.backend` for the transport,
:mod:`~engine.execution.cluster.coordinator` for the single writer and
:mod:`~engine.execution.cluster.worker` for the actor.
"""
__all__ = ["RayWorkers", "ClusterUnavailable", "start_local_instance"]


def __getattr__(name: str):
    if name in __all__:
        from engine.execution.cluster import backend  # noqa: PLC0415 - keeps `import engine` free of Ray

        return getattr(backend, name)
    raise AttributeError(f"module 'engine.execution.cluster' has no attribute {name!r}")
