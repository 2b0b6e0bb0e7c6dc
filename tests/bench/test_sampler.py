"""The process-tree sampler: the tree under a root, excluded subtrees left out, CPU of the tree counted."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil

from bench._sampler import sample_loop
from tests._wait import wait_for

# A child that starts a grandchild, then burns CPU for a bounded time; it and its grandchild end within 20 s.
PARENT = ("import subprocess, sys, time\n"
          "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(20)'])\n"
          "end = time.monotonic() + float(sys.argv[1])\n"
          "while time.monotonic() < end: pass\n"
          "time.sleep(20)\n")
# The sampled root: two such children (the first burns 0.6 CPU-s, the second is the excluded one), pids on stdout.
ROOT = ("import subprocess, sys, time\n"
        f"a = subprocess.Popen([sys.executable, '-c', {PARENT!r}, '0.6'])\n"
        f"b = subprocess.Popen([sys.executable, '-c', {PARENT!r}, '0.6'])\n"
        "print(a.pid, b.pid, flush=True)\n"
        "time.sleep(25)\n")


def test_the_tree_under_the_root_is_sampled_without_the_excluded_subtree():
    root = subprocess.Popen([sys.executable, "-c", ROOT], stdout=subprocess.PIPE, text=True)
    everyone = [psutil.Process(root.pid)]
    try:
        kept, left_out = map(int, root.stdout.readline().split())
        wait_for(lambda: all(len(psutil.Process(p).children()) == 1 for p in (kept, left_out)), 20,
                 "both grandchildren to start")
        everyone += psutil.Process(root.pid).children(recursive=True)
        stop = threading.Event()
        out = []
        worker = threading.Thread(target=lambda: out.append(sample_loop(root.pid, 0.05, {left_out}, stop)))
        worker.start()
        time.sleep(1.0)
        stop.set()
        worker.join(10)
        sample = out[0]
        assert sample.peak_procs == 2, sample  # kept and its grandchild; not the excluded child or its grandchild
        assert sample.samples >= 5
        assert sample.cpu_s > 0.3, sample  # kept burned ~0.6 CPU-s; the excluded one's is not counted
        assert sample.cpu_s < 1.0, sample
        assert sample.peak_rss > 0
    finally:
        for proc in everyone:  # the processes this test started, and theirs, by pid
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(everyone, timeout=10)
        root.stdout.close()
