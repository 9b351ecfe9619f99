#!/usr/bin/env bash
# Sets up a fresh machine (system packages included) and runs every test suite.
# Prints one closing line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh || exit 1

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
results=$(mktemp -d)
dotnet build Compiler.sln -c Release -nologo -clp:ErrorsOnly || { echo "0 passed, 1 failed"; exit 1; }

status=0
for project in $(dotnet sln Compiler.sln list | grep "^tests/.*\.Tests\.csproj$"); do
  name=$(basename "$project" .csproj)
  echo "== $name"
  dotnet test "$project" -c Release --no-build --nologo --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    || status=1
done

# Sum the counters of every suite's TRX report.
python3 - "$results" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in glob.glob(sys.argv[1] + "/*.trx"):
    counters = ET.parse(path).getroot().find(".//{*}Counters")
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0))
    # Inconclusive tests (GPU-only ones on a machine without a GPU) are neither passed nor failed.
    skipped += int(counters.get("total", 0)) - int(counters.get("passed", 0)) - (int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
