"""Process exit codes of ``python -m engine`` (documented in the README).

They are stable: cron jobs and CI scripts branch on them.
"""
EXIT_OK = 0            # everything asked for succeeded
EXIT_JOB_FAILURES = 1  # the run completed but some jobs failed
EXIT_INPUT = 2         # invalid input: batch, flow, config, arguments (argparse also uses 2)
EXIT_INTERNAL = 3      # Drover or its environment failed (browser, store, coordination)
EXIT_NO_GO = 4         # readiness / SLO verdict: no-go
EXIT_BUSY = 5          # another run or soak holds the state directory (nothing started)
EXIT_ABORTED = 6       # a soak halted by a critical alert (diagnostic file written)
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM drained the run

__all__ = ["EXIT_OK", "EXIT_JOB_FAILURES", "EXIT_INPUT", "EXIT_INTERNAL", "EXIT_NO_GO", "EXIT_BUSY",
           "EXIT_ABORTED", "EXIT_INTERRUPTED"]
