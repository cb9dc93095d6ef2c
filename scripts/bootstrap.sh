#!/usr/bin/env bash
# Installs what diabridge needs to build, test and run, from Debian 12
# packages only (DESIGN §9).  Safe to run again: it installs only what is
# missing.  Uses sudo when not root.
set -euo pipefail

# Two sets.  Building and running (what `make demo` needs): the compiler
# and the libraries.  With --test (what `make check` needs) also the test
# tools and the real servers the integration tests start (mosquitto,
# influxd).  libclang-rt-14-dev holds libFuzzer and the sanitizer runtimes
# clang links against; Debian installs it only as a recommendation of
# clang, which --no-install-recommends skips.
packages=(
  build-essential cmake pkg-config
  libsqlite3-dev libjansson-dev libssl-dev libcurl4-openssl-dev
  libsystemd-dev libmosquitto-dev libcmocka-dev zlib1g-dev tzdata
)
test_servers=(mosquitto influxdb)
if [ "${1:-}" = --test ]; then
  packages+=(
    clang clang-format libclang-rt-14-dev python3 sqlite3
    "${test_servers[@]}" mosquitto-clients influxdb-client jq socat openssl bc time curl
  )
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/bootstrap.sh [--test]" >&2
  exit 2
fi

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
# Debian starts mosquitto (port 1883) and influxd (port 8086, no password)
# as system services when they are installed.  The tests start their own on
# free loopback ports; a server open to the network that nobody asked for is
# a risk, so the ones installed here are stopped and not started at boot.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  for m in "${missing[@]}"; do
    for srv in "${test_servers[@]}"; do
      [ "$m" = "$srv" ] || continue
      if $sudo systemctl disable --now "$srv" >/dev/null 2>&1; then
        echo "bootstrap: stopped the $srv system service the package started (the tests run their own)" >&2
      fi
    done
  done
fi
exit 0
