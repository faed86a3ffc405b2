#!/usr/bin/env bash
# Installs the Debian 12 packages transnotes needs to build, run and test.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libpq-dev libhiredis-dev
  libsentencepiece-dev libopenblas-dev
  libspdlog-dev libfmt-dev libcli11-dev
  libssl-dev libcurl4-openssl-dev
  libjwt-dev libsodium-dev libpwquality-dev cracklib-runtime
  clang libfuzzer-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  apertium apertium-en-es
  postgresql redis-server
  wrk curl python3 python3-yaml python3-jsonschema
  prometheus-cpp-dev prometheus docker-compose
  nodejs chromium fonts-dejavu-core
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
