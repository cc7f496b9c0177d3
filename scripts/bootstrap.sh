#!/usr/bin/env bash
# Installs everything the controller needs: Debian packages and the pinned virtualenv in .venv/.
# Idempotent: a second run checks and reports, and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${RECBENCH_VENV:-$root/.venv}

say() { printf 'bootstrap: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
  local wanted missing=()
  mapfile -t wanted < <(grep -vE '^\s*(#|$)' scripts/apt-packages.txt)
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages: all ${#wanted[@]} present, nothing to do"
    return
  fi
  say "Debian packages: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv_fingerprint() {
  cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1
}

install_venv() {
  local stamp=$venv/.recbench-stamp want
  want=$(venv_fingerprint)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    say "virtualenv $venv: up to date, nothing to do"
    return
  fi
  say "virtualenv $venv: installing pinned packages (the first run on a machine downloads TensorFlow)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # uv installs the pinned set from its cache in seconds where pip takes minutes; it is pinned too.
  "$venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt uv
  local uv=("$venv/bin/uv" pip install -q --python "$venv/bin/python")
  "${uv[@]}" -c constraints.txt -r requirements.txt
  # tensorflow-serving-api depends on the package `tensorflow`, which would install a second copy of
  # TensorFlow over tensorflow-cpu; its real needs (grpcio, protobuf) come with tensorflow-cpu.
  "${uv[@]}" --no-deps "$(grep -E '^tensorflow-serving-api==' constraints.txt)"
  # perf_analyzer for the controller's own tests: the binary ships in the tritonclient wheel and
  # links libcudart.so.12 from the CUDA runtime wheel; none of their Python dependencies are needed.
  "${uv[@]}" --no-deps "$(grep -E '^tritonclient==' constraints.txt)" "$(grep -E '^nvidia-cuda-runtime-cu12==' constraints.txt)"
  # apache-otava for its change point analysis only (see requirements.txt): numpy and scipy are there.
  "${uv[@]}" --no-deps "$(grep -E '^apache-otava==' constraints.txt)"
  "${uv[@]}" --no-deps -e .
  echo "$want" > "$stamp"
  say "virtualenv $venv: ready"
}

install_apt_packages
install_venv
