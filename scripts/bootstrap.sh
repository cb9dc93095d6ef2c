#!/usr/bin/env bash
# Installs what diabridge needs to build, test and run, from Debian 12
# packages only (DESIGN §9).  Safe to run again: it installs only what is
# missing.  Uses sudo when not root.
set -euo pipefail

# Build and runtime libraries, test tools, and the real servers the
# integration tests start (mosquitto, influxd).  libclang-rt-14-dev holds
# libFuzzer and the sanitizer runtimes clang links against; Debian installs
# it only as a recommendation of clang, which --no-install-recommends skips.
packages=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev python3
  libsqlite3-dev sqlite3 libjansson-dev libssl-dev libcurl4-openssl-dev
  libsystemd-dev libmosquitto-dev libcmocka-dev zlib1g-dev tzdata
  mosquitto mosquitto-clients influxdb influxdb-client jq socat openssl bc time curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian mosquitto package starts a system broker on port 1883; the tests
# start their own on free ports and do not need it.
