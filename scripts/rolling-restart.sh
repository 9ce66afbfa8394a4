#!/bin/bash
# rolling-restart.sh (make rolling-restart): how many client requests fail
# while the replicas behind a proxy are restarted one after the other
# (issue 10), for lb, HAProxy and nginx in the same run.
#
#   scripts/rolling-restart.sh [SECONDS]      (or ROLLING_DURATION=SECONDS)
#
# Method
#   Three replicas (build/replica) sit behind one proxy at a time. wrk
#   (-t2 -c32 --timeout 5s) loads the proxy for SECONDS (default 20), and
#   meanwhile a deploy goes round the replicas: SIGKILL one, start it again on
#   the same port 1 s later, kill the next one 2 s after the previous kill.
#   The first kill comes 1 s into the load (so the proxy has warmed its
#   connection pools), the last one at least 2 s before the load ends (so the
#   restarted replica is back before wrk stops): 9 kills in 20 s.
#
#   Three loads: GET /, POST / with a 1 KiB body and POST / with a 100 KiB
#   body. GET can be retried by a proxy on another replica; a POST that was in
#   flight on a killed replica can not (nobody knows whether it was applied).
#   For each load the proxies run in turn (lb, haproxy, nginx), so whatever
#   else runs on the machine spreads over all three. Every proxy is started
#   afresh for each run (and checked to reach all three replicas), so no run
#   inherits health state from the previous one.
#
#   Each proxy is configured as an operator would, with its defaults where
#   they concern failure handling, and one worker each:
#   lb       workers: 1, an http listener, the three servers; nothing else,
#            so the default tcp health check every 2 s, passive ejection,
#            panic threshold and 2 retries.
#   haproxy  nbthread 1, mode http, balance roundrobin, option redispatch,
#            retries 2, servers with check (inter 2s), http-reuse safe,
#            timeouts connect 2s, client/server 30s.
#   nginx    worker_processes 1, an upstream with keepalive 32 and
#            proxy_http_version 1.1 + Connection "" (so the pool is used);
#            max_fails=1 fail_timeout=10s and proxy_next_upstream error
#            timeout are its defaults.
#   Access logs are off for all three (they change nothing about failures).
#
# Reading the table (stdout)
#   requests   requests wrk completed (its "N requests in")
#   failed     wrk's "Non-2xx or 3xx responses" + socket errors (connect,
#              read, write, timeout): what a client would have seen fail
#   failed %   failed / requests
#   The progress lines on stderr split failed into its parts.
#
# Environment (defaults)
#   ROLLING_DURATION=20     seconds of load per run (or the first argument);
#                           at least 3 (one kill)
#   ROLLING_PORT_BASE=18100 replicas BASE+1..3, lb BASE+10, haproxy BASE+11,
#                           nginx BASE+12
#   ROLLING_KEEP=0          1 keeps the run directory (configs, logs, every
#                           wrk output) also when the run succeeds; after a
#                           failure it is always kept
#   BUILD=build
# With the defaults a run takes 3 loads x 3 proxies x 20 s plus start-up:
# about four minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DURATION=${1:-${ROLLING_DURATION:-20}}
PORT_BASE=${ROLLING_PORT_BASE:-18100}
KEEP=${ROLLING_KEEP:-0}

CONNECTIONS=32
DOWN_S=1      # a killed replica is started again this long after its kill
EVERY_S=2     # from one kill to the next
FIRST_S=1     # from the start of the load to the first kill
PROXIES=(lb haproxy nginx)
LOADS=(GET POST-1KiB POST-100KiB)
declare -A BODY=([GET]=0 [POST-1KiB]=1024 [POST-100KiB]=102400)
REPLICA_PORTS=($((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)))
declare -A PORT=([lb]=$((PORT_BASE + 10)) [haproxy]=$((PORT_BASE + 11)) [nginx]=$((PORT_BASE + 12)))
REPLICA_PID=()

die() { echo "rolling-restart: $*" >&2; exit 1; }
say() { echo "rolling-restart: $*" >&2; }

# --- checks ------------------------------------------------------------------

