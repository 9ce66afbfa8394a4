#!/bin/sh
# Installs the Debian packages lb needs to build, test and run its demo,
# only when one is missing. Benchmark peers (haproxy, nginx, wrk, gnuplot)
# are installed by scripts/bench.sh itself, not here.
set -eu

packages="build-essential pkg-config clang libevent-dev libyaml-dev libcmocka-dev
libhttp-parser-dev python3 python3-pytest curl"
[ "${1:-}" = "--bench" ] && packages="$packages wrk haproxy nginx-light gnuplot-nox"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "deps.sh: installing$missing" >&2
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
