"""``python -m bench run`` and ``python -m bench scale``: the engine end to end, repeated.

``run`` repeats the fixed batch, reports throughput, latency, coordination,
CPU and memory, and optionally saves a baseline or gates against one.  When
the current configuration differs from the baseline's (the deliberate
slowdown), the repeats alternate with re-runs of the baseline configuration
so both are measured under the same machine load.

``scale`` runs the batch at 1, 2, 4 ... workers up to the engine's own
machine limit (``engine.config.default_workers``: two per core, capped by
memory) and reports throughput and memory per worker.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

from bench import _gate
from bench._coordcost import measure as measure_coordination
from bench._e2e import BenchConfig, RunFigures, run_once
from bench._fingerprint import fingerprint
from bench._flows import BATCH_VERSION, FLOW_NAMES
from bench._probe import commands_per_job
from bench._report import lines as report_lines, summarize
from bench._site import SiteProcess
from bench._stats import Spread
from engine.config import default_workers
from engine.cli.console import Console

EXIT_OK, EXIT_REGRESSION, EXIT_INPUT, EXIT_INTERNAL, EXIT_JOB_FAILURES, EXIT_NO_PEER = 0, 1, 2, 3, 4, 5

DEFAULTS = {"workers": 2, "jobs": 24, "repeat": 3, "flows": "form,canvas", "isolation": "context", "backend": "local"}
SMOKE = {**DEFAULTS, "workers": 1, "jobs": 3, "repeat": 1, "flows": "form"}


class UsageError(Exception):
    """Arguments that cannot work together (exit 2)."""


def flows_arg(text: str) -> tuple[str, ...]:
    flows = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    bad = [f for f in flows if f not in FLOW_NAMES]
    if bad or not flows:
        raise argparse.ArgumentTypeError(f"flows are a comma list of {', '.join(FLOW_NAMES)}; got {text!r}")
    return flows


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help=f"worker processes (default {DEFAULTS['workers']}; smoke 1)")
    p.add_argument("--jobs", type=int, help=f"jobs per run (default {DEFAULTS['jobs']}; smoke 3)")
    p.add_argument("--flows", type=flows_arg, help="comma list of form,canvas (default both; smoke: form)")
    p.add_argument("--isolation", choices=("context", "page", "reset"),
                   help="engine.job_isolation for anonymous jobs (default: context)")
    p.add_argument("--backend", choices=("local", "ray"),
                   help="local: forked workers (default); ray: Ray actors (a local Ray instance, started once "
                        "before the runs so its start-up is reported apart)")
    p.add_argument("--smoke", action="store_true", help="tiny counts, to check the command works (CI)")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")


def _pick(args: argparse.Namespace, name: str, baseline_cfg: dict[str, Any] | None = None) -> Any:
    explicit = getattr(args, name, None)
    if explicit is not None:
        return explicit
    if baseline_cfg is not None and name in baseline_cfg:
        return tuple(baseline_cfg[name]) if name == "flows" else baseline_cfg[name]
    table = SMOKE if args.smoke else DEFAULTS
    return flows_arg(table[name]) if name == "flows" else table[name]


def _check(config: BenchConfig, repeat: int) -> None:
    if config.workers < 1 or config.jobs < 1 or repeat < 1:
        raise UsageError("--workers, --jobs and --repeat must be >= 1")
    if config.inject_delay_ms < 0:
        raise UsageError("--inject-delay-ms must be >= 0")


def _run_set(console: Console, plan: list[tuple[str, BenchConfig]], base_url: str, work: Path,
             exclude: tuple[int, ...]) -> dict[str, list[RunFigures]]:
    out: dict[str, list[RunFigures]] = {}
    for i, (role, config) in enumerate(plan, 1):
        console.status(f"run {i}/{len(plan)} ({role}): {config.label()} ...")
        fig = run_once(config, base_url=base_url, work=work, tag=f"{i:02d}-{role}", sampler_exclude=exclude)
        console.status(f"run {i}/{len(plan)} ({role}): {fig.throughput:.3f} jobs/s, {fig.passed} passed, "
                       f"{fig.failed} failed, {fig.elapsed_s:.1f} s")
        out.setdefault(role, []).append(fig)
    console.end_status()
    return out


@contextlib.contextmanager
def _ray_instance(config: BenchConfig, console: Console, startups: list[float] | None = None) -> Iterator[None]:
    """For ``--backend ray``: a local Ray instance, as a run starts its own (its start-up is not a run's throughput)."""
    if config.backend != "ray":
        yield
        return
    from engine.execution.cluster import start_local_instance  # noqa: PLC0415 - Ray is optional

    t0 = time.monotonic()
    start_local_instance(config.workers)
    import ray  # noqa: PLC0415 - optional; imported by start_local_instance

    startup = time.monotonic() - t0
    if startups is not None:
        startups.append(startup)
    console.line(f"Ray start-up: {startup:.2f} s")
    try:
        yield
    finally:
        ray.shutdown()


def _ab_local(args: argparse.Namespace, console: Console, config: BenchConfig, repeat: int) -> int:
    """``run --backend ray --ab-local``: rounds alternate Ray and local (order flips every round), same workers.

    Each Ray run gets a fresh local instance, started before the run's clock
    starts (its start-up is reported apart) and shut down after it, so the
    local runs share the machine with no idle Ray processes.
    """
    local = dataclasses.replace(config, backend="local")
    rounds: list[dict[str, RunFigures]] = []
    startups: list[float] = []
    console.line(f"bench run A/B: {config.label()} vs the local backend, {repeat} round(s), order flips each round")
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-") as tmp:
        for i in range(repeat):
            order = [("local", local), ("ray", config)] if i % 2 == 0 else [("ray", config), ("local", local)]
            figs: dict[str, RunFigures] = {}
            for role, cfg in order:
                with _ray_instance(cfg, console, startups):
                    fig = run_once(cfg, base_url=site.base_url, work=Path(tmp), tag=f"{i:02d}-{role}",
                                   sampler_exclude=(site.pid,))
                console.line(f"round {i + 1} {role}: {fig.throughput:.3f} jobs/s ({fig.passed} passed, "
                             f"{fig.failed} failed, {fig.elapsed_s:.1f} s, CPU {fig.cpu_s / max(1, fig.passed):.2f} "
                             f"s/job)")
                figs[role] = fig
            rounds.append(figs)
    local_t = Spread(tuple(r["local"].throughput for r in rounds))
    ray_t = Spread(tuple(r["ray"].throughput for r in rounds))
    cost = Spread(tuple(1 - r["ray"].throughput / r["local"].throughput for r in rounds if r["local"].throughput))
    trips = [t for r in rounds for t in r["ray"].round_trips]
    job_ms = [ms for r in rounds for v in r["ray"].job_ms.values() for ms in v]
    per_job_n = sum(n for n, _ in trips) / len(trips) if trips else 0.0
    per_job_ms = sum(ms for _, ms in trips) / len(trips) if trips else 0.0
    mean_job_ms = sum(job_ms) / len(job_ms) if job_ms else 0.0
    served = [r["ray"].coordinator_service for r in rounds]
    service_calls = sum(c for c, _ in served)
    service_ms_per_call = sum(ms for _, ms in served) / service_calls if service_calls else 0.0
    transport_ms = max(0.0, per_job_ms - per_job_n * service_ms_per_call)  # Ray's share of the round trips
    console.result(f"throughput: local {local_t.text('.3f')} jobs/s, ray {ray_t.text('.3f')} jobs/s")
    console.result(f"Ray throughput cost (paired per round): {100 * cost.mean:+.1f}% "
                   f"(rounds: {', '.join(f'{100 * c:+.1f}%' for c in cost.values)}; target <= 5%)")
    ray_jobs = sum(r["ray"].passed + r["ray"].failed for r in rounds)
    console.result(f"coordinator round trips per job (waited for on the job's path): {per_job_n:.1f} calls, "
                   f"{per_job_ms:.1f} ms ({100 * per_job_ms / mean_job_ms if mean_job_ms else 0:.1f}% of the mean "
                   f"job time {mean_job_ms:.0f} ms)")
    console.result(f"  of which the coordinator's own work (SQLite writes, lease table): "
                   f"{per_job_n * service_ms_per_call:.1f} ms; Ray's transport: {transport_ms:.1f} ms per job "
                   f"({100 * transport_ms / mean_job_ms if mean_job_ms else 0:.1f}%)")
    if ray_jobs:
        console.result(f"  calls the coordinator served per job (waited for or not): {service_calls / ray_jobs:.1f}, "
                       f"{service_ms_per_call * service_calls / ray_jobs:.1f} ms of its own work")
    console.result(f"Ray start-up (ray.init of a local instance): "
                   f"{', '.join(f'{t:.2f}' for t in startups)} s")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({
            "config": config.as_dict(), "fingerprint": fingerprint(),
            "rounds": [{role: {"throughput": f.throughput, "elapsed_s": f.elapsed_s, "passed": f.passed,
                               "failed": f.failed, "cpu_s": f.cpu_s, "round_trips": f.round_trips}
                        for role, f in r.items()} for r in rounds],
            "cost": cost.as_dict(), "round_trips_per_job": per_job_n, "round_trip_ms_per_job": per_job_ms,
            "mean_job_ms": mean_job_ms, "service_ms_per_call": service_ms_per_call,
            "transport_ms_per_job": transport_ms, "ray_startup_s": startups}, option=orjson.OPT_INDENT_2))
    failed = sum(f.failed for r in rounds for f in r.values())
    if failed:
        console.warn(f"{failed} job(s) failed: the figures count passed jobs only")
        return EXIT_JOB_FAILURES
    return EXIT_OK


