#!/usr/bin/env python3
"""PyTorch reference for Shardwise's GPU benchmark: the same GPT-2 124M, batch, optimizer and MFU formula.

The model is examples/Gpt2Small: 12 pre-norm blocks, width 768, 12 heads, context 1024, vocabulary 50304, learned
positions, a 4x MLP with tanh-approximated GeLU (what Shardwise's CPU reference and kernels compute), biases
everywhere, LayerNorm eps 1e-5, head tied to the token embedding, no dropout, N(0, 0.02) weights. The batch and
optimizer come from the same DeepSpeed config the Shardwise side reads (micro-batch, gradient accumulation, AdamW
lr/betas/eps/weight decay on every parameter, gradient clipping). fp16 is autocast + GradScaler, bf16 is autocast;
both keep fp32 parameters (PyTorch's usual mixed precision; Shardwise keeps 16-bit working copies and fp32 masters,
as DeepSpeed does). Attention uses F.scaled_dot_product_attention (flash) when this PyTorch has it: a fair reference
is PyTorch as people run it.

MFU = tokens/s * (6N + 12*L*d*T) / peak, N = parameters as model.parameters() counts them (the tied head once),
peak from bench/gpu-peaks.json by device name (the table the trainer's bench verb embeds), or --peak-tflops.

Examples:
  python3 bench/pytorch/gpt2_bench.py --config bench/configs/gpt2-bf16.json --mode compile --json /tmp/t.json
  python3 bench/pytorch/gpt2_bench.py --device cpu --tiny          # a check of the script itself, small shapes
  python3 bench/pytorch/gpt2_bench.py --self-test                  # the formula and peak table, hand-computed
"""

import argparse
import inspect
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
PEAKS_FILE = os.path.join(HERE, "..", "gpu-peaks.json")

GPT2 = dict(layers=12, width=768, heads=12, context=1024, vocabulary=50304)
TINY = dict(layers=2, width=64, heads=4, context=64, vocabulary=512)


# ---- the formula and the peak table (the same as runtime/Shardwise.Training/Cli/TrainingFlops.cs, GpuPeaks.cs) ----

def flops_per_token(parameters, layers, width, context):
    """PaLM's training FLOPs per token: 6N + 12*L*d*T."""
    return 6.0 * parameters + 12.0 * layers * width * context


def utilization(tokens_per_s, flops, peak_tflops):
    return tokens_per_s * flops / (peak_tflops * 1e12)


