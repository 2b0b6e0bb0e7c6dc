"""``python -m bench peer``: Drover against Playwright for Python, same flows, same Chromium, same workers.

Each round runs the batch through every runner (``--modes``: Drover in
``context``, ``reset``, ``page``; Playwright with a context per job or one
per worker; by default Drover in ``--isolation`` and its Playwright
counterpart), then measures one command's round trip on each client; the
order rotates and flips every round (:func:`round_order`) so a machine that
gets busier or quieter during the invocation favours no runner.  Per
runner: jobs/s, job latency p50/p95, CPU-seconds per job and CDP commands
per job (Drover counts its own; Playwright's are counted from its driver's
protocol log in a short untimed run after the rounds).  Throughput
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
import dataclasses
import importlib.metadata
import importlib.util
import os
import resource
import statistics
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Runner:
    """One side of the comparison in one isolation mode (``drover:reset``, ``playwright:context`` ...)."""

    side: str        # "drover" or "playwright"
    isolation: str   # the engine's job_isolation; Playwright's context (new context per job) or page

    @property
    def name(self) -> str:
        return f"{'Drover' if self.side == 'drover' else 'Playwright'} {self.isolation}"

    @property
    def peer_isolation(self) -> str:
        """The Playwright mode that gives a job what this mode gives it (``reset`` promises a fresh context)."""
        return "page" if self.isolation == "page" else "context"


ALL_MODES = "drover:context,drover:reset,drover:page,playwright:context,playwright:page"


def modes_arg(text: str) -> tuple[Runner, ...]:
    """``--modes``: a comma list of SIDE:ISOLATION (``all`` for every Drover mode and both Playwright ones)."""
    text = ALL_MODES if text.strip() == "all" else text
    out: list[Runner] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        side, _, isolation = item.partition(":")
        allowed = ("context", "reset", "page") if side == "drover" else ("context", "page")
        if side not in ("drover", "playwright") or isolation not in allowed:
            raise argparse.ArgumentTypeError(
                f"--modes items are drover:context|reset|page or playwright:context|page (or 'all'); got {item!r}")
        out.append(Runner(side, isolation))
    runners = tuple(dict.fromkeys(out))
    if not any(r.side == "drover" for r in runners) or not any(r.side == "playwright" for r in runners):
        raise argparse.ArgumentTypeError("--modes needs at least one drover:… and one playwright:… runner")
    return runners


def round_order(runners: tuple[Runner, ...], i: int) -> list[Runner]:
    """Round ``i``'s order (1-based), from a balanced Latin square (Williams design).

    Over ``n`` rounds each of ``n`` runners takes every position once, and
    each runner follows each other one equally often (``2n`` rounds when
    ``n`` is odd: the square, then its mirror): a machine that gets busier or
    quieter during the invocation favours no runner.  Two runners: A,B then B,A.
    """
    n = len(runners)
    first = [0]
    for k in range(1, n):
        first.append((k + 1) // 2 if k % 2 else n - k // 2)
    r = (i - 1) % (2 * n if n % 2 else n)
    row = [runners[(s + r) % n] for s in first]
    return row[::-1] if r >= n else row


def _drover_figures(fig: Any) -> dict[str, Any]:
    return {"throughput": fig.throughput, "elapsed_s": fig.elapsed_s, "passed": fig.passed,
            "failed": fig.failed, "cpu_s": fig.cpu_s, "cpu_sampled_s": fig.cpu_sampled_s,
            "peak_rss": fig.peak_rss, "job_ms": [(f, v) for f, vs in fig.job_ms.items() for v in vs],
            "launches": sum(fig.launches.values()), "cdp_per_job": fig.cdp_per_job, "errors": []}


PROTOCOL_JOBS = 3  # jobs of the (untimed) run that counts Playwright's CDP commands


def _playwright_protocol(executable: str, base_url: str, config: BenchConfig, isolation: str, work: Path) -> float:
    """Mean CDP commands per job Playwright's driver sends Chromium (its ``pw:protocol`` log, one worker).

    Why a separate run: the log costs the driver time, so the timed rounds run without it.
    """
    from bench._pw import pool_run

    folder = work / f"pw-protocol-{isolation}"
    folder.mkdir()
    out = pool_run(executable, base_url, 1, min(config.jobs, PROTOCOL_JOBS), config.flows, isolation,
                   protocol_dir=str(folder))
    counts = out["protocol_commands"]
    return statistics.fmean(counts) if counts else 0.0


def peer_command(args: argparse.Namespace, console: Console) -> int:
    version = playwright_version()
    if version is None:
        console.error(INSTALL_HINT)
        return EXIT_NO_PEER
    from bench._pw import latency_ms

    table = SMOKE if args.smoke else DEFAULTS
    config = BenchConfig(args.workers or table["workers"], args.jobs or (4 if args.smoke else 18),
                         args.flows or flows_arg(table["flows"]), isolation=args.isolation or table["isolation"])
    runners: tuple[Runner, ...] = getattr(args, "modes", None) or (
        Runner("drover", config.isolation), Runner("playwright", Runner("drover", config.isolation).peer_isolation))
    rounds = args.rounds or (1 if args.smoke else 3)
    lat_n = args.latency_rounds or (50 if args.smoke else 500)
    executable = find_chromium()
    console.line(f"bench peer: Drover vs Playwright {version}, {config.label()}, {rounds} round(s), "
                 f"runners {', '.join(r.name for r in runners)}, Chromium {executable}")
    runs: dict[Runner, list[dict[str, Any]]] = {r: [] for r in runners}
    lat: dict[str, list[list[float]]] = {"drover": [], "playwright": []}
    load: list[float] = [os.getloadavg()[0]]
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-peer-") as tmp:
        exclude = (site.pid,)
        for i in range(1, rounds + 1):
            probed: set[str] = set()
            for runner in round_order(runners, i):
                cfg = dataclasses.replace(config, isolation=runner.isolation)
                if runner.side == "drover":
                    out = _drover_figures(run_once(cfg, base_url=site.base_url, work=Path(tmp),
                                                   tag=f"{i:02d}-drover-{runner.isolation}", sampler_exclude=exclude))
                else:
                    out = _playwright_batch(executable, site.base_url, cfg, exclude)
                runs[runner].append(out)
                console.status(f"round {i}: {runner.name} {out['throughput']:.3f} jobs/s ({out['failed']} failed)")
                if runner.side not in probed:  # one command round-trip probe per client and round
                    probed.add(runner.side)
                    lat[runner.side].append(cdp_latency_ms(lat_n) if runner.side == "drover"
                                            else latency_ms(executable, lat_n))
            load.append(os.getloadavg()[0])
        for runner in (r for r in runners if r.side == "playwright"):  # untimed: the protocol log slows it
            console.status(f"counting {runner.name}'s CDP commands per job ...")
            counted = _playwright_protocol(executable, site.base_url, config, runner.isolation, Path(tmp))
            for out in runs[runner]:
                out["cdp_per_job"] = counted
        console.end_status()
    primary = next(r for r in runners if r.side == "drover")
    reference = next((r for r in runners if r.side == "playwright" and r.isolation == primary.peer_isolation),
                     next(r for r in runners if r.side == "playwright"))
    result = compare(runs[primary], runs[reference], lat["drover"], lat["playwright"], config.workers)
    result["playwright"] = version
    result["config"] = config.as_dict()
    result["fingerprint"] = fingerprint()
    result["compared"] = {"drover": primary.name, "playwright": reference.name}
    result["runners"] = matrix(runs)
    result["load_avg_1m"] = load
    for line in lines(result):
        console.line(line)
    for line in matrix_lines(result["runners"], load):
        console.line(line)
    for e in {e for r in runs.values() for p in r for e in p["errors"]}:
        console.warn(f"Playwright job failed: {e}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if any(p["failed"] for r in runs.values() for p in r):
        console.warn("some jobs failed: the figures count passed jobs only")
        return EXIT_JOB_FAILURES
    return EXIT_OK


def matrix(runs: dict[Runner, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per runner: throughput over the rounds, job latency, CPU per job, CDP commands, and ratios.

    Ratios are to Playwright's context-per-job runner (the issue's
    reference), per round (same round, adjacent in time) and of the means;
    p95 is also compared with the Playwright runner of the same isolation
    (``reset`` and ``context`` against context, ``page`` against page).
    """
    pw_ctx = runs.get(Runner("playwright", "context"))
    out: dict[str, dict[str, Any]] = {}
    for runner, rs in runs.items():
        t = Spread(tuple(r["throughput"] for r in rs))
        jobs = [v for r in rs for _f, v in r["job_ms"]]
        row: dict[str, Any] = {
            "side": runner.side, "isolation": runner.isolation, "throughput": t.as_dict(),
            "job_ms": pcts(jobs), "failed": sum(r["failed"] for r in rs),
            "p95_per_round": [pcts(v for _f, v in r["job_ms"])["p95"] for r in rs],
            "cpu_per_job_s": sum(r["cpu_s"] for r in rs) / max(1, sum(r["passed"] for r in rs)),
            "cdp_commands_per_job": statistics.fmean(r.get("cdp_per_job", 0.0) for r in rs),
        }
        if pw_ctx:
            ref = Spread(tuple(r["throughput"] for r in pw_ctx))
            per_round = [a / b if b else 0.0 for a, b in zip(t.values, ref.values)]
            row["vs_playwright_context"] = {
                "ratio_of_means": t.mean / ref.mean if ref.mean else 0.0, "per_round": per_round,
                # the geometric mean of same-round ratios: a round the whole machine was slow in weighs no more
                "geometric_mean": statistics.geometric_mean(per_round) if all(per_round) and per_round else 0.0}
        peer = runs.get(Runner("playwright", runner.peer_isolation))
        if runner.side == "drover" and peer:
            peer_rounds = [pcts(v for _f, v in r["job_ms"])["p95"] for r in peer]
            row["p95_vs"] = {"playwright": Runner("playwright", runner.peer_isolation).name,
                             "playwright_p95": pcts(v for r in peer for _f, v in r["job_ms"])["p95"],
                             "playwright_p95_per_round": peer_rounds,
                             "rounds_not_worse": sum(d <= p for d, p in zip(row["p95_per_round"], peer_rounds))}
        out[runner.name] = row
    return out


