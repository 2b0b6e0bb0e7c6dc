"""The Ray backend (``--backend ray``): workers as Ray actors on any node, leases with fencing epochs.

Ray is an optional dependency (``pip install 'drover[ray]'``); nothing
here imports it until a cluster run starts.  See
:mod:`engine.execution.cluster.backend` for the transport,
:mod:`~engine.execution.cluster.coordinator` for the single writer,
:mod:`~engine.execution.cluster.worker` for the actor (its store calls in
:mod:`~engine.execution.cluster.store`) and
:mod:`~engine.execution.cluster.instance` for a local Ray instance of our own.
"""
__all__ = ["RayWorkers", "ClusterUnavailable", "start_local_instance"]


def __getattr__(name: str):
    if name == "start_local_instance":
        from engine.execution.cluster import instance  # noqa: PLC0415 - keeps `import engine` free of Ray

        return instance.start_local_instance
    if name in __all__:
        from engine.execution.cluster import backend  # noqa: PLC0415 - keeps `import engine` free of Ray

        return getattr(backend, name)
    raise AttributeError(f"module 'engine.execution.cluster' has no attribute {name!r}")
