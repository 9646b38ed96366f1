"""From one suite run's results: the target ratios, the markdown tables, the PNG plots."""

from __future__ import annotations

import math
import operator
import re
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


def _get(doc: Doc, *path: str | int) -> Any:
    value: Any = doc
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def _limit(doc: Doc, dtype: str) -> Doc | None:
    for entry in _get(doc, "limit", "dtypes") or []:
        if entry["dtype"] == dtype:
            return dict(entry)
    return None


def limit_rps(doc: Doc, dtype: str = "fp32") -> float | None:
    entry = _limit(doc, dtype)
    return float(entry["best"]["texts_per_s"]) if entry else None


def _sat(doc: Doc, peer: str, key: str = "throughput_rps") -> float | None:
    n = str(doc["plan"]["saturation"])
    value = _get(doc, "peers", peer, "levels", n, key)
    return float(value) if value is not None else None


def _p(doc: Doc, peer: str, level: int, q: str) -> float | None:
    value = _get(doc, "peers", peer, "levels", str(level), "latency_ms", q)
    return float(value) if value is not None else None


def _best_http(doc: Doc, server: str) -> float | None:
    levels = _get(doc, "http_layer", server, "levels") or {}
    values = [v["throughput_rps"] for v in levels.values()]
    return max(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _row(target: str, goal: str, value: float | None, met: bool | None, detail: str) -> Doc:
    return {"target": target, "goal": goal, "value": value, "met": met, "detail": detail}


_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _ratio_row(target: str, a: float | None, b: float | None, goal: str, detail: str) -> Doc:
    """A target measured as ``a / b``. ``goal`` ("<op> <bound>", then any words) is both the text
    shown and the test applied, so the two cannot disagree."""
    r = _ratio(a, b)
    op, bound = goal.split()[:2]
    return _row(target, goal, r, None if r is None else _OPS[op](r, float(bound)), detail)


def ratios(doc: Doc) -> list[Doc]:
    """Each target of the issue as a measured ratio (None where a part did not run)."""
    nan = float("nan")
    n = doc["plan"]["saturation"]
    limit32 = limit_rps(doc)
    svc = _sat(doc, "service-fp32")
    rows = [
        _ratio_row(
            "service / bare limit at saturation (fp32)",
            svc,
            limit32,
            ">= 0.95",
            f"{svc or nan:.2f} req/s at {n} users vs {limit32 or nan:.2f} texts/s bare",
        )
    ]
    batch1 = _get(_limit(doc, "fp32") or {}, "runs", 0)
    p50 = _p(doc, "service-fp32", 1, "p50")
    if batch1 and batch1["batch_size"] == 1 and p50 is not None:
        rows.append(
            _ratio_row(
                "low-load median latency / (one batch's compute + 2 ms)",
                p50,
                batch1["batch_ms_median"] + 2.0,
                "<= 1.0",
                f"p50 {p50:.0f} ms at 1 user vs {batch1['batch_ms_median']:.0f} ms + 2 ms",
            )
        )
    service_replay = {r["scenario"]: r for r in _get(doc, "peers", "service-fp32", "replay") or []}
    winner_replay = {r["scenario"]: r for r in _get(doc, "peers", "winner-fp32", "replay") or []}
    for scenario, ours in service_replay.items():
        theirs = winner_replay.get(scenario)
        if theirs is None:
            continue
        a, b = ours["latency_ms"]["p95"], theirs["latency_ms"]["p95"]
        rows.append(
            _ratio_row(
                f"replay '{scenario}': p95 service / winner-style",
                a,
                b,
                "< 1.0",
                f"{a:.0f} vs {b:.0f} ms; unsent {ours['unsent']} vs {theirs['unsent']}",
            )
        )
    winner = _sat(doc, "winner-fp32")
    bf16 = _sat(doc, "service-bf16")
    rows += [
        _ratio_row(
            "CPU fp32 throughput: service / winner-style",
            svc,
            winner,
            ">= 1.0",
            f"{svc or nan:.2f} vs {winner or nan:.2f} req/s at {n} users",
        ),
        _ratio_row(
            "CPU bf16 service / fp32 winner-style",
            bf16,
            winner,
            ">= 1.8",
            f"{bf16 or nan:.2f} vs {winner or nan:.2f} req/s at {n} users",
        ),
    ]
    ours, uvicorn = _best_http(doc, "ours"), _best_http(doc, "uvicorn")
    rows.append(
        _ratio_row(
            "HTTP layer: this server / uvicorn (best level, our generator)",
            ours,
            uvicorn,
            ">= 2.0",
            f"{ours or nan:.0f} vs {uvicorn or nan:.0f} req/s",
        )
    )
    wrk_ours = _get(doc, "http_layer", "ours", "wrk", "requests_per_s")
    wrk_uvicorn = _get(doc, "http_layer", "uvicorn", "wrk", "requests_per_s")
    if _ratio(wrk_ours, wrk_uvicorn) is not None:
        rows.append(
            _ratio_row(
                "HTTP layer: this server / uvicorn (wrk)",
                wrk_ours,
                wrk_uvicorn,
                ">= 2.0",
                f"{wrk_ours:.0f} vs {wrk_uvicorn:.0f} req/s",
            )
        )
    ceiling = _best_http(doc, "trivial")
    rows.append(
        _ratio_row(
            "generator ceiling (trivial server) / this server's HTTP layer",
            ceiling,
            ours,
            "> 1 (generator not the bottleneck)",
            f"{ceiling or nan:.0f} vs {ours or nan:.0f} req/s",
        )
    )
    wait = recommend_wait(doc)
    if wait is not None:
        rows.append(_row("CLS_MAX_WAIT_MS recommendation", "measured", wait[0], None, wait[1]))
    return rows


def recommend_wait(doc: Doc) -> tuple[float, str] | None:
    """The smallest wait whose high-load p95 is within 5% of the best, unless it costs the low
    load more than 5% at the median."""
    levels = _get(doc, "sweep", "levels")
    if not levels or "high" not in levels or "low" not in levels:
        return None
    high = {float(w): r["latency_ms"]["p95"] for w, r in levels["high"].items()}
    low = {float(w): r["latency_ms"]["p50"] for w, r in levels["low"].items()}
    best = min(high.values())
    base_low = low.get(0.0, min(low.values()))
    for wait in sorted(high):
        if high[wait] <= best * 1.05 and low[wait] <= base_low * 1.05:
            detail = ", ".join(
                f"{w:g} ms: p95 {high[w]:.0f} / p50 {low[w]:.0f}" for w in sorted(high)
            )
            return wait, f"high-load p95 / low-load p50 (ms) per wait: {detail}"
    return 0.0, "no wait improved the high-load p95 without hurting the low load"


# ---- markdown ----------------------------------------------------------------------------------


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown(doc: Doc, name: str) -> str:
    m = doc["machine"]
    share = doc.get("cpu_share", {})
    tokens = _get(doc, "tokens", "per_text") or {}
    n = doc["plan"]["saturation"]
    lines = [
        f"### {name} ({m.get('started_utc', '')}, commit {str(m.get('git_commit', ''))[:10]})",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
        f"torch {m.get('torch')}, flags {' '.join(m.get('cpu_flags', []))}. "
        f"Models: `{doc.get('models_dir')}`; intra-op threads per model process: "
        f"{doc.get('threads')}, OMP_WAIT_POLICY {doc.get('omp_wait_policy')}. Tokens per text: "
        f"mean {_f(tokens.get('mean'))} tokens, p95 {_f(tokens.get('p95'), 0)}. "
        f"Run took {_f(doc.get('wall_s'), 0)} s; other work on the machine kept "
        f"{_f(share.get('others_cores'), 2)} cores busy on average meanwhile.",
    ]
    by_part = doc.get("cpu_share_by_part") or {}
    if by_part:
        shares = ", ".join(f"{k} {v['others_cores']:.2f}" for k, v in by_part.items())
        lines += ["", f"Cores kept busy by other work, per part: {shares}."]
    lines += [
        "",
        "| target | goal | measured | met | detail |",
        "|---|---|---|---|---|",
    ]
    for r in doc.get("ratios", []):
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(
            f"| {r['target']} | {r['goal']} | {_f(r['value'], 2)} | {met} | {r['detail']} |"
        )
    lines += [
        "",
        f"| peer | req/s at {n} users | p50 / p95 ms at {n} | p50 ms at 1 user | errors |",
        "|---|---|---|---|---|",
    ]
    for peer, data in doc.get("peers", {}).items():
        levels = data.get("levels", {})
        sat = levels.get(str(n)) or levels.get(max(levels, key=int)) if levels else None
        one = levels.get("1")
        errors = sum(v["failed"] for v in levels.values())
        lines.append(
            f"| {peer} | {_f(_get(sat or {}, 'throughput_rps'), 2)} | "
            f"{_f(_get(sat or {}, 'latency_ms', 'p50'), 0)} / "
            f"{_f(_get(sat or {}, 'latency_ms', 'p95'), 0)} | "
            f"{_f(_get(one or {}, 'latency_ms', 'p50'), 0)} | {errors} |"
        )
        grpc = data.get("grpc")
        if grpc is not None:
            if "skipped" in grpc:
                lines.append(f"| {peer} over gRPC | skipped: {grpc['skipped']} | | | |")
            else:
                g = grpc["levels"][str(n)]
                lines.append(
                    f"| {peer} over gRPC | {_f(g['throughput_rps'], 2)} | "
                    f"{_f(g['latency_ms']['p50'], 0)} / {_f(g['latency_ms']['p95'], 0)} | | "
                    f"{g['failed']} |"
                )
    limit = doc.get("limit")
    if limit:
        lines += [
            "",
            "| bare limit | batch | texts/s | tokens/s | ms per batch |",
            "|---|---|---|---|---|",
        ]
        for entry in limit["dtypes"]:
            for r in entry["runs"]:
                best = " (best)" if r["batch_size"] == entry["best"]["batch_size"] else ""
                lines.append(
                    f"| {entry['dtype']} | {r['batch_size']}{best} | {_f(r['texts_per_s'], 2)} | "
                    f"{_f(r['tokens_per_s'], 0)} | {_f(r['batch_ms_median'], 0)} |"
                )
        for dtype, parity in limit.get("parity", {}).items():
            lines += [
                "",
                f"Parity {dtype} vs {parity['vs']} ({parity['texts']} texts):",
                "",
                "| model | label agreement | max score difference |",
                "|---|---|---|",
            ]
            for key, p in parity["models"].items():
                lines.append(
                    f"| {key} | {100 * p['label_agreement']:.1f}% | {p['max_score_diff']:.4f} |"
                )
    replays = {p: d["replay"] for p, d in doc.get("peers", {}).items() if "replay" in d}
    if replays:
        lines += [
            "",
            f"Replay at time scale {doc['plan']['replay_scale']}, rates x "
            f"{_f(doc.get('replay_rate_scale'), 4)} (bare limit / 160 req/s):",
            "",
            "| scenario | peer | planned | ok | unsent | failed | p50 ms | p95 ms | max ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for peer, results in replays.items():
            for r in results:
                lat = r["latency_ms"]
                lines.append(
                    f"| {r['scenario']} | {peer} | {r['planned'] or '-'} | {r['ok']} | "
                    f"{r['unsent']} | {r['failed']} | {_f(lat['p50'], 0)} | "
                    f"{_f(lat['p95'], 0)} | {_f(lat['max'], 0)} |"
                )
    http = doc.get("http_layer")
    if http:
        levels = list(next(iter(http.values()))["levels"])
        lines += [
            "",
            "| HTTP layer | " + " | ".join(f"{c} conns req/s" for c in levels) + " | wrk req/s |",
            "|---|" + "---|" * (len(levels) + 1),
        ]
        for server, data in http.items():
            cells = [_f(data["levels"][c]["throughput_rps"], 0) for c in levels]
            wrk = _get(data, "wrk", "requests_per_s")
            lines.append(f"| {server} | " + " | ".join(cells) + f" | {_f(wrk, 0)} |")
    sweep = doc.get("sweep")
    if sweep:
        lines += [
            "",
            "| CLS_MAX_WAIT_MS | low load p50 / p95 ms | high load p50 / p95 ms | high req/s |",
            "|---|---|---|---|",
        ]
        for wait in sweep["levels"]["low"]:
            lo, hi = sweep["levels"]["low"][wait], sweep["levels"]["high"][wait]
            lines.append(
                f"| {float(wait):g} | {_f(lo['latency_ms']['p50'], 0)} / "
                f"{_f(lo['latency_ms']['p95'], 0)} | {_f(hi['latency_ms']['p50'], 0)} / "
                f"{_f(hi['latency_ms']['p95'], 0)} | {_f(hi['throughput_rps'], 2)} |"
            )
    lines += ["", f"Plots: `{name}-throughput.png`, `{name}-latency-cdf.png`.", ""]
    return "\n".join(lines)


def update_readme(readme: Path, plan: str, table: str) -> None:
    """Replace the text between the plan's markers in the README (added at the end if absent)."""
    start, end = f"<!-- results:{plan} -->", f"<!-- /results:{plan} -->"
    text = readme.read_text() if readme.exists() else ""
    block = f"{start}\n{table}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


# ---- plots -------------------------------------------------------------------------------------


def plots(doc: Doc, out: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = list(doc.get("peers", {}))
    colour = {p: f"C{i}" for i, p in enumerate(peers)}  # one colour per peer in every panel

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for server, data in (doc.get("http_layer") or {}).items():
        levels = data["levels"]
        ys = [levels[c]["throughput_rps"] for c in levels]
        axes[0].plot([int(c) for c in levels], ys, "o-", label=server)
    axes[0].set(xscale="log", xlabel="connections", ylabel="req/s")
    axes[0].set_title("HTTP layer (no-op handler)")
    for peer, data in doc.get("peers", {}).items():
        levels = data.get("levels", {})
        ys = [levels[c]["throughput_rps"] for c in levels]
        axes[1].plot([int(c) for c in levels], ys, "o-", label=peer, color=colour[peer])
    for dtype, style in (("fp32", "--"), ("bf16", ":")):
        value = limit_rps(doc, dtype)
        if value:
            axes[1].axhline(value, linestyle=style, color="grey", label=f"bare limit {dtype}")
    axes[1].set(xscale="log", xlabel="concurrent users", ylabel="req/s")
    axes[1].set_title("Five base-size models")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}-throughput.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    n = str(doc["plan"]["saturation"])
    for peer, data in doc.get("peers", {}).items():
        levels = data.get("levels", {})
        top = n if n in levels else (max(levels, key=int) if levels else None)
        for level, ax in (("1", axes[0]), (top, axes[1])):
            cdf = _get(data, "levels", level, "cdf_ms") if level else None
            if cdf:
                label = peer if ax is axes[0] or level == n else f"{peer} ({level} users)"
                ys = [i / (len(cdf) - 1) for i in range(len(cdf))]
                ax.plot(cdf, ys, label=label, color=colour[peer])
    axes[0].set(xlabel="ms", ylabel="fraction answered")
    axes[0].set_title("Latency CDF, 1 user")
    axes[1].set(xlabel="ms")
    axes[1].set_title(f"Latency CDF, {n} users (saturation)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}-latency-cdf.png", dpi=110)
    plt.close(fig)


def main() -> None:
    """``python -m solution.benchmarks.report results/bench-short.json``: recompute the ratios
    and redraw the tables, plots and README block from a run's JSON (nothing is measured)."""
    import json
    import sys

    path = Path(sys.argv[1])
    doc = json.loads(path.read_text())
    doc["ratios"] = ratios(doc)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    name = path.stem
    plots(doc, path.parent, name)
    table = markdown(doc, name)
    path.with_suffix(".md").write_text(table)
    if not name.endswith("-partial"):
        update_readme(Path(__file__).with_name("README.md"), doc["plan"]["name"], table)
    print(table)


if __name__ == "__main__":
    main()
