#!/usr/bin/env bash
# Compression training, end to end, on finetune-demo.sh's word-reversal pairs: trains TinyGpt, then measures what ternary (2-bit) weights
# and three quarters of the MLP weights pruned cost when applied to the trained model as is (post-training: `eval` with the
# compression config), and after a short compression-aware fine-tune from the trained weights (`train --init-from`),
# whose compressed weights `consolidate --compressed` finally exports. Run after ./scripts/setup.sh.
# Usage: scripts/compress-demo.sh [OUTPUT_DIR] [trainer options]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/compress-demo}
shift || true
mkdir -p "$out"
python3 scripts/reversal-pairs.py "$out/pairs.jsonl"
compression='"compression_training": {
    "weight_quantization": {
      "shared_parameters": { "enabled": true, "schedule_offset": 0, "quantize_groups": 8, "quantize_weight_in_forward": true },
      "different_groups": { "wq": { "params": { "start_bits": 2, "target_bits": 2 }, "modules": ["attention", "expand", "contract"] } } },
    "sparse_pruning": {
      "shared_parameters": { "enabled": true, "schedule_offset": 0, "method": "l1" },
      "different_groups": { "sp": { "params": { "dense_ratio": 0.25 }, "modules": ["expand", "contract"] } } } }'
cat > "$out/compress.json" <<JSON
{ "train_micro_batch_size_per_gpu": 32, "gradient_accumulation_steps": 1, "steps_per_print": 50, "gradient_clipping": 1.0,
  "optimizer": { "type": "AdamW", "params": { "lr": 5e-4, "betas": [0.9, 0.99], "weight_decay": 0.1 } },
  $compression }
JSON
cat > "$out/train.json" <<'JSON'
{ "train_micro_batch_size_per_gpu": 32, "gradient_accumulation_steps": 1, "steps_per_print": 50, "gradient_clipping": 1.0,
  "optimizer": { "type": "AdamW", "params": { "lr": 2e-3, "betas": [0.9, 0.99], "weight_decay": 0.1 } } }
JSON
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
dotnet build examples/TinyGpt -c Release -nologo -clp:ErrorsOnly
trainer=examples/TinyGpt/bin/Release/net10.0/TinyGpt.dll
dotnet "$trainer" train --config "$out/train.json" --data "$out/pairs.jsonl" --output "$out/trained" --steps 600 --eval-interval 0 "$@"
echo "== trained, full precision:";               dotnet "$trainer" eval --resume "$out/trained" --config "$out/train.json" --data "$out/pairs.jsonl" --eval-batches 40 | tail -1
echo "== trained, compressed as is (ternary weights, 3/4 of the MLP pruned):"
dotnet "$trainer" eval --resume "$out/trained" --config "$out/compress.json" --data "$out/pairs.jsonl" --eval-batches 40 | tail -1
dotnet "$trainer" train --config "$out/compress.json" --init-from "$out/trained" --data "$out/pairs.jsonl" --output "$out/compressed" --steps 200 --eval-interval 0 "$@"
echo "== after 200 compression-aware steps from the trained weights:"
dotnet "$trainer" eval --resume "$out/compressed" --config "$out/compress.json" --data "$out/pairs.jsonl" --eval-batches 40 | tail -1
dotnet "$trainer" consolidate --resume "$out/compressed" --output "$out/compressed.safetensors" --compressed "$out/compress.json" | tail -1
# Nearly greedy, from the compressed weights as the forward uses them: the model should answer "efac".
dotnet "$trainer" sample --resume "$out/compressed" --compressed "$out/compress.json" --prompt "cafe=" --tokens 6 --temperature 0.01 2>/dev/null