def run_command(args: argparse.Namespace, console: Console) -> int:
    if getattr(args, "ab_local", False):
        config = BenchConfig(workers=_pick(args, "workers"), jobs=_pick(args, "jobs"), flows=_pick(args, "flows"),
                             inject_delay_ms=args.inject_delay_ms, isolation=_pick(args, "isolation"),
                             backend=_pick(args, "backend"))
        if config.backend != "ray" or args.compare or args.save_baseline:
            raise UsageError("--ab-local compares --backend ray with the local backend; it takes no baseline")
        _check(config, _pick(args, "repeat"))
        return _ab_local(args, console, config, _pick(args, "repeat"))
    baseline = _gate.load(args.compare, BATCH_VERSION) if args.compare else None
    base_cfg = baseline["config"] if baseline else None
    config = BenchConfig(workers=_pick(args, "workers", base_cfg), jobs=_pick(args, "jobs", base_cfg),
                         flows=_pick(args, "flows", base_cfg), inject_delay_ms=args.inject_delay_ms,
                         isolation=_pick(args, "isolation", base_cfg), backend=_pick(args, "backend", base_cfg))
    repeat = _pick(args, "repeat")
    _check(config, repeat)
    control: BenchConfig | None = None
    if base_cfg is not None:
        if config.comparable() != {k: base_cfg.get(k) for k in config.comparable()}:
            raise UsageError(f"not comparable: the baseline measured {base_cfg}, this run {config.comparable()}")
        if config.inject_delay_ms != float(base_cfg.get("inject_delay_ms", 0.0)):
            control = dataclasses.replace(config, inject_delay_ms=float(base_cfg.get("inject_delay_ms", 0.0)))
    plan: list[tuple[str, BenchConfig]] = []
    for _ in range(repeat):
        if control is not None:
            plan.append(("baseline-config", control))
        plan.append(("current", config))
    now = fingerprint()
    warnings = _gate.machine_warnings(baseline, now) if baseline else []
    for w in warnings:
        console.warn(w)
    console.line(f"bench run: {config.label()}, {repeat} repeat(s)"
                 + (", alternating with the baseline configuration" if control else ""))
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-") as tmp, \
            _ray_instance(config, console):
        sets = _run_set(console, plan, site.base_url, Path(tmp), (site.pid,))
        console.status("timing coordination operations and counting CDP commands per job ...")
        costs = measure_coordination()
        commands = commands_per_job(site.base_url, _credentials(Path(tmp)), config.flows)
        console.end_status()
    summary = summarize(sets["current"], costs, commands)
    summary["fingerprint"] = now
    for line in report_lines(summary):
        console.line(line)
    if control is not None:
        summary["baseline_config_reruns"] = summarize(sets["baseline-config"], costs, commands)
    code = EXIT_OK
    failed = summary["jobs"]["failed"]
    if failed:
        console.warn(f"{failed} job(s) failed: the figures count passed jobs only; look at the run logs")
        code = EXIT_JOB_FAILURES
    if args.save_baseline and failed:
        console.error(f"not saving {args.save_baseline}: a baseline from a run with failed jobs would loosen the gate")
    elif args.save_baseline:
        _gate.save(args.save_baseline, _gate.baseline_document(summary, now, BATCH_VERSION))
        console.line(f"baseline saved to {args.save_baseline}")
    if baseline is not None:
        verdict = _gate.evaluate(baseline["summary"]["throughput"]["values"], summary["throughput"]["values"],
                                 summary.get("baseline_config_reruns", {}).get("throughput", {}).get("values"))
        load = _gate.load_warning(baseline, summary, int(now["cores"]))
        summary["gate"] = {"passed": verdict.passed, "drop": verdict.drop, "noise": verdict.noise,
                           "lines": list(verdict.lines),
                           "warnings": list(verdict.warnings) + warnings + ([load] if load else [])}
        for w in verdict.warnings + ((load,) if load else ()):
            console.warn(w)
        for line in verdict.lines:
            console.result(f"gate: {line}")
        then_cpu = baseline["summary"].get("cpu", {}).get("per_job_s")
        if then_cpu:
            now_cpu = summary["cpu"]["per_job_s"]
            console.result(f"gate: (not gated) CPU per job {now_cpu:.2f} s vs {then_cpu:.2f} s in the baseline "
                           f"({100 * (now_cpu - then_cpu) / then_cpu:+.1f}%): steadier than throughput on a shared "
                           f"machine, blind to waiting")
        if not verdict.passed:
            code = EXIT_REGRESSION  # the gate's answer wins over job failures
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return code