def load_peaks(path=PEAKS_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["peaks"]


def find_peak(device_name, peaks):
    """First rule whose 'contains' words all occur in the name and whose 'excludes' words do not (case-insensitive)."""
    name = device_name.lower()
    for rule in peaks:
        if all(w.lower() in name for w in rule["contains"]) and not any(w.lower() in name for w in rule.get("excludes", [])):
            return rule["card"], float(rule["tflops"])
    return None


def self_test():
    n = 124_475_904  # GPT-2 124M with the padded vocabulary (see tests/Shardwise.Training.Tests/BenchFlopsTests.cs)
    f = flops_per_token(n, 12, 768, 1024)
    assert f == 860_101_632.0, f
    assert abs(utilization(500_000, f, 989.4) - 0.434658192844) < 1e-11
    assert abs(utilization(123_456, f, 756) - 0.140455961746) < 1e-11
    peaks = load_peaks()
    assert find_peak("NVIDIA H100 80GB HBM3", peaks) == ("H100 SXM", 989.4)
    assert find_peak("NVIDIA H100 PCIe", peaks) == ("H100 PCIe", 756.0)
    assert find_peak("NVIDIA H200", peaks) == ("H200 SXM", 989.4)
    assert find_peak("NVIDIA A100-SXM4-80GB", peaks) == ("A100", 312.0)
    assert find_peak("NVIDIA H100 NVL", peaks) is None
    assert find_peak("NVIDIA H200 NVL", peaks) is None
    shapes = dict(GPT2)
    model_parameters = expected_parameters(**shapes)
    assert model_parameters == n, model_parameters
    print("self-test passed: 6N + 12LdT = 860,101,632 FLOPs/token for N = 124,475,904; MFU and peak lookup as in C#")


def expected_parameters(layers, width, heads, context, vocabulary):
    d = width
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return vocabulary * d + context * d + layers * block + 2 * d


# ---- the DeepSpeed config ----

def read_config(path):
    """Micro-batch, accumulation, precision and AdamW settings from a DeepSpeed JSON config (errors name the key)."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)

    def need(value, key, kind):
        if not isinstance(value, kind) or isinstance(value, bool):
            sys.exit(f"error: {path}: {key} must be a number; got {value!r}")
        return value

    params = config.get("optimizer", {}).get("params", {})
    if config.get("optimizer", {}).get("type", "AdamW").lower() not in ("adamw", "adam"):
        sys.exit(f"error: {path}: $.optimizer.type must be AdamW")
    betas = params.get("betas", [0.9, 0.999])
    precision = "fp16" if config.get("fp16", {}).get("enabled") else "bf16" if config.get("bf16", {}).get("enabled") else "fp32"
    return dict(
        micro_batch=need(config.get("train_micro_batch_size_per_gpu"), "$.train_micro_batch_size_per_gpu", int),
        accumulation=need(config.get("gradient_accumulation_steps", 1), "$.gradient_accumulation_steps", int),
        lr=need(params.get("lr", 1e-3), "$.optimizer.params.lr", (int, float)),
        betas=(need(betas[0], "$.optimizer.params.betas[0]", (int, float)), need(betas[1], "$.optimizer.params.betas[1]", (int, float))),
        eps=need(params.get("eps", 1e-8), "$.optimizer.params.eps", (int, float)),
        weight_decay=need(params.get("weight_decay", 0.01), "$.optimizer.params.weight_decay", (int, float)),
        clip=need(config.get("gradient_clipping", 0.0), "$.gradient_clipping", (int, float)),
        precision=precision,
        initial_scale_power=config.get("fp16", {}).get("initial_scale_power", 16),
    )


# ---- the model ----

def build_model(torch, shapes):
    nn = torch.nn
    F = torch.nn.functional
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    try:  # F.gelu is a builtin without an inspectable signature; approximate="tanh" arrived in torch 1.12
        F.gelu(torch.zeros(1), approximate="tanh")
        gelu_tanh = True
    except TypeError:
        gelu_tanh = False

    class Attention(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(d, 3 * d)
            self.projection = nn.Linear(d, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            if has_sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
                y = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
            return self.projection(y.transpose(1, 2).contiguous().view(b, t, d))

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.attention_norm = nn.LayerNorm(d, eps=1e-5)
            self.attention = Attention(d, heads)
            self.mlp_norm = nn.LayerNorm(d, eps=1e-5)
            self.expand = nn.Linear(d, 4 * d)
            self.contract = nn.Linear(4 * d, d)

        def forward(self, x):
            x = x + self.attention(self.attention_norm(x))
            h = self.expand(self.mlp_norm(x))
            h = F.gelu(h, approximate="tanh") if gelu_tanh else 0.5 * h * (1 + torch.tanh(0.7978845608028654 * (h + 0.044715 * h ** 3)))
            return x + self.contract(h)

    class Gpt(nn.Module):
        def __init__(self, s):
            super().__init__()
            self.tokens = nn.Embedding(s["vocabulary"], s["width"])
            self.positions = nn.Embedding(s["context"], s["width"])
            self.blocks = nn.ModuleList(Block(s["width"], s["heads"]) for _ in range(s["layers"]))
            self.final_norm = nn.LayerNorm(s["width"], eps=1e-5)
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif "norm" in name:
                    nn.init.ones_(p)
                else:
                    nn.init.normal_(p, mean=0.0, std=0.02)

        def forward(self, ids, targets):
            positions = torch.arange(ids.shape[1], device=ids.device)
            x = self.tokens(ids) + self.positions(positions)
            for block in self.blocks:
                x = block(x)
            logits = F.linear(self.final_norm(x), self.tokens.weight)  # the head tied to the embedding
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))  # autocast runs it in fp32

    return Gpt(shapes), has_sdpa


# ---- one measured run ----

def run_one(torch, args, shapes, settings, mode, peaks):
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    precision = settings["precision"]
    result = dict(framework="pytorch", mode=mode, model="Gpt2Small" if not args.tiny else "tiny", precision=precision,
                  torch=torch.__version__, micro_batch=settings["micro_batch"], gradient_accumulation=settings["accumulation"],
                  layers=shapes["layers"], width=shapes["width"], context=shapes["context"], ranks=1, zero_stage=0,
                  device=torch.cuda.get_device_name(device) if cuda else "cpu")
    if mode == "compile" and not hasattr(torch, "compile"):
        print(f"torch.compile unavailable (torch {torch.__version__}): skipping the compile run")
        result["skipped"] = f"torch.compile unavailable in torch {torch.__version__}"
        return result

    torch.manual_seed(1337)
    model, has_sdpa = build_model(torch, shapes)
    model.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"[{mode} {precision}] parameters: {parameters:,} (model.parameters(), tied head counted once); "
          f"attention: {'scaled_dot_product_attention' if has_sdpa else 'explicit softmax (no SDPA in this torch)'}", flush=True)
    expected = expected_parameters(**shapes)
    if parameters != expected:
        print(f"warning: the model has {parameters:,} parameters where the shapes give {expected:,}", flush=True)
    result.update(parameters=parameters, attention="sdpa" if has_sdpa else "explicit")

    fused_ok = cuda and "fused" in inspect.signature(torch.optim.AdamW).parameters
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                  weight_decay=settings["weight_decay"], **({"fused": True} if fused_ok else {}))
    result["fused_adamw"] = bool(fused_ok)
    step_model = torch.compile(model) if mode == "compile" else model

    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if autocast_dtype is not None and not cuda and precision == "fp16":
        sys.exit("error: fp16 autocast needs --device cuda; use bf16 or fp32 on the CPU")
    scaler = None
    if precision == "fp16":
        # DeepSpeed's dynamic loss scale starts at 2^initial_scale_power; GradScaler's init_scale is the same idea.
        init_scale = 2.0 ** settings["initial_scale_power"]
        if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
            scaler = torch.amp.GradScaler("cuda", init_scale=init_scale)
        else:
            scaler = torch.cuda.amp.GradScaler(init_scale=init_scale)

    generator = torch.Generator().manual_seed(1337)
    tokens = settings["micro_batch"] * shapes["context"]
    ids = torch.randint(0, shapes["vocabulary"], (settings["micro_batch"], shapes["context"]), generator=generator).to(device)
    targets = torch.randint(0, shapes["vocabulary"], (settings["micro_batch"], shapes["context"]), generator=generator).to(device)

    def autocast():
        if autocast_dtype is None:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=autocast_dtype)

    last_loss = [float("nan")]

    def step():
        for _ in range(settings["accumulation"]):
            with autocast():
                loss = step_model(ids, targets) / settings["accumulation"]
            (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        if settings["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["clip"])
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        last_loss[0] = loss

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    result["warmup_seconds"] = time.perf_counter() - started  # compilation included in compile mode
    clock = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - clock

    ms = seconds * 1000 / args.steps
    tokens_per_s = tokens * settings["accumulation"] / (seconds / args.steps)
    flops = flops_per_token(parameters, shapes["layers"], shapes["width"], shapes["context"])
    peak = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else None
    if peak is None and cuda:
        found = find_peak(result["device"], peaks)
        peak = (found[1], f"{found[0]}, bench/gpu-peaks.json") if found else None
    result.update(warmup_steps=args.warmup, timed_steps=args.steps, ms_per_step=ms, tokens_per_s=tokens_per_s,
                  flops_per_token=flops, peak_tflops=peak[0] if peak else None, peak_source=peak[1] if peak else None,
                  mfu=utilization(tokens_per_s, flops, peak[0]) if peak else None,
                  last_loss=float(last_loss[0].item()) * settings["accumulation"])
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
        result.update(allocated_bytes=torch.cuda.max_memory_allocated(device),
                      reserved_bytes=torch.cuda.max_memory_reserved(device),
                      device_used_bytes=total - free, device_total_bytes=total)
    return result


def markdown(results):
    lines = ["| framework | mode | precision | params | ms/step | tokens/s | MFU | peak allocated | device in use |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['framework']} | {r['mode']} | {r['precision']} | | | | | | {r.get('skipped') or r.get('error')} |")
            continue
        mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") is not None else "n/a (unknown peak; pass --peak-tflops)"
        gib = lambda key: f"{r[key] / 2**30:.2f} GiB" if r.get(key) is not None else "-"
        lines.append(f"| {r['framework']} | {r['mode']} | {r['precision']} | {r['parameters']:,} | {r['ms_per_step']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {mfu} | {gib('allocated_bytes')} | {gib('device_used_bytes')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="DeepSpeed JSON config (batch, AdamW, clipping, fp16/bf16); default bench/configs/gpt2-bf16.json")
    parser.add_argument("--precision", choices=["fp16", "bf16", "fp32"], help="overrides the config's fp16/bf16 choice")
    parser.add_argument("--mode", choices=["eager", "compile", "both"], default="both")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small shapes (2 layers, width 64, context 64, vocabulary 512), micro-batch 2")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense fp16/bf16 peak, instead of bench/gpu-peaks.json")
    parser.add_argument("--json", help="write the results (a list) here")
    parser.add_argument("--self-test", action="store_true", help="check the formula and the peak table, then exit")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0

    import torch  # after argument parsing, so --help and --self-test work without PyTorch

    settings = read_config(args.config or os.path.join(HERE, "..", "configs", "gpt2-bf16.json"))
    if args.precision:
        settings["precision"] = args.precision
    shapes = dict(TINY if args.tiny else GPT2)
    if args.tiny:
        settings["micro_batch"], settings["accumulation"] = 2, 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: torch.cuda.is_available() is False (torch {torch.__version__})", file=sys.stderr)
        return 2
    if not args.tiny and shapes == GPT2:
        expected = expected_parameters(**shapes)
        print(f"GPT-2 124M: {shapes}; expected parameters {expected:,}")
    peaks = load_peaks()

    results = []
    for mode in (["eager", "compile"] if args.mode == "both" else [args.mode]):
        try:
            results.append(run_one(torch, args, shapes, settings, mode, peaks))
        except Exception as error:  # record it and go on: the other mode may still run
            traceback.print_exc()
            results.append(dict(framework="pytorch", mode=mode, precision=settings["precision"],
                                error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if args.json:  # after every mode, so a time limit that stops the next one keeps this one's result
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
    print(markdown(results))
    if args.json:
        print(f"wrote {args.json}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
