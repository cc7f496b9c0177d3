#!/usr/bin/env bash
# The whole test suite, quickest checks first. `--quick` stops after the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[ "${1:-}" = "--quick" ] && quick=true

./scripts/bootstrap.sh
# shellcheck source=/dev/null
source .venv/bin/activate
export CONTAINERS_CONF="$PWD/tests/fleet/containers.conf"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
started=$SECONDS
stage() { printf '\n=== %s (%ds)\n' "$*" $((SECONDS - started)); }

# pytest exits 5 when a marker selects no test; that is not a failure of the suite.
run_pytest() { pytest "$@" || { rc=$?; [ "$rc" -eq 5 ] || return "$rc"; }; }

stage "ruff"
ruff check .
ruff format --check .

stage "ansible-lint"
ansible-lint

stage "syntax check of every playbook"
for playbook in playbooks/*.yml; do
  ansible-playbook --syntax-check -i localhost, "$playbook" >/dev/null
  echo "ok: $playbook"
done

stage "unit tests"
run_pytest -m unit -q

if $quick; then exit 0; fi

stage "model zoo tests (real TensorFlow training and SavedModels)"
run_pytest -m models -q

stage "host images (built once, then cached)"
python -m tests.fleet image --aarch64

# Kept outside the clone so CI runs on this machine reuse the downloads (about 600 MB).
stage "artifact store for the tests (filled once, then checked)"
export RECBENCH_ARTIFACTS=${RECBENCH_ARTIFACTS:-/var/tmp/recbench-artifacts}
ansible-playbook playbooks/artifacts.yml -e "artifact_store_dir=$RECBENCH_ARTIFACTS" | tail -n 3
# TF-Serving cannot be built here: the stand-in is packaged as the same kind of artifact.
python -m tests.tfserving_standin.package --store "$RECBENCH_ARTIFACTS" --arch x86_64 --arch aarch64

stage "molecule"
for scenario in molecule/*/molecule.yml; do
  name=$(basename "$(dirname "$scenario")")
  molecule test -s "$name"
done

stage "fleet tests"
run_pytest -m fleet -v

stage "done"
