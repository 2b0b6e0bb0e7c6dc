"""The process-tree sampler: the tree under a root, excluded subtrees left out, CPU of the tree counted."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil

from bench._sampler import sample_loop
from tests._wait import wait_for

# A child that starts a grandchild, waits for a go file, then burns CPU for a bounded time; it and its grandchild
# end within 25 s.
PARENT = ("import os, subprocess, sys, time\n"
          "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(25)'])\n"
          "deadline = time.monotonic() + 20\n"
          "while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline: time.sleep(0.01)\n"
          "end = time.monotonic() + float(sys.argv[1])\n"
          "while time.monotonic() < end: pass\n"
          "time.sleep(25)\n")
# The sampled root: three such children, pids on stdout: ``kept`` burns 0.6 CPU-s once sampling has begun,
# ``left_out`` the same but is excluded, ``early`` burns 0.6 CPU-s at once, before the sampling begins.
ROOT = ("import subprocess, sys, time\n"
        f"a = subprocess.Popen([sys.executable, '-c', {PARENT!r}, '0.6', sys.argv[1]])\n"
        f"b = subprocess.Popen([sys.executable, '-c', {PARENT!r}, '0.6', sys.argv[1]])\n"
        f"c = subprocess.Popen([sys.executable, '-c', {PARENT!r}, '0.6', sys.argv[2]])\n"
        "print(a.pid, b.pid, c.pid, flush=True)\n"
        "time.sleep(30)\n")


def test_the_tree_under_the_root_is_sampled_without_the_excluded_subtree_nor_cpu_used_before(tmp_path):
    go, at_once = tmp_path / "go", tmp_path / "at-once"
    at_once.touch()
    root = subprocess.Popen([sys.executable, "-c", ROOT, str(go), str(at_once)], stdout=subprocess.PIPE, text=True)
    everyone = [psutil.Process(root.pid)]
    stop, primed = threading.Event(), threading.Event()  # stopped however the test ends: a failure must not hang
    try:
        kept, left_out, early = map(int, root.stdout.readline().split())
        wait_for(lambda: all(len(psutil.Process(p).children()) == 1 for p in (kept, left_out, early)), 20,
                 "the grandchildren to start")
        everyone += psutil.Process(root.pid).children(recursive=True)
        wait_for(lambda: sum(psutil.Process(early).cpu_times()[:2]) > 0.55, 20, "the early child's burn")
        out = []
        worker = threading.Thread(target=lambda: out.append(
            sample_loop(root.pid, 0.05, {left_out}, stop, primed=primed)), daemon=True)
        worker.start()
        assert primed.wait(10)
        go.touch()
        wait_for(lambda: sum(psutil.Process(kept).cpu_times()[:2]) > 0.55, 20, "the kept child's burn")
        time.sleep(0.3)
        stop.set()
        worker.join(10)
        sample = out[0]
        assert sample.peak_procs == 4, sample  # kept, early and their grandchildren; not the excluded subtree
        assert sample.samples >= 5
        # kept burned ~0.6 CPU-s while sampled; early's 0.6 before the first walk and the excluded one's do not count
        assert 0.4 < sample.cpu_s < 0.9, sample
        assert sample.peak_rss > 0
    finally:
        stop.set()
        for proc in everyone:  # the processes this test started, and theirs, by pid
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(everyone, timeout=10)
        root.stdout.close()
