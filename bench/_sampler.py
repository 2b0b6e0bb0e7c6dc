"""CPU time and memory of a whole process tree, sampled from outside it.

Why a separate process: the bench process forks workers (the engine's
supervisor runs in it), and a sampling *thread* in a process that forks can
leave a child holding a lock that thread had taken.  So ``python bench/_sampler.py
ROOT_PID INTERVAL [EXCLUDE_PID...]`` (a plain script: it needs only psutil
and orjson) walks the tree under ROOT_PID every INTERVAL seconds, and when its stdin closes writes one JSON
object with:

``cpu_s``       user + system CPU of the tree while it was sampled: per process, its
                last sample less what it had used at the first walk (a
                process of the tree older than the sampling — a Ray daemon,
                a prestarted Ray worker — counts only what it used since;
                one born later counts from 0).  A process that lived less
                than one interval or whose last interval was missed is
                undercounted
``peak_rss``    the largest sum of RSS over the tree in one sample (shared
                pages count once per process, so this over-counts Chromium,
                whose processes share a lot)
``peak_procs``  the most processes seen at once; ``samples``: how many walks
``peak_pss``    with ``--pss``: the largest sum of PSS (proportional set size: a
                page shared by N processes counts 1/N in each, so the sum
                counts it once); 0 without.  Opt-in: it reads every process's
                smaps_rollup, far dearer than RSS

The root process itself and the EXCLUDE pids (with their subtrees) are
left out: the root's own CPU is measured by the caller with ``os.times``.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass

import orjson
import psutil


@dataclass(slots=True)
class TreeSample:
    cpu_s: float = 0.0
    peak_rss: int = 0
    peak_procs: int = 0
    samples: int = 0
    peak_pss: int = 0


def _walk(root: psutil.Process, exclude: set[int]) -> list[psutil.Process]:
    """The tree under ``root`` without the ``exclude`` subtrees, from one read of every process's parent.

    Why not ``children()`` per process: psutil finds a process's children by
    reading the parent of *every* process on the host, so a walk that asks
    each of the tree's processes costs (tree size x host processes) reads —
    measured at 0.2 CPU-s per second of a 2-worker Ray run, a tenth of a
    core taken from the run it measures, and more from the backend with more
    processes.  One pass over the host's processes per sample instead.
    """
    children: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info["ppid"]
        if ppid is not None:
            children.setdefault(ppid, []).append(proc)
    out: list[psutil.Process] = []
    todo = [root.pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child.pid not in exclude:
                out.append(child)
                todo.append(child.pid)
    return out


def sample_loop(root_pid: int, interval: float, exclude: set[int], stop: threading.Event,
                pss: bool = False, primed: threading.Event | None = None) -> TreeSample:
    """Walk the tree every ``interval`` until ``stop``; ``primed`` is set after the first walk (the CPU baseline).

    Why a baseline: the CPU a process had used before the sampling began is
    not the measured run's.  Without it a Ray run was charged ray.init's
    own ~4 CPU-s (its daemons and prestarted workers are in the tree before
    the run starts): 0.08 CPU-s per job of a 48-job batch.
    """
    root = psutil.Process(root_pid)
    cpu: dict[tuple[int, float], float] = {}
    base: dict[tuple[int, float], float] | None = None
    result = TreeSample()
    while True:
        procs = _walk(root, exclude)
        rss = pss_sum = 0
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    key = (p.pid, p.create_time())
                    rss += p.memory_info().rss
                    if pss:
                        pss_sum += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue  # ended between the walk and the read: its last sample stands
            cpu[key] = t.user + t.system
        if base is None:
            base = dict(cpu)
            if primed is not None:
                primed.set()
        result.samples += 1
        result.peak_rss = max(result.peak_rss, rss)
        result.peak_pss = max(result.peak_pss, pss_sum)
        result.peak_procs = max(result.peak_procs, len(procs))
        if stop.wait(interval):
            break
    result.cpu_s = sum(used - (base or {}).get(key, 0.0) for key, used in cpu.items())
    return result


class TreeSampler:
    """Runs ``bench/_sampler.py`` over this process's tree between ``start`` and ``stop``."""

    def __init__(self, interval: float = 0.25, exclude: tuple[int, ...] = (), pss: bool = False) -> None:
        self.interval = interval
        self.exclude = exclude
        self.pss = pss
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import os

        args = [sys.executable, __file__, *(["--pss"] if self.pss else []), str(os.getpid()), str(self.interval),
                *map(str, self.exclude)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != b"ready":
            self._proc.kill()
            raise RuntimeError("the process-tree sampler did not start")

    def stop(self) -> TreeSample:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self._proc = None
        proc.stdin.close()
        data = proc.stdout.read()
        proc.wait(10)
        proc.stdout.close()
        return TreeSample(**orjson.loads(data))


def main(argv: list[str]) -> None:
    import os

    pss = bool(argv) and argv[0] == "--pss"
    argv = argv[1:] if pss else argv
    root_pid, interval = int(argv[0]), float(argv[1])
    exclude = {int(a) for a in argv[2:]} | {os.getpid()}
    stop = threading.Event()
    out: list[TreeSample] = []
    primed = threading.Event()
    worker = threading.Thread(target=lambda: out.append(sample_loop(root_pid, interval, exclude, stop, pss, primed)))
    worker.start()
    primed.wait(30)  # "ready" once the baseline is taken: the caller's run starts after it
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.buffer.read()
    stop.set()
    worker.join()
    r = out[0]
    sys.stdout.buffer.write(orjson.dumps({"cpu_s": r.cpu_s, "peak_rss": r.peak_rss, "peak_procs": r.peak_procs,
                                          "samples": r.samples, "peak_pss": r.peak_pss}))
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
