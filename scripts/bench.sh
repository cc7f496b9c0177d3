#!/usr/bin/env bash
# The main job. Without RECBENCH_INVENTORY it runs against a local simulated fleet of
# RECBENCH_FLEET_HOSTS hosts (default 2), brought up first; with it, against that inventory.
# Extra arguments go to ansible-playbook (for example `-l kunpeng` or `--tags sweep`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# shellcheck source=/dev/null
source .venv/bin/activate
export CONTAINERS_CONF="$PWD/tests/fleet/containers.conf"

inventory=${RECBENCH_INVENTORY:-}
store=${RECBENCH_ARTIFACTS:-$PWD/artifacts}
if [ -z "$inventory" ]; then
  python -m tests.fleet up "${RECBENCH_FLEET_HOSTS:-2}"
  inventory=.fleet/inventory.yml
  arch=$(uname -m)
  ansible-playbook playbooks/artifacts.yml -e "artifact_store_dir=$store" -e "{\"artifact_store_arches\": [\"$arch\"]}"
  # No TF-Serving build here (Bazel needs the internet): the simulated fleet serves with the stand-in.
  python -m tests.tfserving_standin.package --store "$store" --arch "$arch"
fi
ansible-playbook -i "$inventory" playbooks/bench.yml -e "recbench_artifact_dir=$store" "$@"
if [ -z "${RECBENCH_INVENTORY:-}" ]; then
  python -m tests.fleet status
  echo "simulated fleet still up: 'python -m tests.fleet down' removes it"
fi
