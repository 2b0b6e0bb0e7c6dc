"""``python -m bench``: composition root — parse arguments, build the console, hand over.

Commands: ``run`` (end-to-end throughput, baseline and gate), ``peer``
(Drover vs Playwright), ``scale`` (1, 2, 4 ... workers), ``faults`` (a
fault campaign against a batch), ``concurrency`` (a latency-bound batch as
workers x sessions), ``cluster-credentials`` (actors sharing
credentials on a local multi-node Ray cluster: double ownership, lease waits).  Exit codes: 0 ok, 1 the gate found a
regression (faults: an invariant was violated), 2 bad arguments or
baseline, 3 Drover or its environment failed (faults: also a fault that
could not be injected), 4 bench jobs failed, 5 Playwright missing (peer).
"""
from __future__ import annotations

import argparse
import logging
import sys

from bench._concurrency import add_arguments as add_concurrency_arguments, concurrency_command
from bench._clustercreds import add_arguments as add_credential_arguments, cluster_credentials_command
from bench._faults import add_arguments as add_fault_arguments, faults_command
from bench._gate import BaselineError
from bench._peer import modes_arg, peer_command
from bench._run import EXIT_INPUT, EXIT_INTERNAL, UsageError, add_common, run_command, scale_command
from coordination.errors import DroverError
from engine.cli.console import Console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="end-to-end throughput of the fixed batch; baseline and gate")
    add_common(run)
    run.add_argument("--repeat", type=int, help="runs of the batch (default 3; smoke 1)")
    run.add_argument("--save-baseline", metavar="FILE", help="save the figures as a baseline JSON file")
    run.add_argument("--compare", metavar="FILE", help="gate against a saved baseline (non-zero exit on regression)")
    run.add_argument("--inject-delay-ms", type=float, default=0.0, metavar="MS",
                     help="deliberate slowdown: an in-page wait of MS after every step (to prove the gate fails)")
    run.add_argument("--ab-local", action="store_true",
                     help="with --backend ray: alternate every round with the local backend (same workers) and "
                          "report Ray's throughput cost, round trips per job and start-up")
    run.set_defaults(_run=run_command)
    peer = sub.add_parser("peer", help="the same flows through Playwright for Python, alternating with Drover")
    add_common(peer)
    peer.add_argument("--rounds", type=int, help="alternating rounds (default 3; smoke 1)")
    peer.add_argument("--latency-rounds", type=int, help="command round trips per client per round (default 500)")
    peer.add_argument("--modes", type=modes_arg, metavar="LIST",
                      help="runners, alternating in every round: a comma list of drover:context|reset|page and "
                           "playwright:context|page, or 'all' (default: Drover in --isolation and its Playwright "
                           "counterpart)")
    peer.set_defaults(_run=peer_command)
    scale = sub.add_parser("scale", help="throughput and memory at 1, 2, 4 ... workers up to the machine's limit")
    add_common(scale)
    scale.add_argument("--max-workers", type=int, help="highest worker count (default: the engine's machine limit)")
    scale.add_argument("--jobs-per-worker", type=int, help="jobs per worker at each point (default 8; smoke 2)")
    scale.add_argument("--repeat", type=int, help="runs per point (default 1)")
    scale.set_defaults(_run=scale_command)
    faults = sub.add_parser("faults", help="fault campaign: kill workers, browsers, the supervisor; check invariants")
    add_fault_arguments(faults)
    faults.set_defaults(_run=faults_command)
    creds = sub.add_parser("cluster-credentials",
                           help="Ray: N actors x K credentials on a local multi-node cluster (exit 1: double owner)")
    add_credential_arguments(creds)
    creds.set_defaults(_run=cluster_credentials_command)
    conc = sub.add_parser("concurrency", help="a latency-bound batch as W x 1, 1 x W, W/2 x 2 sessions and auto: "
                                              "throughput, p95 and peak PSS")
    add_concurrency_arguments(conc)
    conc.set_defaults(_run=concurrency_command)
    return parser


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = console or Console(quiet=args.quiet)
    try:
        return int(args._run(args, console))
    except (UsageError, BaselineError) as exc:
        console.error(str(exc))
        return EXIT_INPUT
    except DroverError as exc:
        console.error(f"[{type(exc).category}] {exc}")
        return EXIT_INPUT if type(exc).category == "input" else EXIT_INTERNAL
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
