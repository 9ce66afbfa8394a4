#!/bin/sh
# Installs the Debian packages lb needs, only those that are missing:
#   deps.sh           to build and run every test (make test)
#   deps.sh --run     to build and run the demo only (make run)
#   deps.sh --bench   to build and benchmark against HAProxy and nginx (make bench)
#   deps.sh --deb     to build and check the Debian package (make deb)
#
# prometheus is here for promtool, which the admin tests use to check the
# /metrics text; dnsmasq-base serves the SRV tests' records; bird2 and
# keepalived run the fleet test bed (test_fleet.py: BGP + ECMP, VRRP).
# Services that packages would start on installation (prometheus, nginx,
# haproxy, bird, keepalived) are kept from starting: they would take ports
# the tests and the demo use, or routes.
set -eu

# What building and running lb needs (make run); the tests add the rest.
packages="build-essential pkg-config libevent-dev libyaml-dev libhttp-parser-dev libxxhash-dev libssl-dev libc-ares-dev libnghttp2-dev openssl curl"
case "${1:-}" in
--run) ;;
--bench) packages="$packages wrk haproxy nginx-light gnuplot-nox nghttp2-client" ;;
--deb) packages="$packages debhelper devscripts dpkg-dev lintian fakeroot" ;;
*) packages="$packages clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest python3-yaml python3-h2 nghttp2-client prometheus wrk dnsmasq-base bird2 keepalived iproute2 procps" ;;
esac

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