[[ $DURATION =~ ^[0-9]+$ ]] || die "duration must be whole seconds, got '$DURATION'"
((DURATION >= FIRST_S + EVERY_S)) || die "duration must be at least $((FIRST_S + EVERY_S)) s (one kill)"
if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || ((PORT_BASE < 1 || PORT_BASE + 12 > 32767)); then
    die "ROLLING_PORT_BASE must leave its ports in 1..32767, got '$PORT_BASE'"
fi

missing=""
for tool in wrk haproxy nginx curl timeout awk; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[[ -z $missing ]] || die "missing:$missing (scripts/deps.sh --bench, or apt-get install -y wrk haproxy nginx-light curl)"
if [[ ! -x $BUILD/lb || ! -x $BUILD/replica ]]; then
    say "building $BUILD/lb and $BUILD/replica"
    make BUILD="$BUILD" all >&2 || die "make failed"
fi

# --- processes ---------------------------------------------------------------

# shellcheck source=scripts/proclib.sh
source "$(dirname "$0")/proclib.sh"
raise_fd_limit

# The run directory is created below; the EXIT trap removes it on success
# only, so that the logs of a failed run are there to read.
RUN=""
finish() {
    local rc=$?
    stop_tracked
    if [[ -n $RUN ]]; then
        if [[ $rc == 0 && $KEEP == 0 ]]; then
            rm -rf "$RUN"
        else
            say "configs and logs kept in $RUN"
        fi
    fi
    return "$rc"
}
trap finish EXIT

# Replicas die and are born during every run: a dead pid leaves the list at
# once, so that the final cleanup never signals a pid the kernel has reused.
untrack_pid() {
    local p keep=()
    for p in "${TRACKED_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    TRACKED_PIDS=("${keep[@]}")
}

# stop_pid PID: TERM, KILL after 10 s; reaped and untracked either way.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack_pid "$pid"
}

# start_replica I: replica I (0..2) on its port, in the background; does not
# wait, so that the deploy's schedule is kept (wait_port checks it later).
start_replica() {
    local i=$1
    "$BIN/replica" -p "${REPLICA_PORTS[$i]}" -n "replica-$((i + 1))" >>"$RUN/replica-$((i + 1)).log" 2>&1 &
    REPLICA_PID[i]=$!
    track_pid $!
}

kill_replica() {
    local i=$1
    kill -KILL "${REPLICA_PID[$i]}" 2>/dev/null || true
    wait "${REPLICA_PID[$i]}" 2>/dev/null || true
    untrack_pid "${REPLICA_PID[$i]}"
}

# now_us: wall clock in microseconds; sleep_until US: sleep until then (at
# once if past). The deploy keeps its own schedule, whatever the proxy does.
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t)); }
sleep_until() {
    local d=$(($1 - $(now_us)))
    ((d > 0)) || return 0
    sleep "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
}

