"""A local Ray instance of our own: its environment, its size, its start, and its processes after a crash.

Used when no ``--ray-address`` is given (``RayWorkers.open``) and by
``bench run --backend ray``, so the bench measures the instance a run
gets.  :func:`start_local_instance` says why it is sized as it is.

A local instance of our own dies with a crashed (SIGKILLed) driver — its
GCS, raylet, actors and their Chromium fate-share with it — except Ray's
agent processes, which can linger for a minute trying to report to the
dead GCS.  :func:`record` writes the instance's processes (pid and start
time) into the run directory (:data:`LOCAL_INSTANCE_FILE`), so a
``--resume`` of the same run kills whatever of them is left, by pid
(:func:`reap_previous`), before it starts its own; a clean close removes
the record.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from coordination.telemetry_context import stream_logger
from engine.errors import ClusterUnavailable

ops = stream_logger("operational", __name__)

LOCAL_INSTANCE_FILE = ".drover-ray-local.json"  # in the run directory: the processes of our own local instance


def require_ray():
    """Ray, imported; a clear error when it is not installed."""
    try:
        import ray  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ClusterUnavailable("the Ray backend needs Ray: pip install 'drover[ray]'") from exc
    return ray


# Ray's own settings (RayConfig), read by the raylet from its environment: set for the local instance we start
STARTUP_CONCURRENCY_VAR = "RAY_worker_maximum_startup_concurrency"
PRELOAD_VAR = "RAY_preload_python_modules"
PRELOADED_MODULES = ("engine.execution.cluster.worker", "engine.execution.cluster.coordinator")


def local_env() -> None:
    """The environment a local instance of our own starts with (``setdefault``: the user's own values win)."""
    # All of Ray's traffic on loopback (Ray would otherwise bind the host's interface address).  Read by Ray
    # when it is first imported, and by the processes it starts.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Drover's browser reaper cleans up after a dead worker itself (browser tree, temporary profile): Ray must
    # not SIGKILL the reaper along with the worker, or the profile is left behind.
    os.environ.setdefault("RAY_kill_child_processes_on_worker_exit", "false")
    # Ray's token authentication (on by default for a local instance of this Ray), asked for explicitly: the
    # same protection, without the warning Ray prints when the mode was left to its default (it went to the
    # CLI's stderr, past the console).  Only before Ray is imported: Ray reads the mode once, at import, and
    # a driver that read "unset" cannot talk to a GCS started with "token" (its ray.init fails).
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def local_instance_cpus(workers: int) -> int:
    """Logical CPUs of a local instance of our own for ``workers`` worker actors: see :func:`start_local_instance`."""
    return max(os.cpu_count() or 1, workers + 1)


def start_local_instance(workers: int) -> None:
    """Start a new local Ray instance of our own (never one found in ``RAY_ADDRESS`` or ``/tmp/ray``).

    Sized so that each actor of the run finds a Python worker process
    already started: Ray prestarts one per logical CPU when the driver
    connects, at most as many at once as the host has cores, and an actor
    that finds none idle waits for a new process to start and import Ray —
    0.7 s on this 2-core host, on the run's clock.  With two workers the
    third actor (coordinator, two workers) always waited: its first job
    began 0.5-1.3 s after a local run's, most of the Ray backend's
    throughput cost on a short batch.  So the instance counts
    ``max(cores, workers + 1)`` logical CPUs and may start that many
    processes at once, each importing the actors' modules
    (:data:`PRELOADED_MODULES`) before it takes work, as a forked worker
    inherits them (0.36 CPU-s per actor, on the clock, otherwise).
    Logical CPUs are Ray's scheduling units, not
    cores: each worker actor still asks for one (``_actor_cpus``), the
    coordinator for none, and they share the host's real cores as forked
    workers do.  ``bench run --backend ray`` starts its instance here too,
    so it measures the instance a run gets.
    """
    local_env()  # before Ray is first imported
    ray = require_ray()
    cpus = local_instance_cpus(workers)
    ours = {STARTUP_CONCURRENCY_VAR: str(cpus), PRELOAD_VAR: ",".join(PRELOADED_MODULES)}
    ours = {k: v for k, v in ours.items() if k not in os.environ}  # a value the user set wins
    os.environ.update(ours)  # for the raylet ray.init starts; not kept after
    try:
        ray.init(address="local", num_cpus=cpus, logging_level=logging.ERROR, log_to_driver=False,
                 include_dashboard=False, configure_logging=False)
    finally:
        for k in ours:
            os.environ.pop(k, None)


def record(run_dir: Path) -> None:
    """Write down the processes of the local instance this driver started (pid and start time)."""
    import psutil  # noqa: PLC0415

    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(p.cmdline()).lower():
                procs.append({"pid": p.pid, "created": p.create_time(), "name": p.name()})
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone already: nothing to reap later
    (run_dir / LOCAL_INSTANCE_FILE).write_text(json.dumps({"driver": os.getpid(), "processes": procs}))

def reap_previous(run_dir: Path) -> None:
    """A resume after a crashed driver: kill, by pid, what is left of that driver's own local instance."""
    import psutil  # noqa: PLC0415

    path = run_dir / LOCAL_INSTANCE_FILE
    if not path.exists():
        return
    try:
        record = json.loads(path.read_text())
        procs = [(int(r["pid"]), float(r["created"])) for r in record["processes"]]
    except (ValueError, KeyError, TypeError) as exc:
        ops.warning("unreadable record of a previous Ray instance: ignored", extra={
            "event": "ray_record_unreadable", "path": str(path), "error": repr(exc)[:200]})
        path.unlink()
        return
    left = []
    for pid, created in procs:
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 0.01:  # the same process, not a reused pid
                p.kill()
                left.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    psutil.wait_procs(left, timeout=10)
    ops.warning("processes of a crashed driver's Ray instance killed", extra={
        "event": "ray_leftovers_killed", "killed": [p.pid for p in left], "recorded": len(procs)})
    path.unlink()


__all__ = ["LOCAL_INSTANCE_FILE", "require_ray", "local_env", "local_instance_cpus", "start_local_instance", "record",
           "reap_previous"]
