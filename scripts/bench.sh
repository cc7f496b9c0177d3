#!/usr/bin/env bash
# The main job. Without RECBENCH_INVENTORY it runs against a local simulated fleet of
# RECBENCH_FLEET_HOSTS hosts (default 2; RECBENCH_FLEET_VM=K: virtual machines of K NUMA nodes),
# brought up first; with it, against that inventory.
# Extra arguments go to ansible-playbook (for example `-l kunpeng` or `--tags sweep`).
# RECBENCH_RUN_ID resumes a run (default: a new one, named by the UTC time); results come home to
# RECBENCH_RESULTS (default results/), and the run ends with the best throughput per model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# shellcheck source=/dev/null
source .venv/bin/activate
export CONTAINERS_CONF="$PWD/sim/fleet/containers.conf"

inventory=${RECBENCH_INVENTORY:-}
store=${RECBENCH_ARTIFACTS:-$PWD/artifacts}
results=${RECBENCH_RESULTS:-$PWD/results}
run_id=${RECBENCH_RUN_ID:-$(python -m bench.facts run-id)}
sizes=()
if [ -z "$inventory" ]; then
  # RECBENCH_FLEET_VM=K: the hosts are virtual machines with K NUMA nodes each (slow: TCG).
  vm=()
  [ -n "${RECBENCH_FLEET_VM:-}" ] && vm=(--vm --numa "$RECBENCH_FLEET_VM")
  python -m sim.fleet up "${RECBENCH_FLEET_HOSTS:-2}" "${vm[@]}"
  inventory=.fleet/inventory.yml
  arch=$(uname -m)
  ansible-playbook playbooks/artifacts.yml -e "artifact_store_dir=$store" -e "{\"artifact_store_arches\": [\"$arch\"]}"
  # No TF-Serving build here (Bazel needs the internet): the simulated fleet serves with the stand-in.
  python -m sim.tfserving_standin.package --store "$store" --arch "$arch"
  sizes=(-e @scripts/simulated-fleet.yml)
fi
status=0
ansible-playbook -i "$inventory" playbooks/bench.yml -e "recbench_artifact_dir=$store" \
  -e "recbench_results_dir=$results" -e "recbench_run_id=$run_id" "${sizes[@]}" "$@" || status=$?

# Whatever the playbook's outcome, show what came home: a failed host does not hide the others.
echo
echo "results of run $run_id: $results/$run_id"
if [ -d "$results/$run_id" ]; then
  python -m collect ingest "$results" --db "$results/recbench.duckdb" || status=$((status ? status : 1))
  python -m collect best --run "$run_id" --db "$results/recbench.duckdb" || true
fi
if [ -z "${RECBENCH_INVENTORY:-}" ]; then
  python -m sim.fleet status
  echo "simulated fleet still up: 'python -m sim.fleet down' removes it"
fi
exit "$status"
