#!/usr/bin/env bash
# Fine-tuning on prompt/completion pairs, end to end: writes a small task (reverse a word: {"prompt": "abc=",
# "completion": "cba"}), trains TinyGpt on it with the loss on the completions only, then asks the trained model to
# complete a prompt it has not seen. Run after ./scripts/setup.sh. Usage: scripts/finetune-demo.sh [OUTPUT_DIR] [trainer options]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/finetune-demo}
shift || true
mkdir -p "$out"
python3 scripts/reversal-pairs.py "$out/pairs.jsonl"
cat > "$out/ds_config.json" <<'JSON'
{ "train_micro_batch_size_per_gpu": 32, "gradient_accumulation_steps": 1, "steps_per_print": 50, "gradient_clipping": 1.0,
  "optimizer": { "type": "AdamW", "params": { "lr": 2e-3, "betas": [0.9, 0.99], "weight_decay": 0.1 } } }
JSON
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build examples/TinyGpt -c Release -nologo -clp:ErrorsOnly
trainer=examples/TinyGpt/bin/Release/net10.0/TinyGpt.dll
dotnet "$trainer" train --config "$out/ds_config.json" --data "$out/pairs.jsonl" --output "$out/run" --steps 600 --eval-interval 200 "$@"
# Nearly greedy: a prompt as the examples begin (one per row, from its first token); the model should answer "efac".
dotnet "$trainer" sample --resume "$out/run" --prompt "cafe=" --tokens 6 --temperature 0.01
