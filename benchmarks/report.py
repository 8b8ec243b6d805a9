"""The result object (the issue's JSON contract), ratios against our fused int8 model, and the Markdown table.

Shape::

    {"machine": {"cpu", "threads", "peak_gflops", ...},
     "rows": [{"format", "precision", "threads", "size_bytes", "load_ms",
               "latency_ms": {"median", "p95", "p99", ...}, "rss_mb", "parity": {...}, "accuracy": {...}, ...}],
     "pipeline": {...},
     "peers": [{"name", "params", "flops", "precision", "latency_ms": {"median", ...}, "ratio_vs_ours", ...}],
     "targets": [...], "skipped": [...], "notes": [...], "quick": bool, ...}

``ratio_vs_ours`` = our fused int8 ONNX median / the peer's median at the same
thread count: below 1 we are faster. Both medians come from the same process,
the two models timed in alternation (``ratio_method: "paired"``), so a change
of machine load during the run does not bias the ratio; without that
measurement, our row's median is used (``"rows"``). The targets: ours <= 1.0 x
MobileFaceNet int8 at 112 px, and <= 0.5 x the two-model pipeline (int8).
"""

from __future__ import annotations

from typing import Any, Sequence

from .int8_forms import markdown_lines as int8_markdown, row_form

OURS = ("onnx", "int8")
RATIO_DEFINITION = ("our fused int8 ONNX median latency / the peer's median latency, same thread count, timed in "
                    "alternation in one process")
TARGETS = (
    ("mobilefacenet", "int8", 1.0, "our fused int8 <= 1.0 x MobileFaceNet int8 latency at 112 px"),
    ("two_model_pipeline", "int8", 0.5, "our fused int8 <= 0.5 x the two-model pipeline (int8) latency"),
)


