#!/usr/bin/env python3
"""One table from the GPU benchmark's JSON files (scripts/gpu-suite.sh writes them; see docs/benchmarks.md).

Each argument is a JSON file from `Gpt2Small.dll bench --json` (one object) or bench/pytorch/gpt2_bench.py --json (a
list); a missing or unreadable file becomes a "failed" row naming it, so a step that crashed still shows. Prints the
markdown report, and with --ratio-only just the ratio lines (Shardwise tokens/s over torch.compile's, per precision)
for the suite's summary.
"""

import json
import os
import sys


def load(paths):
    rows, problems = [], []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as error:
            name = os.path.basename(path)
            problems.append(f"{name}: no result ({type(error).__name__}: {error})")
            framework, _, rest = os.path.splitext(name)[0].partition("-")
            rows.append(dict(framework=framework, mode="?", precision=rest or "?", error=f"no {name} (the step failed: see bench.log)"))
            continue
        rows.extend(data if isinstance(data, list) else [data])
    return rows, problems


def label(r):
    if r.get("framework") == "shardwise":
        return "Shardwise"
    mode = r.get("mode") if r.get("mode") != "?" else "eager + compile"
    return " ".join(part for part in ("PyTorch", r.get("torch"), mode) if part)


def measured(r):
    return "tokens_per_s" in r and "error" not in r and "skipped" not in r


def gib(value):
    return f"{value / 2**30:.2f} GiB" if isinstance(value, (int, float)) and value > 0 else "-"


def table(rows):
    lines = ["| run | precision | device | params | micro-batch × GAS × T | ms/step | tokens/s | MFU | peak allocated | device in use | last loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not measured(r):
            why = r.get("skipped") or r.get("error") or "no measurement"
            lines.append(f"| {label(r)} | {r.get('precision', '?')} | | | | | | | | | {why} |")
            continue
        mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") is not None else "n/a (unknown peak; pass --peak-tflops)"
        shape = f"{r.get('micro_batch')} × {r.get('gradient_accumulation')} × {r.get('context')}"
        loss = f"{r['last_loss']:.3f}" if isinstance(r.get("last_loss"), (int, float)) else "-"
        lines.append(f"| {label(r)} | {r['precision']} | {r.get('device', '?')} | {r.get('parameters', 0):,} | {shape} | "
                     f"{r['ms_per_step']:.1f} | {r['tokens_per_s']:,.0f} | {mfu} | {gib(r.get('allocated_bytes'))} | "
                     f"{gib(r.get('device_used_bytes'))} | {loss} |")
    return lines


def ratios(rows):
    lines = []
    for precision in ("fp16", "bf16"):
        ours = [r for r in rows if r.get("framework") == "shardwise" and r.get("precision") == precision and measured(r)]
        for mode in ("compile", "eager"):
            theirs = [r for r in rows if r.get("framework") == "pytorch" and r.get("mode") == mode
                      and r.get("precision") == precision and measured(r)]
            if ours and theirs:
                ratio = ours[0]["tokens_per_s"] / theirs[0]["tokens_per_s"]
                lines.append(f"{precision}: Shardwise / torch {mode} tokens/s = {ours[0]['tokens_per_s']:,.0f} / "
                             f"{theirs[0]['tokens_per_s']:,.0f} = {ratio:.3f}")
            else:
                missing = "Shardwise" if not ours else f"torch {mode}"
                lines.append(f"{precision}: Shardwise / torch {mode} tokens/s = n/a ({missing} has no measurement)")
    return lines


def parameter_check(rows):
    counts = {(label(r), r.get("precision")): r.get("parameters") for r in rows if measured(r)}
    distinct = sorted({c for c in counts.values() if c is not None})
    if len(distinct) == 1:
        return f"parameters: every run trains N = {distinct[0]:,}"
    if not distinct:
        return "parameters: no run measured"
    return "parameters DIFFER between runs: " + ", ".join(f"{k[0]} {k[1]} {v:,}" for k, v in counts.items() if v is not None)


def main(argv):
    ratio_only = "--ratio-only" in argv
    paths = [a for a in argv if a != "--ratio-only"]
    rows, problems = load(paths)
    if ratio_only:
        print("\n".join(ratios(rows)))
        return 0
    first = next((r for r in rows if measured(r)), {})
    out = ["# GPU benchmark: GPT-2 124M (examples/Gpt2Small vs bench/pytorch/gpt2_bench.py)", ""]
    out += table(rows)
    out += ["", "Ratios (side by side, same call, same card):", ""]
    out += [f"- {line}" for line in ratios(rows)]
    out += ["", f"- {parameter_check(rows)}"]
    if first:
        out.append(f"- MFU = tokens/s × (6N + 12·L·d·T) / peak with L = {first.get('layers')}, d = {first.get('width')}, "
                   f"T = {first.get('context')}: {first.get('flops_per_token', 0):,.0f} FLOPs per token; peak "
                   + (f"{first['peak_tflops']} TFLOP/s ({first.get('peak_source')})" if first.get("peak_tflops") else "unknown"))
    out.append("- peak allocated: Shardwise = bytes it allocated with cuMemAlloc (arenas, workspace, scratch); "
               "PyTorch = torch.cuda.max_memory_allocated. device in use = cuMemGetInfo total − free (context included) "
               "at the peak (Shardwise) or after the run (PyTorch, its caching allocator keeps what it reserved).")
    for problem in problems:
        out.append(f"- {problem}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
