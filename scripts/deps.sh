#!/usr/bin/env bash
# Installs the Debian packages Patron builds, tests and demos with, when any is
# missing. Idempotent; needs root (or sudo) only when something must be installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  librdkafka-dev libhiredis-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler
  clang libclang-rt-14-dev # clang 14 and libFuzzer, for scripts/fuzz.sh
  libjansson-dev libyaml-dev libicu-dev libhttp-parser-dev zlib1g-dev libcriterion-dev
  redis-server redis-tools kcat wrk curl
  python3 python3-redis python3-confluent-kafka python3-protobuf protobuf-compiler
  python3-yaml python3-jsonschema # the OpenAPI document against the real answers (test_openapi.py)
  python3-numpy python3-scipy # scripts/eval.sh: the baselines and BG/NBD
  chromium nodejs # the dashboard's browser test (playwright-core from npm drives Debian's chromium)
)
# npm: Debian's package, unless a Node.js that ships its own npm (NodeSource's,
# which conflicts with Debian's npm package) is there already.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
[ "${PATRON_DEPS_EXTRA:-}" ] && read -r -a extra <<<"$PATRON_DEPS_EXTRA" && PACKAGES+=("${extra[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