def our_medians(rows: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Thread count -> median ms of our fused int8 ONNX file."""
    out: dict[int, float] = {}
    for r in rows:  # the first int8 ONNX row per thread count: the file the runtime runs (listed first)
        if (r["format"], r["precision"]) == OURS:
            out.setdefault(r["threads"], r["latency_ms"]["median"])
    return out


def add_ratios(peers: list[dict[str, Any]], ours: dict[int, float]) -> None:
    """Set ``ratio_vs_ours`` and ``ratio_method`` on each peer row (None where our int8 file was not timed)."""
    for p in peers:
        paired = (p.get("reference_latency_ms") or {}).get("median")
        mine = paired or ours.get(p["threads"])
        p["ratio_vs_ours"] = round(mine / p["latency_ms"]["median"], 4) if mine else None
        p["ratio_method"] = "paired" if paired else ("rows" if mine else None)


def targets(peers: Sequence[dict[str, Any]], threads: Sequence[int]) -> list[dict[str, Any]]:
    """Each target at each thread count: the measured ratio and whether it holds (None: not measured)."""
    out = []
    for name, precision, limit, text in TARGETS:
        for t in threads:
            row = next((p for p in peers if (p["name"], p["precision"], p["threads"]) == (name, precision, t)), None)
            ratio = row["ratio_vs_ours"] if row else None
            entry = {"target": text, "peer": name, "precision": precision, "threads": t, "limit": limit,
                     "ratio": ratio, "holds": None if ratio is None else ratio <= limit}
            if ratio is None:
                entry["reason"] = ("our int8 ONNX file was not timed" if row else
                                   f"{name} {precision} was not measured (int8 peers need --data for calibration)")
            out.append(entry)
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _size(b: int | None) -> str:
    return "-" if b is None else f"{b / 1e6:.2f} MB"


def _count(n: int | None, unit: str, scale: float) -> str:
    return "-" if n is None else f"{n / scale:.2f} {unit}"


def _row_line(r: dict[str, Any]) -> str:
    lat, par, acc = r["latency_ms"], r.get("parity") or {}, r.get("accuracy") or {}
    ach = r.get("achieved") or {}
    cos = f"{par['cosine_mean']:.4f} / {par['cosine_min']:.4f}" if "cosine_mean" in par else "-"
    agree = _pct(par.get("expression_top1_agreement"))
    gate = {True: "pass", False: "FAIL"}.get(par.get("passed"), "-")
    delta = acc.get("delta_vs_torch") or {}

    def task(name: str, key: str, fmt) -> str:
        value = (acc.get(name) or {}).get(key)
        if value is None:
            return "-"
        return fmt(value) + (f" ({100 * delta[name]:+.1f})" if name in delta else "")

    lfw = task("lfw", "accuracy", _pct)
    fer = task("fer2013", "accuracy", _pct)
    acc_g = task("authentication_jaffe", "acc_g", lambda v: f"{v:.3f}")
    return (f"| {r['format']} | {row_form(r)} | {r['threads']} | {_size(r.get('size_bytes'))} | {_ms(r['load_ms'])} "
            f"| {_ms(lat['median'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | {r.get('rss_mb') or '-'} "
            f"| {_achieved(ach)} | {cos} | {agree} | {gate} | {lfw} | {fer} | {acc_g} |")


def _achieved(ach: dict[str, Any]) -> str:
    """``114.8 (57.3%)``; ``256.7 (int8 ops)`` for a row whose arithmetic the fp32 peak does not bound."""
    if not ach:
        return "-"
    if ach.get("arithmetic") == "int8":
        return f"{ach['gflops']:.1f} (int8 ops)"
    return f"{ach['gflops']:.1f} ({_pct(ach.get('fraction_of_peak'))})"


def _peak_line(m: dict[str, Any]) -> str:
    """``measured fp32 GEMM peak 210.3 GFLOP/s at 1 thread(s) (litert; numpy 109.8, onnxruntime 205.1)``."""
    by_engine = m.get("peak_gflops_by_engine") or {}
    parts = []
    for t, v in (m.get("peak_gflops_by_threads") or {}).items():
        best = (m.get("peak_engine_by_threads") or {}).get(t)
        others = ", ".join(f"{e} {p[t]:.1f}" for e, p in by_engine.items() if e != best and t in p)
        parts.append(f"{v:.1f} GFLOP/s at {t} thread(s)" + (f" ({best}{'; ' + others if others else ''})"
                                                             if best else ""))
    return "measured fp32 GEMM peak " + ", ".join(parts)


def _peer_line(p: dict[str, Any]) -> str:
    lat = p["latency_ms"]
    ratio = "-" if p.get("ratio_vs_ours") is None else f"{p['ratio_vs_ours']:.3f}x"
    lfw = _pct(((p.get("accuracy") or {}).get("lfw") or {}).get("accuracy"))
    return (f"| {p['name']} | {p['precision']} | {p['threads']} | {p.get('input_size', '-')} "
            f"| {_count(p.get('params'), 'M', 1e6)} | {_count(p.get('flops'), 'G', 1e9)} | {_ms(lat['median'])} "
            f"| {_ms(lat['p95'])} | {ratio} | {lfw} |")


def _aligned_with(real: dict[str, Any]) -> str:
    """``; OpenCV 5.0.0 on x86_64 here, ... at export``: what the crops' last bits depend on."""
    def where(p: dict[str, Any] | None) -> str:
        return f"OpenCV {p['opencv']} on {p['machine']}" if p else "not recorded"

    here = real.get("aligned_here_with")
    return f"; aligned with {where(here)} here, {where(real.get('export_aligned_with'))} at export" if here else ""


def choice_markdown(choice: dict[str, Any] | None) -> list[str]:
    """The file the runtime runs on this device and why (edge_runtime/file_ranking.py)."""
    if not choice:
        return []
    if "error" in choice:
        return ["", f"Runtime choice on this device: none ({choice['error']})."]
    lines = ["", f"Runtime choice on this device ({choice['cpu']['family']}, {choice['threads']} thread(s)"
                 f"{', cached ranking' if choice.get('cached') else ''}): **{choice['chosen']}**: {choice['why']}.", "",
             "| file | self-check here | ms (ranking) |", "|---|---|---|"]
    for t in choice["files"]:
        ms = "-" if t.get("median_ms") is None else f"{t['median_ms']:.2f}"
        lines.append(f"| {t['path']} | {'pass' if t['passed'] else t['reason']} | {ms} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The whole result as Markdown tables (rows, peers, targets, notes)."""
    m = result["machine"]
    model = result.get("model") or {}
    edge = result.get("mode") == "edge"
    lines = [
        f"# facelive-bench{' device (edge runtime only, no torch)' if edge else ''}"
        f"{' (QUICK: fewer runs, subsets)' if result.get('quick') else ''}",
        "",
        f"Machine: {m['cpu']}, {m.get('logical_cpus', '?')} logical CPUs; {_peak_line(m)}.",
        f"Model: {_count(model.get('params'), 'M parameters', 1e6)}, {_count(model.get('flops'), 'MFLOPs', 1e6)} "
        f"per forward pass; timing: {result['config']['runs']} runs after {result['config']['warmup']} warm-up, "
        "batch 1.",
        "",
        "| format | precision | threads | size | load ms | median ms | p95 ms | p99 ms | RSS MB | GFLOP/s (of peak) "
        "| cosine mean / min | top-1 agree | gate | LFW acc | FER2013 acc | JAFFE Acc_g |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[_row_line(r) for r in result["rows"]],
    ]
    if (m.get("gemm") or {}).get("note"):
        lines += ["", f"GFLOP/s: the model's FLOPs / median latency. {m['gemm']['note']}"]
    lines += int8_markdown(result.get("int8_forms"))
    if any((r.get("accuracy") or {}).get("delta_vs_torch") for r in result["rows"]):
        lines += ["", "In brackets: the file's number minus the torch model's on the same faces, in points "
                      "(Acc_g x 100)."]
    if edge:
        real = result.get("real_faces") if (result.get("real_faces") or {}).get("faces_used") else None
        against = (f"{real['faces_used']} of the export's held-out real faces re-aligned here "
                   f"({real['crops_identical']} crops byte-identical to the export's{_aligned_with(real)})" if real
                   else f"{result['reference']['count']} synthetic self-check inputs")
        lines += ["", f"Parity above: this device vs the torch outputs saved at export, on {against}. "
                      "At export, on real held-out faces:", "",
                  "| format | precision | faces | cosine mean / min | top-1 agree | gate |", "|---|---|---|---|---|---|"]
        seen = set()
        for r in result["rows"]:
            e = r.get("export_parity") or {}
            if r["path"] in seen or "cosine_mean" not in e:
                continue
            seen.add(r["path"])
            gate = {True: "pass", False: "FAIL"}.get(e.get("passed"), "-")
            lines.append(f"| {r['format']} | {row_form(r)} | {e.get('faces', '-')} | {e['cosine_mean']:.4f} / "
                         f"{e['cosine_min']:.4f} | {_pct(e.get('expression_top1_agreement'))} | {gate} |")
    lines += choice_markdown(result.get("runtime_choice"))
    if result.get("peers"):
        lines += ["", f"Peers (ratio = {RATIO_DEFINITION}):", "",
                  "| peer | precision | threads | input px | params | FLOPs | median ms | p95 ms | ratio vs ours "
                  "| LFW acc |",
                  "|---|---|---|---|---|---|---|---|---|---|", *[_peer_line(p) for p in result["peers"]]]
    if result.get("targets"):
        lines += ["", "| target | threads | ratio | holds |", "|---|---|---|---|"]
        for t in result["targets"]:
            holds = {True: "yes", False: "NO"}.get(t["holds"], f"not measured ({t.get('reason', '')})")
            ratio = "-" if t["ratio"] is None else f"{t['ratio']:.3f}x"
            lines.append(f"| {t['target']} | {t['threads']} | {ratio} | {holds} |")
    pipe = result.get("pipeline") or {}
    if pipe.get("measured"):
        f = pipe["frame_latency_ms"]
        lines += ["", f"Per-frame pipeline at {pipe['frame_size']}, {pipe['threads']} thread(s), "
                      f"{pipe.get('model_file', 'the default file')} (median ms per stage):", "",
                  "| " + " | ".join(pipe["stages_ms"]) + " | whole frame (p95) | frames/s |",
                  "|" + "---|" * (len(pipe["stages_ms"]) + 2),
                  "| " + " | ".join(f"{v:.2f}" for v in pipe["stages_ms"].values())
                  + f" | {f['median']:.2f} ({f['p95']:.2f}) | {pipe['fps']} |"]
    else:
        lines += ["", f"Per-frame pipeline: {pipe.get('reason', '-')}"]
    for s in result.get("skipped", []):
        what = " ".join([s["format"], *([row_form(s)] if "precision" in s else [])])
        lines.append(f"- skipped {what}: {s['reason']}")
    for n in result.get("notes", []):
        lines.append(f"- {n}")
    return "\n".join(lines)
