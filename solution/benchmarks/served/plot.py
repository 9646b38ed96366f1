"""What a reader wants at a glance from a served-path run: throughput and p99 against users, for
the service and the winner-style peer, with the graph limit as a horizontal line and the host
floor (the server with no forward: the host's ceiling) dotted.

    python -m solution.benchmarks.served.plot results/served-....json [PNG]

A separate command that works from the committed JSON: the GPU machine may lack matplotlib, so the
run writes its data there and the picture is drawn afterwards, here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

Series = dict[str, list[tuple[int, float]]]  # side -> (users, value), by users
# (label, step in the record): the host floor is the server with no forward (host_floor.py), so
# its line is the host's ceiling under the service's own
SIDES = (
    ("service", "service"),
    ("winner-style peer", "peer"),
    (FLOOR := "host floor", "host_floor"),
)


def series(doc: dict[str, Any]) -> tuple[Series, Series, float | None]:
    """(throughput req/s, p99 ms) per side against users, and the graph limit (texts/s)."""
    rate: Series = {}
    p99: Series = {}
    for side, step in SIDES:
        runs = doc.get("steps", {}).get(step, {}).get("http", [])
        done = sorted((r for r in runs if "throughput_rps" in r), key=lambda r: r["users"])
        if done:
            rate[side] = [(r["users"], r["throughput_rps"]) for r in done]
            p99[side] = [
                (r["users"], r["latency_ms"]["p99"])
                for r in done
                if r["latency_ms"].get("p99") is not None
            ]
    limit = (doc.get("limit") or {}).get("best", {}).get("texts_per_s")
    return rate, p99, limit


def draw(doc: dict[str, Any], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    rate, p99, limit = series(doc)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for side, points in rate.items():
        style = ":" if side == FLOOR else "-"
        left.plot(*zip(*points, strict=True), style, marker="o", label=side)
    if limit:
        left.axhline(limit, linestyle="--", color="grey", label=f"graph limit {limit:.0f}/s")
    left.set(xlabel="closed-loop users (HTTP)", ylabel="requests/s", xscale="log", ylim=(0, None))
    left.legend()
    for side, points in p99.items():
        style = ":" if side == FLOOR else "-"
        right.plot(*zip(*points, strict=True), style, marker="o", label=side)
    right.axhline(250, linestyle=":", color="red", label="p99 target 250 ms")
    right.set(xlabel="closed-loop users (HTTP)", ylabel="p99 ms", xscale="log", yscale="log")
    right.legend()
    users = sorted({u for points in rate.values() for u, _ in points})
    for axis in (left, right):
        axis.set_xticks(users, [str(u) for u in users])
        axis.xaxis.set_minor_locator(NullLocator())
    fig.suptitle(f"Served path on {doc.get('device')}")  # a smoke test's device says so
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> int:
    import json

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(args[0])
    png = Path(args[1]) if len(args) > 1 else source.with_suffix(".png")
    print(draw(json.loads(source.read_text()), png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
