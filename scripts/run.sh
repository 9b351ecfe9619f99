#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job: build the TinyGpt example and train it on its built-in data
# (on the CPU when there is no GPU). Extra arguments go to the trainer, e.g. --data ../shared/data/tinyshakespeare.txt
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build examples/TinyGpt -c Release -nologo -clp:ErrorsOnly
exec dotnet examples/TinyGpt/bin/Release/net10.0/TinyGpt.dll "$@"
