"""``python -m bench peer``: Drover against Playwright for Python, same flows, same Chromium, same workers.

Each round runs the batch through the engine and through a Playwright
process pool, then measures one command's round trip on each client; the
order flips every round (D,P then P,D) so a machine that gets busier or
quieter during the invocation does not favour either side.  Throughput
counts passed jobs over wall time including worker and browser start-up
and shutdown, for both.  CPU is the process tree's (workers, drivers,
browsers) for both, measured the same way: the larger of ``getrusage`` of
reaped descendants and a sampler walking the live tree (Playwright's
driver leaves Chromium's renderers to be reaped by init, so ``getrusage``
alone would miss about half of its CPU); the fixture site runs in its own
process and is left out.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench._e2e import BenchConfig, run_once
from bench._fingerprint import fingerprint
from bench._probe import cdp_latency_ms
from bench._run import DEFAULTS, EXIT_JOB_FAILURES, EXIT_NO_PEER, EXIT_OK, SMOKE, flows_arg
from bench._sampler import TreeSampler
from bench._site import SiteProcess
from bench._stats import Spread, pcts
from engine.cli.console import Console
from navigation.launcher import find_chromium

INSTALL_HINT = ("Playwright for Python is not installed; the peer comparison needs it (an optional extra):\n"
                "    pip install playwright        (or: pip install -e '.[peer]')\n"
                "Do not run `playwright install`: the bench drives the system Chromium through executable_path "
                "(DROVER_CHROMIUM or PATH), the same binary Drover uses.")


def playwright_version() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return None
    try:
        return importlib.metadata.version("playwright")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _cpu() -> float:
    t, r = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.user + t.system + r.ru_utime + r.ru_stime


def _playwright_batch(executable: str, base_url: str, config: BenchConfig, exclude: tuple[int, ...]) -> dict[str, Any]:
    from bench._pw import pool_run

    sampler = TreeSampler(exclude=exclude)
    sampler.start()
    c0 = _cpu()
    out = pool_run(executable, base_url, config.workers, config.jobs, config.flows, config.isolation)
    out["cpu_s"] = _cpu() - c0
    tree = sampler.stop()
    out["cpu_sampled_s"] = tree.cpu_s
    out["cpu_s"] = max(out["cpu_s"], tree.cpu_s)  # both lower bounds: Playwright's renderers end as orphans
    out["peak_rss"] = tree.peak_rss
    out["throughput"] = out["passed"] / out["elapsed_s"] if out["elapsed_s"] > 0 else 0.0
    return out


def peer_command(args: argparse.Namespace, console: Console) -> int:
    version = playwright_version()
    if version is None:
        console.error(INSTALL_HINT)
        return EXIT_NO_PEER
    from bench._pw import latency_ms

    table = SMOKE if args.smoke else DEFAULTS
    config = BenchConfig(args.workers or table["workers"], args.jobs or (4 if args.smoke else 18),
                         args.flows or flows_arg(table["flows"]), isolation=args.isolation or table["isolation"])
    rounds = args.rounds or (1 if args.smoke else 3)
    lat_n = args.latency_rounds or (50 if args.smoke else 500)
    executable = find_chromium()
    console.line(f"bench peer: Drover vs Playwright {version}, {config.label()}, {rounds} round(s), "
                 f"Chromium {executable}")
    drover: list[dict[str, Any]] = []
    peer: list[dict[str, Any]] = []
    d_lat: list[list[float]] = []
    p_lat: list[list[float]] = []
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-peer-") as tmp:
        exclude = (site.pid,)

        def run_drover(i: int) -> None:
            fig = run_once(config, base_url=site.base_url, work=Path(tmp), tag=f"{i:02d}-drover",
                           sampler_exclude=exclude)
            drover.append({"throughput": fig.throughput, "elapsed_s": fig.elapsed_s, "passed": fig.passed,
                           "failed": fig.failed, "cpu_s": fig.cpu_s, "cpu_sampled_s": fig.cpu_sampled_s,
                           "peak_rss": fig.peak_rss,
                           "job_ms": [(f, v) for f, vs in fig.job_ms.items() for v in vs],
                           "launches": sum(fig.launches.values()), "cdp_per_job": fig.cdp_per_job})
            console.status(f"round {i}: Drover {fig.throughput:.3f} jobs/s ({fig.failed} failed)")
            d_lat.append(cdp_latency_ms(lat_n))

        def run_peer(i: int) -> None:
            out = _playwright_batch(executable, site.base_url, config, exclude)
            peer.append(out)
            console.status(f"round {i}: Playwright {out['throughput']:.3f} jobs/s ({out['failed']} failed)")
            p_lat.append(latency_ms(executable, lat_n))

        for i in range(1, rounds + 1):
            first, second = (run_drover, run_peer) if i % 2 else (run_peer, run_drover)
            first(i)
            second(i)
        console.end_status()
    result = compare(drover, peer, d_lat, p_lat, config.workers)
    result["playwright"] = version
    result["config"] = config.as_dict()
    result["fingerprint"] = fingerprint()
    for line in lines(result):
        console.line(line)
    for e in {e for p in peer for e in p["errors"]}:
        console.warn(f"Playwright job failed: {e}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if any(d["failed"] for d in drover) or any(p["failed"] for p in peer):
        console.warn("some jobs failed: the figures count passed jobs only")
        return EXIT_JOB_FAILURES
    return EXIT_OK


def compare(drover: list[dict[str, Any]], peer: list[dict[str, Any]], d_lat: list[list[float]],
            p_lat: list[list[float]], workers: int) -> dict[str, Any]:
    d_t = Spread(tuple(d["throughput"] for d in drover))
    p_t = Spread(tuple(p["throughput"] for p in peer))
    ratios = Spread(tuple(d / p if p else 0.0 for d, p in zip(d_t.values, p_t.values)))
    d_med = Spread(tuple(statistics.median(v) for v in d_lat))
    p_med = Spread(tuple(statistics.median(v) for v in p_lat))
    lat_ratio = Spread(tuple(d / p if p else 0.0 for d, p in zip(d_med.values, p_med.values)))
    cpu_job = lambda runs: sum(r["cpu_s"] for r in runs) / max(1, sum(r["passed"] for r in runs))  # noqa: E731

    def flows(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        by: dict[str, list[float]] = {}
        for r in runs:
            for f, v in r["job_ms"]:
                by.setdefault(f, []).append(v)
        return {f: pcts(v) for f, v in sorted(by.items())}

    return {
        "throughput": {"drover": d_t.as_dict(), "playwright": p_t.as_dict(), "ratio": ratios.as_dict(),
                       "ratio_of_means": d_t.mean / p_t.mean if p_t.mean else 0.0},
        "latency_ms": {"drover_median": d_med.as_dict(), "playwright_median": p_med.as_dict(),
                       "ratio": lat_ratio.as_dict(),
                       "ratio_of_means": d_med.mean / p_med.mean if p_med.mean else 0.0,
                       "drover": pcts(v for r in d_lat for v in r), "playwright": pcts(v for r in p_lat for v in r)},
        "cpu_per_job_s": {"drover": cpu_job(drover), "playwright": cpu_job(peer)},
        "peak_rss_mb": {"drover": max(d["peak_rss"] for d in drover) / 2**20,
                        "playwright": max(p["peak_rss"] for p in peer) / 2**20},
        "job_ms": {"drover": flows(drover), "playwright": flows(peer)},
        "browser_launches_per_run": {"drover": [d["launches"] for d in drover], "playwright": workers},
        "failed": {"drover": sum(d["failed"] for d in drover), "playwright": sum(p["failed"] for p in peer)},
        # Drover's own count (attempt_timing); Playwright's driver protocol is not CDP, so it has none here
        "cdp_commands_per_job": {"drover": statistics.fmean(d.get("cdp_per_job", 0.0) for d in drover)
                                 if drover else 0.0},
    }


def _ratios(ratios: Spread) -> str:
    return ", ".join(f"{v:.2f}x" for v in ratios.values) + (f"; stdev {ratios.stdev:.2f}" if ratios.n > 1 else "")


def lines(r: dict[str, Any]) -> list[str]:
    t, lat = r["throughput"], r["latency_ms"]
    sp = lambda d: Spread(tuple(d["values"]))  # noqa: E731
    out = [f"throughput  Drover     {sp(t['drover']).text('.3f', ' jobs/s')}",
           f"            Playwright {sp(t['playwright']).text('.3f', ' jobs/s')}",
           f"  ratio Drover/Playwright: {t['ratio_of_means']:.2f}x (ratio of the means; per round: "
           f"{_ratios(sp(t['ratio']))}) (target >= 2x)",
           f"command round trip (median per round)  Drover Runtime.evaluate "
           f"{sp(lat['drover_median']).text('.3f', ' ms')}",
           f"                                       Playwright page.evaluate "
           f"{sp(lat['playwright_median']).text('.3f', ' ms')}",
           f"  ratio Drover/Playwright latency: {lat['ratio_of_means']:.2f}x (per round: "
           f"{_ratios(sp(lat['ratio']))}; Playwright takes {1 / lat['ratio_of_means']:.1f}x as long)"
           if lat["ratio_of_means"] else "",
           f"  pooled p95: Drover {lat['drover']['p95']:.3f} ms, Playwright {lat['playwright']['p95']:.3f} ms",
           "CPU per job (process tree incl. Chromium; Playwright's includes its Node driver): "
           f"Drover {r['cpu_per_job_s']['drover']:.2f} s, Playwright {r['cpu_per_job_s']['playwright']:.2f} s",
           f"peak memory (sum of RSS): Drover {r['peak_rss_mb']['drover']:.0f} MB, "
           f"Playwright {r['peak_rss_mb']['playwright']:.0f} MB",
           f"CDP commands per job: Drover {r.get('cdp_commands_per_job', {}).get('drover', 0.0):.1f} "
           "(Playwright: not counted, its driver speaks its own protocol to Chromium)",
           f"browser launches per run: Drover {r['browser_launches_per_run']['drover']}, "
           f"Playwright {r['browser_launches_per_run']['playwright']} (one per worker)"]
    for side in ("drover", "playwright"):
        for flow, p in r["job_ms"][side].items():
            out.append(f"  {side:10s} {flow:14s} n={p['n']:<4d} p50={p['p50']:8.1f} p95={p['p95']:8.1f} ms")
    return [line for line in out if line]


__all__ = ["peer_command", "compare", "lines", "playwright_version", "INSTALL_HINT"]