# start_proxy NAME: start it, wait for its port, and check that GET / reaches
# all three replicas (else the run would not measure a balancer). Sets PROXY_PID.
start_proxy() {
    local name=$1 log="$RUN/$1.log"
    echo "--- $(date '+%F %T') start" >>"$log"
    case $name in
        lb) "$BIN/lb" -c "$RUN/lb.yaml" >>"$log" 2>&1 & ;;
        haproxy) haproxy -db -f "$RUN/haproxy.cfg" >>"$log" 2>&1 & ;;
        nginx) nginx -p "$RUN/" -e "$RUN/nginx-error.log" -c "$RUN/nginx.conf" -g 'daemon off;' >>"$log" 2>&1 & ;;
    esac
    PROXY_PID=$!
    track_pid $!
    wait_port "$PROXY_PID" "${PORT[$name]}" "$log" 10
    local body names=()
    for _ in 1 2 3 4 5 6; do
        body=$(curl -sS --max-time 5 -o - -w '\n%{http_code}' "http://127.0.0.1:${PORT[$name]}/") \
            || die "$name: GET http://127.0.0.1:${PORT[$name]}/ failed"
        [[ ${body##*$'\n'} == 200 ]] || die "$name: GET / answered ${body##*$'\n'}, not 200"
        names+=("${body%%$'\n'*}")
    done
    [[ $(printf '%s\n' "${names[@]}" | sort -u | wc -l) == 3 ]] \
        || die "$name: 6 requests did not reach all 3 replicas: ${names[*]}"
}

# --- configurations ------------------------------------------------------------

# A temporary directory, world-traversable: nginx's worker (user nobody)
# must reach the body temp directory below it for the 100 KiB POSTs.
RUN=$(mktemp -d "${TMPDIR:-/tmp}/rolling-restart.XXXXXX")
chmod 755 "$RUN"
# Private copies of the binaries: the replicas are started again all through
# the run, and a `make` elsewhere must not swap the binary under them.
BIN=$RUN/bin
mkdir -p "$BIN"
cp "$BUILD/lb" "$BUILD/replica" "$BIN/"

servers_lb="" servers_haproxy="" servers_nginx=""
for i in 0 1 2; do
    p=${REPLICA_PORTS[$i]}
    servers_lb+="      - addr: 127.0.0.1:$p"$'\n'
    servers_haproxy+="    server r$((i + 1)) 127.0.0.1:$p check"$'\n'
    servers_nginx+="        server 127.0.0.1:$p;"$'\n'
done

cat >"$RUN/lb.yaml" <<EOF
# Generated by scripts/rolling-restart.sh: defaults but for one worker.
global:
  workers: 1

listeners:
  - name: web
    bind: "127.0.0.1:${PORT[lb]}"
    mode: http
    backend: app

backends:
  - name: app
    servers:
${servers_lb%$'\n'}
EOF

cat >"$RUN/haproxy.cfg" <<EOF
# Generated by scripts/rolling-restart.sh.
global
    nbthread 1

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option redispatch
    retries 2

frontend web
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend app

backend app
    balance roundrobin
    http-reuse safe
${servers_haproxy%$'\n'}
EOF

cat >"$RUN/nginx.conf" <<EOF
# Generated by scripts/rolling-restart.sh.
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/nginx-error.log;

events {
}

http {
    access_log off;
    # Debian's compiled-in temp paths are under /var/lib/nginx; keep the run
    # to its own directory.
    client_body_temp_path $RUN/nginx-client-body;
    proxy_temp_path $RUN/nginx-proxy;
    fastcgi_temp_path $RUN/nginx-fastcgi;
    uwsgi_temp_path $RUN/nginx-uwsgi;
    scgi_temp_path $RUN/nginx-scgi;

    upstream app {
${servers_nginx%$'\n'}
        keepalive 32;
    }

    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

for n in 1024 102400; do
    printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n' "$n" >"$RUN/post-$n.lua"
done

"$BIN/lb" -t -c "$RUN/lb.yaml" >"$RUN/lb.log" 2>&1 || die "lb rejects $RUN/lb.yaml: $(cat "$RUN/lb.log")"
haproxy -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 || die "haproxy rejects $RUN/haproxy.cfg: $(cat "$RUN/haproxy.log")"
nginx -t -q -p "$RUN/" -e "$RUN/nginx-error.log" -c "$RUN/nginx.conf" -g 'daemon off;' >"$RUN/nginx.log" 2>&1 \
    || die "nginx rejects $RUN/nginx.conf: $(cat "$RUN/nginx.log")"

# --- start ---------------------------------------------------------------------

# Fixed ports below the ephemeral range (32768..60999 on Debian): a port
# taken from that range could be grabbed by one of the many outgoing
# connections while its replica is down, and the restart would fail to bind.
for port in "${REPLICA_PORTS[@]}" "${PORT[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (set ROLLING_PORT_BASE to move all ports)"
    fi
done
for i in 0 1 2; do start_replica "$i"; done
for i in 0 1 2; do wait_port "${REPLICA_PID[$i]}" "${REPLICA_PORTS[$i]}" "$RUN/replica-$((i + 1)).log" 10; done

say "$(date '+%F %T'), $(nproc) CPUs; $("$BIN/lb" -V 2>&1 | head -n 1), $(haproxy -v | head -n 1 | awk '{ print "HAProxy " $3 }'), $(nginx -v 2>&1 | sed 's/.*: //')"
say "${DURATION} s per run, kill every ${EVERY_S} s, back after ${DOWN_S} s; ports: replicas ${REPLICA_PORTS[*]}, lb ${PORT[lb]}, haproxy ${PORT[haproxy]}, nginx ${PORT[nginx]}"

# --- measuring -------------------------------------------------------------------

# run_one PROXY LOAD: one run; appends "proxy load requests failed kills
# non2xx connect read write timeout" to $RUN/results.
run_one() {
    local proxy=$1 load=$2 body=${BODY[$2]} args out wrk_pid start k=0 i t_kill
    start_proxy "$proxy"
    args=(-t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s)
    ((body == 0)) || args+=(-s "$RUN/post-$body.lua")
    out="$RUN/wrk-$proxy-$load.txt"
    start=$(now_us)
    timeout $((DURATION + 30)) wrk "${args[@]}" "http://127.0.0.1:${PORT[$proxy]}/" >"$out" 2>&1 &
    wrk_pid=$!
    track_pid $!

    # The deploy: kill at FIRST_S, FIRST_S + EVERY_S, ... while the kill
    # leaves EVERY_S before the end of the load.
    while t_kill=$((FIRST_S + k * EVERY_S)); ((t_kill + EVERY_S <= DURATION)); do
        i=$((k % 3))
        sleep_until $((start + t_kill * 1000000))
        kill_replica "$i"
        sleep_until $((start + (t_kill + DOWN_S) * 1000000))
        start_replica "$i"
        wait_port "${REPLICA_PID[$i]}" "${REPLICA_PORTS[$i]}" "$RUN/replica-$((i + 1)).log" 5
        k=$((k + 1))
    done

    local rc=0
    wait "$wrk_pid" || rc=$?
    untrack_pid "$wrk_pid"
    ((rc == 0)) || die "wrk against $proxy ($load) exited $rc: $(cat "$out")"
    kill -0 "$PROXY_PID" 2>/dev/null || die "$proxy died during the run; log: $RUN/$proxy.log"
    stop_pid "$PROXY_PID"

    # wrk prints "  123456 requests in 20.00s, ...", and only when there were
    # any: "  Socket errors: connect 0, read 3, write 0, timeout 0" and
    # "  Non-2xx or 3xx responses: 12".
    awk -v proxy="$proxy" -v load="$load" -v kills="$k" '
        / requests in /              { requests = $1 }
        /Socket errors:/             { gsub(/,/, ""); c = $4; r = $6; w = $8; t = $10 }
        /Non-2xx or 3xx responses:/  { n = $NF }
        END {
            if (requests == "") exit 1
            printf "%s %s %d %d %d %d %d %d %d %d\n", proxy, load, requests,
                n + c + r + w + t, kills, n, c, r, w, t
        }' "$out" >>"$RUN/results" || die "cannot parse wrk output for $proxy ($load): $(cat "$out")"
    read -r _ _ requests failed kills n c r w t < <(tail -n 1 "$RUN/results")
    say "$load $proxy: $requests requests, $failed failed ($n non-2xx/3xx; socket errors: connect $c, read $r, write $w, timeout $t), $kills kills"
}

: >"$RUN/results"
for load in "${LOADS[@]}"; do
    for proxy in "${PROXIES[@]}"; do
        run_one "$proxy" "$load"
    done
done

# --- the table ---------------------------------------------------------------------

echo
echo "rolling restart: 3 replicas, SIGKILL one every ${EVERY_S} s, back after ${DOWN_S} s; wrk -t2 -c${CONNECTIONS} -d${DURATION}s --timeout 5s"
awk '
    BEGIN { fmt = "%-8s %-12s %10s %8s %9s\n"; printf fmt, "proxy", "load", "requests", "failed", "failed %" }
    { printf fmt, $1, $2, $3, $4, sprintf("%.3f", $3 ? 100 * $4 / $3 : 0) }' "$RUN/results"
