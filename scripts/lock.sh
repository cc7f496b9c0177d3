#!/usr/bin/env bash
# Re-resolves requirements.txt to the newest versions that fit this Python and writes
# constraints.txt. Review the diff before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q --dry-run --ignore-installed --report "$tmp/report.json" \
  -r requirements.txt tensorflow-serving-api
{
  echo "# Pinned controller environment (pip constraints). Regenerate with scripts/lock.sh."
  "$tmp/venv/bin/python" - "$tmp/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    # tensorflow-serving-api pulls in `tensorflow`, a second copy beside tensorflow-cpu (see bootstrap.sh).
    if name.lower() != "tensorflow":
        print(f"{name}=={version}")
PY
  # Installed without dependencies by bootstrap.sh: keep their pins as they are.
  grep -E '^(tritonclient|nvidia-cuda-runtime-cu12|apache-otava)==' constraints.txt
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt rewritten: git diff constraints.txt"