def _credentials(work: Path) -> str:
    """The credential store file the first run wrote (every run writes the same one)."""
    found = sorted(work.glob("*/credentials.json"))
    if not found:
        raise RuntimeError(f"no credentials.json under {work}")
    return str(found[0])


def worker_counts(limit: int) -> list[int]:
    """1, 2, 4 ... up to ``limit``, and ``limit`` itself."""
    out, n = [], 1
    while n < limit:
        out.append(n)
        n *= 2
    return out + [limit]


def scale_command(args: argparse.Namespace, console: Console) -> int:
    limit = args.max_workers or (2 if args.smoke else default_workers())
    counts = worker_counts(limit)
    flows = args.flows or flows_arg(SMOKE["flows"] if args.smoke else DEFAULTS["flows"])
    isolation = args.isolation or DEFAULTS["isolation"]
    per_worker_jobs = args.jobs_per_worker or (2 if args.smoke else 8)
    repeat = args.repeat or 1
    console.line(f"bench scale: workers {', '.join(map(str, counts))} (limit {limit}: engine default for this "
                 f"machine), {per_worker_jobs} jobs per worker ({'+'.join(flows)}), {repeat} repeat(s) each")
    rows: list[dict[str, Any]] = []
    with SiteProcess() as site, tempfile.TemporaryDirectory(prefix="drover-bench-") as tmp:
        plan = [(f"w{n}", BenchConfig(n, max(per_worker_jobs * n, n), flows, isolation=isolation))
                for _ in range(repeat) for n in counts]
        sets = _run_set(console, plan, site.base_url, Path(tmp), (site.pid,))
    for n in counts:
        runs = sets[f"w{n}"]
        s = summarize(runs)
        rows.append({"workers": n, **{k: s[k] for k in ("throughput", "throughput_per_worker", "memory", "cpu",
                                                        "jobs", "browser_launches")}})
    base = Spread(tuple(rows[0]["throughput"]["values"])).mean
    console.line(f"{'workers':>7} {'jobs/s':>22} {'per worker':>10} {'speed-up':>8} {'CPU-s/job':>9} "
                 f"{'peak MB':>8} {'MB/worker':>9}")
    for r in rows:
        t = Spread(tuple(r["throughput"]["values"]))
        spread = f"{t.mean:.3f}" + (f" ±{t.stdev:.3f}" if t.n > 1 else "")
        console.line(f"{r['workers']:>7} {spread:>22} {t.mean / r['workers']:>10.3f} "
                     f"{(t.mean / base if base else 0):>7.2f}x {r['cpu']['per_job_s']:>9.2f} "
                     f"{r['memory']['peak_rss_mb']:>8.0f} {r['memory']['peak_rss_per_worker_mb']:>9.0f}")
    failed = sum(r["jobs"]["failed"] for r in rows)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({"fingerprint": fingerprint(), "rows": rows},
                                                 option=orjson.OPT_INDENT_2))
    if failed:
        console.warn(f"{failed} job(s) failed: the figures count passed jobs only")
        return EXIT_JOB_FAILURES
    return EXIT_OK


__all__ = ["run_command", "scale_command", "add_common", "flows_arg", "worker_counts", "UsageError", "EXIT_OK",
           "EXIT_REGRESSION", "EXIT_INPUT", "EXIT_INTERNAL", "EXIT_JOB_FAILURES", "EXIT_NO_PEER"]