def matrix_lines(rows: dict[str, dict[str, Any]], load: list[float]) -> list[str]:
    out = ["", "runner               jobs/s (mean; per round)            x PW ctx   p50 ms   p95 ms  CPU-s/job"
           "  CDP/job  failed"]
    for name, r in rows.items():
        t = r["throughput"]
        per = ", ".join(f"{v:.2f}" for v in t["values"])
        ratio = r.get("vs_playwright_context", {}).get("ratio_of_means")
        cdp = r["cdp_commands_per_job"]
        cdp = cdp if cdp else None
        out.append(f"{name:20s} {t['mean']:6.3f} ({per:26s}) {ratio if ratio is not None else 0:7.2f}x "
                   f"{r['job_ms']['p50']:8.0f} {r['job_ms']['p95']:8.0f} {r['cpu_per_job_s']:9.2f} "
                   f"{'-' if cdp is None else f'{cdp:.1f}':>8s} {r['failed']:7d}")
    for name, r in rows.items():
        if "p95_vs" in r:
            ok = r["job_ms"]["p95"] <= r["p95_vs"]["playwright_p95"]
            rounds = ", ".join(f"{d:.0f}/{p:.0f}" for d, p in zip(r["p95_per_round"],
                                                                   r["p95_vs"]["playwright_p95_per_round"]))
            out.append(f"  p95 {name}: {r['job_ms']['p95']:.0f} ms vs {r['p95_vs']['playwright']} "
                       f"{r['p95_vs']['playwright_p95']:.0f} ms ({'<=' if ok else 'WORSE'}); per round "
                       f"(Drover/Playwright ms) {rounds}: not worse in {r['p95_vs']['rounds_not_worse']} of "
                       f"{len(r['p95_per_round'])}")
        if "vs_playwright_context" in r and r["side"] == "drover":
            v = r["vs_playwright_context"]
            per = ", ".join(f"{x:.2f}x" for x in v["per_round"])
            out.append(f"  {name} / Playwright context per round: {per} (geometric mean {v['geometric_mean']:.2f}x)")
    out.append("load average (1 min) before and after each round: " + ", ".join(f"{v:.1f}" for v in load))
    return out


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
        # Drover's own count (attempt_timing); Playwright's from its driver's protocol log (an untimed run)
        "cdp_commands_per_job": {side: statistics.fmean(d.get("cdp_per_job", 0.0) for d in runs) if runs else 0.0
                                 for side, runs in (("drover", drover), ("playwright", peer))},
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
           f"CDP commands per job: Drover {r.get('cdp_commands_per_job', {}).get('drover', 0.0):.1f} (its own "
           f"count), Playwright {r.get('cdp_commands_per_job', {}).get('playwright', 0.0):.1f} (its driver's "
           "protocol log, in an untimed run)",
           f"browser launches per run: Drover {r['browser_launches_per_run']['drover']}, "
           f"Playwright {r['browser_launches_per_run']['playwright']} (one per worker)"]
    for side in ("drover", "playwright"):
        for flow, p in r["job_ms"][side].items():
            out.append(f"  {side:10s} {flow:14s} n={p['n']:<4d} p50={p['p50']:8.1f} p95={p['p95']:8.1f} ms")
    return [line for line in out if line]


__all__ = ["peer_command", "compare", "lines", "matrix", "matrix_lines", "modes_arg", "round_order", "Runner",
           "playwright_version", "INSTALL_HINT"]
