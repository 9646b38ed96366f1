"""``python -m solution.standins --size tiny|base OUT``: write the five stand-ins.

``tiny`` trains them (about a minute on 2 cores) and prints each one's accuracy on held-back
texts; it exits 1, writing no model, when any is below 90%. ``base`` has random weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from solution.standins.build import SIZES, build
from solution.standins.train import AccuracyTooLow


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m solution.standins", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("out", type=Path, help="folder to write <key>/ model folders into")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        build(args.size, args.out, args.seed)
    except AccuracyTooLow as exc:
        sys.exit(f"stand-in build failed: {exc}")
    print(f"stand-ins ({args.size}) written to {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
