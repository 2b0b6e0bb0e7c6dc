"""The Ray backend: the supervisor's :class:`~engine.execution.backend.WorkerBackend` verbs on Ray actors.

The supervisor stays the driver and keeps its loop; only the transport
changes.  ``start(i)`` creates a :class:`~.worker.ClusterWorker` actor
(anywhere in the cluster, one CPU each unless told otherwise), ``send``
turns ``("job", id)`` into ``actor.run.remote(id)``, and ``poll`` waits on
the outstanding calls with ``ray.wait``, turning results into the same
``ready`` / ``done`` messages a forked worker sends and failures (actor or
node died) into deaths.  The shipped log lines and artifacts of each job
are written into the run directory here, on the driver.

Leases: ``open`` starts the :class:`~.coordinator.Coordinator` actor on the
driver's node; each poll sweeps expired leases.  A worker whose slot lease
lapsed (its process paused or its node cut off) is written off at once — a
death for the supervisor, which requeues its job and starts a replacement
— but is *not* killed: if it comes back, whatever it tries to record is
refused by the store's fence and counted, which is the point of fencing.
Such zombies are killed when their call returns, or at close.

The queue of jobs the driver keeps on each actor: see :mod:`._calls`.

Without ``--ray-address`` the driver starts a local Ray instance of its
own, sized for the run and recorded in the run directory so a resume after
a crashed driver can reap its leftovers: see
:mod:`engine.execution.cluster.instance`.
"""
from __future__ import annotations

import logging
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

from coordination import ContentionSnapshot, WaitStats, WorkerStats
from coordination.telemetry_context import stream_logger
from engine.config import Settings
from engine.errors import ClusterUnavailable, StaleLease
from engine.execution.cluster import instance
from engine.execution.backend import Reclaim, SafetyTotals, WorkerEvent
from engine.execution.cluster._calls import Actor as _Actor, Call as _Call
from engine.execution.cluster.coordinator import Coordinator
from engine.execution.cluster.store import unwrap
from engine.execution.cluster.worker import SHARED_MARKER, ClusterWorker, PluginSpec
from engine.records import rundir
from engine.records.batch import Batch
from engine.records.reader import StateReader
from engine.records.store import DuplicateOutcome

ops = stream_logger("operational", __name__)
audit = stream_logger("audit", __name__)
domain = stream_logger("domain", __name__)
log = logging.getLogger(__name__)

SWEEP_EVERY_S = 0.5

