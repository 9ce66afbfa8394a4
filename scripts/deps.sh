#!/bin/sh
# Installs the Debian packages lb needs to build, test and run its demo,
# only those that are missing. With --bench, also the benchmark peers
# (HAProxy, nginx), wrk and gnuplot.
#
# prometheus is here for promtool, which the admin tests use to check the
# /metrics text. Services that packages would start on installation
# (prometheus, nginx, haproxy) are kept from starting: they would take
# ports the tests and the demo use.
set -eu

packages="build-essential pkg-config clang libclang-rt-14-dev libevent-dev libyaml-dev libcmocka-dev
libhttp-parser-dev python3 python3-pytest curl prometheus"
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

policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
