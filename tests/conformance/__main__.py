"""``python -m tests.conformance [NAME ...]``: replay the recordings through Drover and the reference, print the table."""
from __future__ import annotations

import logging
import sys

from tests.conformance import harness


def main(argv: list[str]) -> int:
    reason = harness.reference_unavailable()
    if reason is not None:
        sys.stderr.write(f"conformance: cannot run the reference replayer: {reason}\n")
        return 2
    logging.basicConfig(level=logging.ERROR)  # a failing step's warning is in the table already
    verdicts = harness.run_all(argv or None)
    sys.stdout.write(harness.table(verdicts) + "\n")
    return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