class RayWorkers:
    """Workers as Ray actors; see the module docstring."""

    def __init__(self, slots: int, *, settings: Settings, batch: Batch, run_id: str, state_dir: str,
                 store_path: str, seed: int, credentials_path: str | None,
                 worker_options: dict[str, Any] | None = None) -> None:
        if not settings.ray_address:
            instance.local_env()
        self.ray = instance.require_ray()
        self.slots = slots
        self.settings = settings
        self.batch = batch
        self.run_id = run_id
        self.state_dir = os.path.abspath(state_dir)
        self.store_path = os.path.abspath(store_path)
        self.seed = seed
        self.credentials_path = os.path.abspath(credentials_path) if credentials_path else None
        self.worker_options = dict(worker_options or {})  # num_cpus: see _actor_cpus unless given
        self.run_dir: Path | None = None
        self.coordinator: Any = None
        self._we_started_ray = False
        self._actors: dict[int, _Actor] = {}
        self._zombies: list[_Actor] = []
        self._dead_holders: list[str] = []
        self._reclaimed: list[Any] = []  # lapsed leases found by a sweep, until reclaim() reports them
        self._unowned_by: dict[str, int] = {}  # holder -> unowned uses it reported (cumulative)
        self._lapsed_by: dict[str, int] = {}  # holder -> sends its guard refused on a lapsed lease (cumulative)
        self._plugins = PluginSpec.of_this_process()
        self._last_sweep = 0.0
        self.consumers = settings.ray_queue_depth  # jobs kept sent to each actor (see the module docstring)
        self._batch_ref: Any = None
        self._reader: StateReader | None = None  # read-only: the next attempt numbers (send)
        self._coordinator_up: Any = None  # the coordinator's first ping, until the first poll has seen it
        self._opened_at = 0.0
        self.startup_s = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def open(self, run_dir: Path, epoch_floor: int) -> None:
        ray = self.ray
        t0 = self._opened_at = time.monotonic()
        self.run_dir = Path(run_dir).resolve()
        (self.run_dir / SHARED_MARKER).write_text(self.run_id)
        if not ray.is_initialized():
            instance.reap_previous(self.run_dir)
            address = self.settings.ray_address
            try:
                if address:
                    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                             include_dashboard=False, configure_logging=False)
                else:
                    instance.start_local_instance(self.slots)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterUnavailable(f"cannot join the Ray cluster at "
                                         f"{address or 'a new local instance'}: {exc}") from exc
            self._we_started_ray = True
            if not self.settings.ray_address:
                instance.record(self.run_dir)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        here = ray.get_runtime_context().get_node_id()
        self.coordinator = ray.remote(Coordinator).options(
            num_cpus=0, max_restarts=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        ).remote(self.store_path, self.run_id, epoch_floor, self.settings.lease_ttl)
        # Not waited for here: the worker actors start meanwhile (they call it only from their first job on),
        # and the first poll waits for it — one actor start-up instead of two before the first job.
        self._coordinator_up = self.coordinator.ping.remote()
        self._batch_ref = ray.put(self.batch)
        self.worker_options.setdefault("num_cpus", self._actor_cpus())
        self.worker_options.setdefault("scheduling_strategy", "SPREAD")  # browsers over every node, not packed
        self.startup_s = time.monotonic() - t0
        ops.info("ray backend ready", extra={"event": "ray_ready", "startup_s": round(self.startup_s, 3),
                                             "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                                             "we_started_ray": self._we_started_ray})

    def _actor_cpus(self) -> float:
        """CPUs each actor asks for: one, or less when the workers would not all fit otherwise.

        One CPU per browser is the right share on a cluster with room; with
        more workers than CPUs (``--workers 8`` on a 2-core local instance,
        or 8 on three 1-CPU nodes) actors asking for one each would wait
        for a CPU forever.  The share is such that the workers, spread
        evenly, fit on the smallest node: ``min(1, smallest node's CPUs /
        ceil(workers / nodes))``.
        """
        cpus = [float(n.get("Resources", {}).get("CPU", 0.0)) for n in self.ray.nodes() if n.get("Alive")]
        cpus = [c for c in cpus if c > 0]
        if not cpus:
            return 0.0
        share = min(cpus) / -(-self.slots // len(cpus))
        return 1.0 if share >= 1.0 else math.floor(share * 1000) / 1000  # rounded down: the shares must fit

    def start(self, index: int) -> int:
        ray = self.ray
        incarnation = secrets.token_hex(3)
        asked_at = time.monotonic()
        handle = ray.remote(ClusterWorker).options(max_restarts=0, max_task_retries=0,
                                                   **self.worker_options).remote(
            index, self.run_id, str(self.run_dir), self.state_dir, self.settings, self.seed,
            self.credentials_path, self._batch_ref, self.coordinator, incarnation, self._plugins)
        actor = _Actor(handle, f"w{index}#{incarnation}", asked_at=asked_at)
        actor.calls.append(_Call(handle.ready.remote(), "ready"))
        self._actors[index] = actor
        return 0  # the pid is known once the actor reports ready

    def send(self, index: int, message: tuple) -> bool:
        actor = self._actors.get(index)
        if actor is None or actor.exit_code is not None or actor.handle is None:
            return False
        if message[0] == "job":
            if actor.stopping:
                return False
            number = message[2] if len(message) > 2 else 0
            job_id = message[1]
            actor.calls.append(_Call(actor.handle.run.remote(job_id, self._next_attempt(job_id)), "done", number))
        elif message[0] == "stop":
            # A place told to stop takes no more jobs; the actor stops once every place is (its stop runs after
            # the jobs still in its queue: calls run in the order they were sent).
            actor.stopped.update(message[1:2] or range(self.consumers))
            if len(actor.stopped) >= self.consumers and not actor.stopping:
                actor.stopping = True
                actor.calls.append(_Call(actor.handle.stop.remote(), "stop"))
        else:
            raise ValueError(f"unknown message for a cluster worker: {message[0]!r}")
        return True

    def _next_attempt(self, job_id: str) -> int:
        """The job's next attempt number, read on the driver (a local read instead of the actor's round trip)."""
        if self._reader is None:
            self._reader = StateReader(self.store_path)
        return self._reader.next_attempt(self.run_id, job_id)

    def poll(self, timeout: float) -> list[WorkerEvent]:
        if self._coordinator_up is not None:
            self.ray.get(self._coordinator_up)  # an actor that cannot start raises here, before any job runs
            self._coordinator_up = None
            ops.info("coordinator up", extra={"event": "coordinator_up", "since_open_s": round(
                time.monotonic() - self._opened_at, 3)})
        events = self._sweep()
        ray = self.ray
        # An actor runs its calls in order: only the first outstanding one can be answered next.
        waiting = {a.calls[0].ref: i for i, a in self._actors.items() if a.calls and a.exit_code is None}
        self._reap_zombies()
        if not waiting:
            time.sleep(min(timeout, 0.05))
            return events
        ready, rest = ray.wait(list(waiting), num_returns=1, timeout=0 if events else timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            index = waiting[ref]
            actor = self._actors[index]
            call = actor.calls.pop(0)
            try:
                value = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError,
                    ray.exceptions.ObjectLostError) as exc:
                if call.kind == "confirm" and isinstance(unwrap(exc), DuplicateOutcome):
                    self._duplicate(call, unwrap(exc))
                    value = None  # a confirm is answered with its payload
                else:
                    events.append(self._failed(index, actor, call, exc))
                    continue
            if call.kind == "done" and value[7] is not None:
                # The job's outcome was sent without waiting: it is done once the coordinator says it is recorded
                # (the actor runs the next job meanwhile).  Its answer is the next to wait for.
                actor.calls.insert(0, _Call(value[7], "confirm", call.number, value))
                continue
            events.extend(self._answer(index, actor, call, value))
        return events

    def _failed(self, index: int, actor: _Actor, call: _Call, exc: BaseException) -> WorkerEvent:
        """A call failed (the actor or its node died, a job raised, its outcome was refused): a death."""
        cause = unwrap(exc)
        if call.kind == "confirm" and isinstance(cause, StaleLease):  # (a worker logs its own refused writes)
            audit.error("stale write refused by the store", extra={
                "event": "stale_write_refused", "job_id": cause.job_id, "attempt": cause.attempt,
                "resource": cause.resource, "epoch": cause.epoch, "fence": cause.fence, "worker": f"w{index}"})
        ops.error("cluster worker failed", extra={"event": "cluster_worker_failed", "worker_index": index,
                                                  "call": call.kind, "error": repr(exc)[:500],
                                                  "queued": len(actor.calls)})
        actor.exit_code = -9
        actor.calls.clear()  # the jobs queued behind it are the supervisor's to re-queue
        if actor.handle is not None:  # a call that raised leaves the actor alive: it takes nothing more
            self.ray.kill(actor.handle, no_restart=True)
        self._dead_holders.append(actor.holder)
        return WorkerEvent(index, None)

    @staticmethod
    def _duplicate(call: _Call, exc: BaseException) -> None:
        """The job's outcome was already recorded (a duplicate refused): reported as such, as the executor does."""
        report = call.payload[0]
        report.duplicate = True
        domain.error("duplicate outcome refused", extra={"event": "duplicate_outcome", "job_id": report.job_id,
                                                          "error": str(exc)})

    def _answer(self, index: int, actor: _Actor, call: _Call, value: Any) -> list[WorkerEvent]:
        if call.kind == "ready":
            actor.pid, actor.node = value["pid"], value["node"]
            wait_s = time.monotonic() - actor.asked_at
            # prestarted: the actor's process was up before the driver asked for it; preloaded: Ray imported the
            # actor's module as the process started, not the actor's creation (see instance.start_local_instance)
            ops.info("cluster worker ready", extra={
                "event": "actor_ready", "worker_index": index, "pid": actor.pid, "node": actor.node,
                "wait_s": round(wait_s, 3), "warm_s": value.get("warm_s"),
                "process_age_s": value.get("process_age_s"), "module_age_s": value.get("module_age_s"),
                "prestarted": value.get("process_age_s", 0.0) > wait_s,
                "preloaded": bool(value.get("preloaded"))})
            return [WorkerEvent(index, ("ready", index, n)) for n in range(self.consumers)]
        if call.kind == "confirm":
            value = call.payload
        elif call.kind == "stop":
            self._ship(value, {})
            actor.exit_code = 0
            self.ray.kill(actor.handle, no_restart=True)
            return [WorkerEvent(index, None)]
        report, forced, seconds, losses, lines, artifacts, safety, _ = value
        self._ship(lines, artifacts)
        self._unowned_by[actor.holder] = safety["unowned_uses"]
        self._lapsed_by[actor.holder] = safety["lapsed_stops"]
        events = [WorkerEvent(index, ("done", index, report, forced, seconds, losses, call.number))]
        if actor.calls and actor.calls[0].kind == "done":  # the next job in its queue has begun
            events.append(WorkerEvent(index, ("started", index, actor.calls[0].number)))
        if call.number not in actor.stopped:
            events.append(WorkerEvent(index, ("ready", index, call.number)))
        return events

    def _ship(self, lines: dict[str, bytes], artifacts: dict[str, bytes]) -> None:
        assert self.run_dir is not None
        for stream, data in lines.items():
            with open(rundir.stream_path(self.run_dir, stream), "ab") as fh:
                fh.write(data)
        for rel, data in artifacts.items():
            target = (self.run_dir / rel).resolve()
            if self.run_dir not in target.parents:
                ops.error("shipped artifact outside the run directory refused", extra={
                    "event": "artifact_refused", "path": rel})
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def _sweep(self) -> list[WorkerEvent]:
        """Expired leases: the holder is written off now (a death for the supervisor), not killed."""
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S or self.coordinator is None:
            return []
        self._last_sweep = now
        events = []
        for r in self.ray.get(self.coordinator.sweep.remote()):
            self._reclaimed.append(r)
            for index, actor in list(self._actors.items()):
                if actor.holder == r.holder and actor.exit_code is None and r.resource.startswith("slot:"):
                    ops.error("lease lapsed: worker written off", extra={
                        "event": "lease_lapsed", "worker_index": index, "resource": r.resource,
                        "old_epoch": r.old_epoch, "new_epoch": r.new_epoch})
                    actor.exit_code = -1
                    self._zombies.append(actor)
                    del self._actors[index]
                    self._actors[index] = _Actor(None, actor.holder, exit_code=-1)  # a tombstone until forgotten
                    events.append(WorkerEvent(index, None))
        return events

    def _reap_zombies(self) -> None:
        for z in list(self._zombies):
            while z.calls:
                done, _ = self.ray.wait([z.calls[0].ref], timeout=0)
                if not done:
                    break
                z.calls.pop(0)
                try:
                    value = self.ray.get(done[0])
                    if isinstance(value, tuple) and len(value) == 8:  # its logs still belong to the run
                        self._ship(value[4], value[5])
                    ops.error("a written-off worker finished its job; its writes were fenced", extra={
                        "event": "zombie_returned", "holder": z.holder})
                except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as exc:
                    ops.warning("a written-off worker's call failed", extra={
                        "event": "zombie_failed", "holder": z.holder, "error": repr(exc)[:300]})
                    z.calls.clear()
            if not z.calls:
                self._stop_then_kill([z])
                self._zombies.remove(z)

    def _stop_then_kill(self, actors: list[_Actor], timeout: float = 10.0) -> None:
        """Let each actor close its browser (the reaper removes the profile), then kill it."""
        ray = self.ray
        refs = []
        for a in actors:
            if a.handle is not None and a.exit_code in (None, -1):
                try:
                    refs.append(a.handle.stop.remote())
                except ray.exceptions.RayActorError:  # already gone: nothing to stop
                    continue
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
            for ref in done:
                try:
                    self._ship(ray.get(ref), {})
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                    ops.warning("a worker's stop failed", extra={"event": "stop_failed", "error": repr(exc)[:300]})
        for a in actors:
            if a.handle is not None:
                ray.kill(a.handle, no_restart=True)

    # -- the rest of the interface ---------------------------------------------------------

    def reclaim(self) -> list[Reclaim]:
        out = []
        holders, self._dead_holders = self._dead_holders, []
        found = list(self._reclaimed)
        self._reclaimed = []
        for holder in holders:
            found.extend(self.ray.get(self.coordinator.reclaim_holder.remote(holder, "holder died")))
        for r in found:
            out.append(Reclaim(r.resource, r.holder, r.old_epoch, r.new_epoch, {"reason": r.reason}))
        return out

    def totals(self) -> SafetyTotals:
        return SafetyTotals(sum(self._unowned_by.values()), 0)

    def contention(self) -> ContentionSnapshot:
        stats = self.lease_stats()
        waits = stats.get("waits", WaitStats.empty())
        agg = WorkerStats(-1, 0, time.time(), WaitStats.empty(), waits, 0, 0, self.totals().unowned_uses, 0, 0)
        return ContentionSnapshot(time.time(), (), agg)

    def lease_stats(self) -> dict[str, Any]:
        """The coordinator's lease figures, and the sends the workers' guards stopped on lapsed leases."""
        stats = self.ray.get(self.coordinator.stats.remote()) if self.coordinator is not None else {}
        return {**stats, "lapsed_stops": sum(self._lapsed_by.values())}

    def grant_log(self) -> list[dict[str, Any]]:
        """The coordinator's grant log (see :meth:`.coordinator.Coordinator.grant_log`)."""
        return self.ray.get(self.coordinator.grant_log.remote()) if self.coordinator is not None else []

    def _log_grants(self) -> None:
        """At close: every grant of the run into the audit stream, on the coordinator's one clock (``t0``: the
        first grant), so who held what when is checked from the grants themselves."""
        spans = self.grant_log()
        t0 = spans[0]["granted"] if spans else 0.0
        for span in spans:
            audit.info("lease held", extra={
                "event": "lease_span", "resource": span["resource"], "epoch": span["epoch"],
                "holder": span["holder"], "granted_s": round(span["granted"] - t0, 6),
                "ended_s": None if span["ended"] is None else round(span["ended"] - t0, 6),
                "end": span["end"], "waited_s": round(span["waited_s"], 6)})

    def alive(self, index: int) -> bool:
        a = self._actors.get(index)
        return a is not None and a.exit_code is None

    def pid(self, index: int) -> int:
        return self._actors[index].pid

    def node(self, index: int) -> str:
        return self._actors[index].node

    def exit_code(self, index: int) -> int | None:
        return self._actors[index].exit_code

    def heartbeat_age(self, index: int) -> float:
        return 0.0  # liveness is Ray's (actor death) and the leases'; stalls are cut by the job deadline

    def kill(self, index: int) -> None:
        a = self._actors.get(index)
        if a is not None and a.handle is not None and a.exit_code is None:
            self.ray.kill(a.handle, no_restart=True)

    def terminate(self, index: int) -> None:
        self.kill(index)

    def join(self, index: int, timeout: float) -> None:
        a = self._actors.get(index)
        if a is None or a.exit_code is not None or not a.calls:
            return
        self.ray.wait([a.calls[-1].ref], timeout=timeout)

    def forget(self, index: int, timeout: float = 5.0) -> None:
        self._actors.pop(index, None)

    def indices(self) -> list[int]:
        return list(self._actors)

    def close(self) -> None:
        ray = self.ray
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        idle = [a for a in list(self._actors.values()) + self._zombies if not a.calls]
        busy = [a for a in list(self._actors.values()) + self._zombies if a.calls]
        self._stop_then_kill(idle)
        for a in busy:
            if a.handle is not None:
                ray.kill(a.handle, no_restart=True)
        self._actors.clear()
        self._zombies.clear()
        if self.coordinator is not None:
            self._log_grants()
            service = self.lease_stats().get("service", {})
            ops.info("coordinator service time", extra={  # a round trip minus this is Ray's transport
                "event": "coordinator_service", "calls": service.get("calls", 0),
                "service_ms": round(1000 * service.get("seconds", 0.0), 3)})
            ray.get(self.coordinator.close.remote())
            ray.kill(self.coordinator, no_restart=True)
            self.coordinator = None
        if self._we_started_ray:
            ray.shutdown()
            if self.run_dir is not None:
                (self.run_dir / instance.LOCAL_INSTANCE_FILE).unlink(missing_ok=True)  # shut down cleanly: nothing to reap


__all__ = ["RayWorkers", "ClusterUnavailable"]
