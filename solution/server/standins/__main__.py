"""``python -m solution.server.standins --size tiny|base OUT``: write the five stand-ins."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from .build import SIZES, build


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m solution.server.standins", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("out", type=Path, help="folder to write <key>/ model folders into")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    build(args.size, args.out, args.seed)
    print(f"stand-ins ({args.size}) written to {args.out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
