#!/bin/bash
# bench.sh (make bench): lb against HAProxy and nginx, same machine, same
# backends, same rules.
#
# Method
#   Three replicas (build/replica, HTTP keep-alive, GET / answers "NAME\n")
#   sit behind each of three proxies: lb, HAProxy and nginx. Every proxy is
#   configured here, from a generated file in build/bench/run/, the same way:
#   one worker (lb global.workers: 1, haproxy nbthread 1, nginx
#   worker_processes 1; the target "lb2" is lb with two workers, unpinned,
#   and "lb1u" lb with one worker, unpinned: lb2 against lb1u is what a
#   second worker costs per request; haproxy1u/haproxy2 and nginx1u/nginx2
#   are the same pair for the peers, plain runs only), round robin over the
#   same three replicas, pooled
#   keep-alive connections to them, no access log, no health checks, each on
#   its own 127.0.0.1 port. The proxy under test is pinned to CPU 0; wrk and
#   the replicas share CPU 1, so the proxy never competes with the load it
#   serves. The fourth target, "replica", is wrk straight to one replica: the
#   ceiling that no proxy can beat on this machine.
#
#   wrk (-t1, BENCH_CONNECTIONS connections, BENCH_DURATION per run, --latency)
#   sends GET / in two variants: "keepalive" (many requests per client
#   connection) and "close" (wrk -H 'Connection: close': one TCP connection
#   per request, so accept/close cost is included). The runs are interleaved:
#   BENCH_ROUNDS rounds, each round runs every target once per variant (the
#   starting target rotates every round), so background noise from other jobs
#   on the machine spreads over all targets instead of hitting one.
#
#   Proxy CPU time is read from /proc/PID/task/*/schedstat (first field: ns
#   on CPU, summed over every thread: /proc/PID/schedstat alone covers only
#   the main thread, and lb runs its event loop in a worker thread) before
#   and after each wrk run; for nginx the master and its worker process(es)
#   are summed. CPU per request = delta ns / requests completed / 1000.
#
#   Afterwards a concurrency sweep (BENCH_SWEEP_CONNECTIONS, default 32 64 128
#   256) runs lb and HAProxy on keep-alive for BENCH_SWEEP_DURATION each, and
#   gnuplot draws req/s against connections into build/bench/sweep.png (data
#   in build/bench/sweep.dat).
#
#   First of all, memory per idle connection (BENCH_IDLE connections,
#   default 5000), on the freshly started proxies:
#   scripts/idle_conns.py opens that many keep-alive client connections to
#   each proxy in turn, one GET each, and holds them idle; the proxy's RSS
#   (VmRSS, nginx's master and worker summed) while holding them, minus its
#   RSS before, divided by the connections, is the figure; the RSS 3 s after
#   they closed says how much of it was given back. For lb alone, a second
#   figure: idle pooled server connections, from a separate lb with
#   keepalive BENCH_IDLE in front of a replica that answers after 2 s, so
#   that the connections are all in flight at once and then all pooled: its
#   RSS over the client connections' figure.
#
# Reading the table (stdout, build/bench/results.txt, build/bench/results.csv)
#   One row per variant and target; every figure is the median over rounds.
#   req/s      completed requests per second (wrk's Requests/sec)
#   min..max   the lowest and highest req/s seen over the rounds: the noise
#   p50, p99   latency percentiles from wrk --latency, in ms
#   cpu us/req proxy CPU time per request, microseconds ("-" for the replica)
#   errors     wrk socket errors + non-2xx/3xx answers, summed over rounds
#   lb/this    lb's req/s divided by this row's (above 1: lb is faster), and
#              lb's CPU per request divided by this row's (below 1: lb is
#              cheaper). The haproxy and nginx rows are the comparison that
#              matters: absolute numbers swing with whatever else runs on the
#              machine, the ratios much less.
#   build/bench/runs.csv has every single wrk run.
#
# TLS (BENCH_TLS=ecdsa or rsa; make bench runs plain, then ecdsa, then rsa)
#   The same comparison with every proxy terminating TLS on its listener
#   (the replicas stay plain HTTP), one certificate made here for all three
#   (ECDSA P-256 or RSA 2048, TLS 1.3 as the clients negotiate), results in
#   build/bench/tls-ecdsa/ (or tls-rsa/). Resumption is off in all three
#   (lb session_tickets: false; HAProxy no-tls-tickets and no session cache;
#   nginx ssl_session_tickets off, no cache): wrk resumes sessions when it
#   can, and the "close" variant is meant to measure new handshakes. There,
#   cpu us/req is CPU per handshake (one request per connection); the idle
#   memory is per idle TLS connection (after its handshake and one GET); no
#   sweep and no pooled-connection figure (the server side is plain).
#
# Environment (defaults)
#   BENCH_DURATION=5s  BENCH_CONNECTIONS=64  BENCH_ROUNDS=3
#   BENCH_SWEEP_DURATION=3s  BENCH_SWEEP_CONNECTIONS="32 64 128 256"
#   BENCH_PORT_BASE=18000  (replicas BASE+1..3, lb BASE+10, haproxy BASE+11,
#                           nginx BASE+12, the worker pairs up to BASE+19)
#   BENCH_SWEEP=1      (0 skips the sweep)
#   BENCH_IDLE=5000    (0 skips the idle-memory measurement; the open-file
#                       limit must allow about 2.5 descriptors per connection)
#   BENCH_NICE=0       (e.g. -10 as root: run proxies, replicas and wrk at
#                       that nice level, to push busy background jobs aside)
#   BUILD=build
# With the defaults a run takes about 3 rounds x 10 targets x 2 variants x 5s
# + 4 x 2 x 3s of sweep + the idle-memory runs, plus start-up: about eight
# minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TLS=${BENCH_TLS:-}
case $TLS in
    "") OUT=$BUILD/bench SCHEME=http ;;
    ecdsa | rsa) OUT=$BUILD/bench/tls-$TLS SCHEME=https ;;
    *) echo "bench: BENCH_TLS must be ecdsa or rsa, got '$TLS'" >&2; exit 1 ;;
esac
RUN=$OUT/run
DURATION=${BENCH_DURATION:-5s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
SWEEP=${BENCH_SWEEP:-$([[ -n $TLS ]] && echo 0 || echo 1)}
IDLE=${BENCH_IDLE:-5000}
SWEEP_DURATION=${BENCH_SWEEP_DURATION:-3s}
SWEEP_CONNECTIONS=${BENCH_SWEEP_CONNECTIONS:-32 64 128 256}
PORT_BASE=${BENCH_PORT_BASE:-18000}
NICE=${BENCH_NICE:-0}

PROXY_CPU=0
LOAD_CPU=1
TARGETS=(replica lb lb1u lb2 haproxy nginx)
# What a second worker costs each proxy, unpinned: the pairs whose ratio is
# printed under the table (the peers' only over plain HTTP: that figure is
# about the event loops, not about TLS).
WORKER_PAIRS=(lb1u:lb2)
[[ -n $TLS ]] || { TARGETS+=(haproxy1u haproxy2 nginx1u nginx2); WORKER_PAIRS+=(haproxy1u:haproxy2 nginx1u:nginx2); }
VARIANTS=(keepalive close)
REPLICA_PORTS=($((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)))
declare -A PORT=([replica]=$((PORT_BASE + 1)) [lb]=$((PORT_BASE + 10))
                 [haproxy]=$((PORT_BASE + 11)) [nginx]=$((PORT_BASE + 12))
                 [lbpool]=$((PORT_BASE + 13)) [slow]=$((PORT_BASE + 4)) [lb2]=$((PORT_BASE + 14))
                 [lb1u]=$((PORT_BASE + 15)) [haproxy1u]=$((PORT_BASE + 16)) [haproxy2]=$((PORT_BASE + 17))
                 [nginx1u]=$((PORT_BASE + 18)) [nginx2]=$((PORT_BASE + 19)))
declare -A PID=()

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

# Processes (tracked, stopped on exit), durations, pinning: proclib.sh.
# shellcheck source=scripts/proclib.sh
source "$(dirname "$0")/proclib.sh"

# --- checks ------------------------------------------------------------------

DURATION_S=$(seconds "$DURATION")
SWEEP_DURATION_S=$(seconds "$SWEEP_DURATION")
[[ $IDLE =~ ^[0-9]+$ ]] || die "BENCH_IDLE must be a number, got '$IDLE'"
for n in "$DURATION_S" "$SWEEP_DURATION_S" "$CONNECTIONS" "$ROUNDS" "$PORT_BASE" $SWEEP_CONNECTIONS; do
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "expected a positive integer, got '$n'"
done

missing=""
for tool in wrk haproxy nginx curl taskset timeout awk; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[[ $SWEEP == 0 ]] || command -v gnuplot >/dev/null 2>&1 || missing="$missing gnuplot"
[[ -z $missing ]] || die "missing:$missing (scripts/deps.sh --bench, or apt-get install -y wrk haproxy nginx-light gnuplot-nox curl)"
for bin in "$BUILD/lb" "$BUILD/replica"; do
    [[ -x $bin ]] || die "$bin not built (run make)"
done
[[ $NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer, got '$NICE'"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (proxy on CPU $PROXY_CPU, load on CPU $LOAD_CPU)"

raise_fd_limit
pin_commands "$PROXY_CPU" "$LOAD_CPU" "$NICE"
NICE_ONLY=() # for the unpinned targets
[[ $NICE == 0 ]] || NICE_ONLY=(nice -n "$NICE")

# --- processes ---------------------------------------------------------------

# PID names the processes this script starts, for the CPU readings.

# url NAME: where the target NAME answers GET /.
url() {
    if [[ $1 == replica ]]; then echo "http://127.0.0.1:${PORT[$1]}/"; else echo "$SCHEME://127.0.0.1:${PORT[$1]}/"; fi
}

# check_target NAME: GET / answers 200, and a proxy spreads 6 requests over
# all three replicas (else it is not balancing and the comparison is void).
check_target() {
    local name=$1 port=${PORT[$1]} code body names=()
    for _ in 1 2 3 4 5 6; do
        body=$(curl -sS -k --max-time 5 -o - -w '\n%{http_code}' "$(url "$name")") \
            || die "$name: GET $(url "$name") failed"
        code=${body##*$'\n'}
        [[ $code == 200 ]] || die "$name: GET / answered $code, not 200"
        names+=("${body%%$'\n'*}")
    done
    if [[ $name != replica ]]; then
        local distinct
        distinct=$(printf '%s\n' "${names[@]}" | sort -u | wc -l)
        [[ $distinct == 3 ]] || die "$name: 6 requests reached $distinct replica(s), not 3: ${names[*]}"
    fi
}

# --- configurations ------------------------------------------------------------

mkdir -p "$OUT"
rm -rf "$RUN"
mkdir -p "$RUN"
RUN_ABS=$(cd "$RUN" && pwd)

# With BENCH_TLS: one certificate for every proxy, and each one's way of
# saying "terminate TLS here, no resumption".
lb_tls="" haproxy_ssl="" haproxy_global="" nginx_ssl="" nginx_tls=""
if [[ -n $TLS ]]; then
    command -v openssl >/dev/null 2>&1 || die "missing: openssl"
    if [[ $TLS == ecdsa ]]; then keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else keyopt=(-newkey rsa:2048); fi
    openssl req -x509 "${keyopt[@]}" -nodes -days 2 -subj /CN=bench.test -keyout "$RUN/bench.key" \
        -out "$RUN/bench.pem" >/dev/null 2>&1 || die "openssl could not make the bench certificate"
    cat "$RUN/bench.pem" "$RUN/bench.key" >"$RUN/bench-haproxy.pem"
    lb_tls="    tls:
      certificates:
        - cert: $RUN_ABS/bench.pem
          key: $RUN_ABS/bench.key
      session_tickets: false"
    haproxy_ssl=" ssl crt $RUN_ABS/bench-haproxy.pem no-tls-tickets"
    haproxy_global="    tune.ssl.cachesize 0"
    nginx_ssl=" ssl"
    nginx_tls="        ssl_certificate $RUN_ABS/bench.pem;
        ssl_certificate_key $RUN_ABS/bench.key;
        ssl_session_tickets off;
        ssl_session_cache off;"
fi

servers_lb="" servers_haproxy="" servers_nginx=""
for i in 0 1 2; do
    p=${REPLICA_PORTS[$i]}
    servers_lb+="      - addr: 127.0.0.1:$p"$'\n'
    servers_haproxy+="    server r$((i + 1)) 127.0.0.1:$p"$'\n'
    servers_nginx+="        server 127.0.0.1:$p;"$'\n'
done

cat >"$RUN/lb.yaml" <<EOF
# Generated by scripts/bench.sh.
global:
  workers: 1
  max_connections: 12000
  grace: 1s
  log:
    level: error
    target: stderr
  access_log: off

listeners:
  - name: bench
    bind: "127.0.0.1:${PORT[lb]}"
    mode: http
    backend: replicas
${lb_tls}

backends:
  - name: replicas
    balance: round_robin
    servers:
${servers_lb%$'\n'}
    health_check:
      type: none
    keepalive: 32
EOF

# lb2: the same with two workers, on either CPU, to see what a second
# worker costs per request (shared atomics, wake-ups, connections set up
# on one CPU and served on another), not what it gains: it shares CPU 1
# with the load. Against lb1u, one worker as free to move: lb pinned to a
# CPU of its own pays none of what sharing a CPU with the load costs.
sed -e "s/^  workers: 1$/  workers: 2/" -e "s/127.0.0.1:${PORT[lb]}/127.0.0.1:${PORT[lb2]}/" "$RUN/lb.yaml" >"$RUN/lb2.yaml"
sed -e "s/127.0.0.1:${PORT[lb]}/127.0.0.1:${PORT[lb1u]}/" "$RUN/lb.yaml" >"$RUN/lb1u.yaml"

cat >"$RUN/haproxy.cfg" <<EOF
# Generated by scripts/bench.sh.
global
    nbthread 1
    maxconn 8000
${haproxy_global}

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always

frontend bench
    bind 127.0.0.1:${PORT[haproxy]}${haproxy_ssl}
    default_backend replicas

backend replicas
    balance roundrobin
${servers_haproxy%$'\n'}
EOF

cat >"$RUN/nginx.conf" <<EOF
# Generated by scripts/bench.sh.
worker_processes 1;
worker_rlimit_nofile 16000;
pid $RUN_ABS/nginx.pid;
error_log $RUN_ABS/nginx.log error;

events {
    worker_connections 12000;
}

http {
    access_log off;
    client_body_temp_path $RUN_ABS/nginx-client-body;
    proxy_temp_path $RUN_ABS/nginx-proxy;
    fastcgi_temp_path $RUN_ABS/nginx-fastcgi;
    uwsgi_temp_path $RUN_ABS/nginx-uwsgi;
    scgi_temp_path $RUN_ABS/nginx-scgi;
    # nginx closes a keep-alive client connection after 1000 requests by
    # default; lb and HAProxy have no such limit.
    keepalive_requests 1000000000;

    upstream replicas {
${servers_nginx%$'\n'}
        keepalive 32;
        keepalive_requests 1000000000;
    }

    server {
        listen 127.0.0.1:${PORT[nginx]}${nginx_ssl};
${nginx_tls}
        location / {
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

"$BUILD/lb" -t -c "$RUN/lb.yaml" >"$RUN/lb.log" 2>&1 || die "lb rejects $RUN/lb.yaml: $(cat "$RUN/lb.log")"
haproxy -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 || die "haproxy rejects $RUN/haproxy.cfg: $(cat "$RUN/haproxy.log")"
# The peers' worker pairs: their one-worker files on another port (nginx:
# its own pid, log and temporary paths), and with two workers.
for t in haproxy1u haproxy2 nginx1u nginx2; do
    [[ -n ${PORT[$t]:-} && " ${TARGETS[*]} " == *" $t "* ]] || continue
    workers=${t: -1}; [[ $workers == u ]] && workers=1
    if [[ $t == haproxy* ]]; then
        sed -e "s/127.0.0.1:${PORT[haproxy]}/127.0.0.1:${PORT[$t]}/" -e "s/^    nbthread 1$/    nbthread $workers/" \
            "$RUN/haproxy.cfg" >"$RUN/$t.cfg"
    else
        sed -e "s/127.0.0.1:${PORT[nginx]}/127.0.0.1:${PORT[$t]}/" -e "s/^worker_processes 1;$/worker_processes $workers;/" \
            -e "s|$RUN_ABS/nginx|$RUN_ABS/$t|g" "$RUN/nginx.conf" >"$RUN/$t.conf"
    fi
done
nginx -t -q -p "$RUN_ABS" -e "$RUN_ABS/nginx.log" -c "$RUN_ABS/nginx.conf" -g 'daemon off;' >"$RUN/nginx.log" 2>&1 \
    || die "nginx rejects $RUN/nginx.conf: $(cat "$RUN/nginx.log")"

# --- start ------------------------------------------------------------------------

for port in "${REPLICA_PORTS[@]}" $(for t in "${TARGETS[@]}"; do [[ $t == replica ]] || echo "${PORT[$t]}"; done); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (set BENCH_PORT_BASE to move all ports)"
    fi
done
for i in 0 1 2; do
    name=replica$((i + 1))
    "${PIN_LOAD[@]}" "$BUILD/replica" -p "${REPLICA_PORTS[$i]}" -n "$name" >"$RUN/$name.log" 2>&1 &
    PID[$name]=$!
    track_pid $!
done
for i in 0 1 2; do
    name=replica$((i + 1))
    wait_port "${PID[$name]}" "${REPLICA_PORTS[$i]}" "$RUN/$name.log" 10
done
PID[replica]=${PID[replica1]}

"${PIN_PROXY[@]}" "$BUILD/lb" -c "$RUN/lb.yaml" >>"$RUN/lb.log" 2>&1 &
PID[lb]=$!
track_pid $!
"${NICE_ONLY[@]}" "$BUILD/lb" -c "$RUN/lb2.yaml" >"$RUN/lb2.log" 2>&1 & # unpinned: both CPUs, as deployed
PID[lb2]=$!
track_pid $!
"${NICE_ONLY[@]}" "$BUILD/lb" -c "$RUN/lb1u.yaml" >"$RUN/lb1u.log" 2>&1 &
PID[lb1u]=$!
track_pid $!
"${PIN_PROXY[@]}" haproxy -db -f "$RUN/haproxy.cfg" >>"$RUN/haproxy.log" 2>&1 &
PID[haproxy]=$!
track_pid $!
"${PIN_PROXY[@]}" nginx -p "$RUN_ABS" -e "$RUN_ABS/nginx.log" -c "$RUN_ABS/nginx.conf" -g 'daemon off;' >>"$RUN/nginx.log" 2>&1 &
PID[nginx]=$!
track_pid $!
for t in "${TARGETS[@]}"; do
    case $t in
        haproxy?*) "${NICE_ONLY[@]}" haproxy -db -f "$RUN/$t.cfg" >"$RUN/$t.log" 2>&1 & ;;
        nginx?*) "${NICE_ONLY[@]}" nginx -p "$RUN_ABS" -e "$RUN_ABS/$t.log" -c "$RUN_ABS/$t.conf" -g 'daemon off;' >"$RUN/$t.log" 2>&1 & ;;
        *) continue ;;
    esac
    PID[$t]=$!
    track_pid $!
done
for t in "${TARGETS[@]}"; do [[ $t == replica ]] || wait_port "${PID[$t]}" "${PORT[$t]}" "$RUN/$t.log" 10; done
for t in "${TARGETS[@]}"; do check_target "$t"; done

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
say "$(date '+%F %T'), $CPU_MODEL, $(nproc) CPUs; $("$BUILD/lb" -V 2>&1 | head -n 1), $(haproxy -v | head -n 1 | awk '{ print "HAProxy " $3 }'), $(nginx -v 2>&1 | sed 's/.*: //')"
say "ports: replicas ${REPLICA_PORTS[*]}, lb ${PORT[lb]}, haproxy ${PORT[haproxy]}, nginx ${PORT[nginx]}"

# --- memory per idle connection --------------------------------------------------

# First, while every proxy is fresh: what the throughput runs leave in a
# proxy's own pools would hide what a connection costs.

if [[ $IDLE -gt 0 ]]; then
  {
    echo "memory per idle keep-alive client${TLS:+ TLS} connection ($IDLE connections, 1 worker each, fresh processes):"
    printf '%10s %12s %12s %12s %14s\n' target "before KiB" "holding KiB" "after KiB" "bytes/conn"
    echo "target,connections,rss_before_kb,rss_holding_kb,rss_after_kb,bytes_per_conn" >"$OUT/idle.csv"
    declare -A PER_CONN=()
    for t in lb haproxy nginx; do
        read -r before holding after < <(hold_idle "$t" "${PORT[$t]}" "$IDLE" 500 ${TLS:+--tls})
        PER_CONN[$t]=$(( (holding - before) * 1024 / IDLE ))
        printf '%10s %12s %12s %12s %14s\n' "$t" "$before" "$holding" "$after" "${PER_CONN[$t]}"
        echo "$t,$IDLE,$before,$holding,$after,${PER_CONN[$t]}" >>"$OUT/idle.csv"
    done

    if [[ -z $TLS ]]; then
    # Pooled server connections: every request in flight at once against a
    # replica that answers after 2 s, then all pooled (keepalive IDLE).
    "${PIN_LOAD[@]}" "$BUILD/replica" -p "${PORT[slow]}" -n slow -d 2000 >"$RUN/slow.log" 2>&1 &
    PID[slow]=$!
    track_pid $!
    wait_port "${PID[slow]}" "${PORT[slow]}" "$RUN/slow.log" 10
    sed -e "s/127.0.0.1:${PORT[lb]}/127.0.0.1:${PORT[lbpool]}/" -e "s/keepalive: 32/keepalive: $IDLE/" \
        -e "/- addr:/d" -e "s/^    servers:$/    servers:\n      - addr: 127.0.0.1:${PORT[slow]}/" \
        "$RUN/lb.yaml" >"$RUN/lbpool.yaml"
    "${PIN_PROXY[@]}" "$BUILD/lb" -c "$RUN/lbpool.yaml" >"$RUN/lbpool.log" 2>&1 &
    PID[lbpool]=$!
    track_pid $!
    wait_port "${PID[lbpool]}" "${PORT[lbpool]}" "$RUN/lbpool.log" 10
    read -r before holding after < <(hold_idle lbpool "${PORT[lbpool]}" "$IDLE" "$IDLE")
    both=$(( (holding - before) * 1024 / IDLE ))
    echo "lb, idle pooled server connection: $((both - PER_CONN[lb])) bytes (client + pooled server: $both bytes per pair)"
    echo "lbpool,$IDLE,$before,$holding,$after,$((both - PER_CONN[lb]))" >>"$OUT/idle.csv"
    fi
  } >"$OUT/idle.txt" # not a pipe: the processes started here stay tracked
  cat "$OUT/idle.txt" >&2
fi


# --- measuring ------------------------------------------------------------------

# run_wrk TARGET VARIANT CONNECTIONS SECONDS: one wrk run. Prints
# "requests rps p50_ms p99_ms errors cpu_ns" (cpu_ns -1 for the replica).
run_wrk() {
    local target=$1 variant=$2 conns=$3 secs=$4 before=0 after=0 out
    local args=(-t1 -c "$conns" -d "${secs}s" --latency --timeout 5s)
    [[ $variant == close ]] && args+=(-H 'Connection: close')
    [[ $target == replica ]] || before=$(cpu_ns "$target")
    out=$(timeout --foreground $((secs + 30)) "${PIN_LOAD[@]}" wrk "${args[@]}" "$(url "$target")" 2>&1) \
        || die "wrk against $target ($variant) failed: $out"
    [[ $target == replica ]] || after=$(cpu_ns "$target")
    kill -0 "${PID[$target]}" 2>/dev/null || die "$target died during the run; log: $RUN/$target.log"
    printf '%s\n' "$out" >>"$RUN/wrk.log"
    # wrk prints e.g. "  123456 requests in 5.00s, ...", "Requests/sec: 24690.12",
    # "     50%  245.00us" (units us, ms, s, m, h), "  Socket errors: connect 0,
    # read 0, write 0, timeout 0", "  Non-2xx or 3xx responses: 3".
    awk -v cpu=$((after - before)) -v proxy="$([[ $target == replica ]] && echo 0 || echo 1)" "$WRK_AWK_MS"'
        / requests in /              { requests = $1 }
        /^Requests\/sec:/            { rps = $2 }
        $1 == "50%"                  { p50 = ms($2) }
        $1 == "99%"                  { p99 = ms($2) }
        /Socket errors:/             { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/  { errors += $NF }
        END {
            if (requests == "" || rps == "" || p50 == "" || p99 == "") exit 1
            printf "%.0f %.2f %.3f %.3f %.0f %.0f\n", requests, rps, p50, p99, errors, proxy ? cpu : -1
        }' <<<"$out" || die "cannot parse wrk output for $target ($variant):"$'\n'"$out"
}

echo "round,variant,target,connections,seconds,requests,rps,p50_ms,p99_ms,errors,cpu_ns,cpu_us_per_req" >"$OUT/runs.csv"
ntargets=${#TARGETS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    for variant in "${VARIANTS[@]}"; do
        for ((k = 0; k < ntargets; k++)); do
            target=${TARGETS[$(((k + round - 1) % ntargets))]}
            read -r requests rps p50 p99 errors cpu < <(run_wrk "$target" "$variant" "$CONNECTIONS" "$DURATION_S") \
                || die "run failed"
            cpu_req=$(awk -v c="$cpu" -v n="$requests" 'BEGIN { if (c < 0 || n == 0) print ""; else printf "%.3f", c / n / 1000 }')
            echo "$round,$variant,$target,$CONNECTIONS,$DURATION_S,$requests,$rps,$p50,$p99,$errors,$cpu,$cpu_req" >>"$OUT/runs.csv"
            say "round $round/$ROUNDS $variant $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, cpu ${cpu_req:--} us/req${errors:+, errors $errors}"
        done
    done
done

# --- the table --------------------------------------------------------------------

# Medians over rounds per (variant, target), from runs.csv; then the ratios.
awk -F, -v targets="${TARGETS[*]}" -v variants="${VARIANTS[*]}" -v pairs="${WORKER_PAIRS[*]}" \
    -v csv="$OUT/results.csv" -v conns="$CONNECTIONS" -v secs="$DURATION_S" -v rounds="$ROUNDS" '
    function median(key,    n, i, j, t, a) {
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return ""
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, v) { if (v != "") vals[key] = vals[key] " " v }
    NR > 1 {
        k = $2 SUBSEP $3
        add(k SUBSEP "rps", $7); add(k SUBSEP "p50", $8); add(k SUBSEP "p99", $9)
        add(k SUBSEP "cpu", $12); err[k] += $10
        if (!(k in lo) || $7 + 0 < lo[k]) lo[k] = $7 + 0
        if (!(k in hi) || $7 + 0 > hi[k]) hi[k] = $7 + 0
    }
    END {
        nt = split(targets, T, " "); nv = split(variants, V, " ")
        printf "%d connections, %ds per run, %d rounds; medians over rounds\n\n", conns, secs, rounds
        fmt = "%-10s %-8s %10s %17s %8s %8s %10s %7s %12s %12s\n"
        printf fmt, "variant", "target", "req/s", "min..max", "p50 ms", "p99 ms", "cpu us/req", "errors", "lb/this req/s", "lb/this cpu"
        print "variant,target,rps,rps_min,rps_max,p50_ms,p99_ms,cpu_us_per_req,errors,lb_over_this_rps,lb_over_this_cpu" > csv
        for (v = 1; v <= nv; v++) {
            lbk = V[v] SUBSEP "lb"
            lbrps = median(lbk SUBSEP "rps"); lbcpu = median(lbk SUBSEP "cpu")
            for (t = 1; t <= nt; t++) {
                k = V[v] SUBSEP T[t]
                rps = median(k SUBSEP "rps"); cpu = median(k SUBSEP "cpu")
                rr = (rps > 0 && lbrps != "") ? sprintf("%.2f", lbrps / rps) : "-"
                cr = (cpu != "" && cpu > 0 && lbcpu != "") ? sprintf("%.2f", lbcpu / cpu) : "-"
                if (T[t] == "lb") { rr = "1.00"; cr = (cpu != "") ? "1.00" : "-" }
                printf fmt, V[v], T[t], sprintf("%.0f", rps), sprintf("%.0f..%.0f", lo[k], hi[k]),
                    sprintf("%.2f", median(k SUBSEP "p50")), sprintf("%.2f", median(k SUBSEP "p99")),
                    cpu == "" ? "-" : sprintf("%.2f", cpu), err[k] + 0, rr, cr
                printf "%s,%s,%.2f,%.2f,%.2f,%.3f,%.3f,%s,%d,%s,%s\n", V[v], T[t], rps, lo[k], hi[k],
                    median(k SUBSEP "p50"), median(k SUBSEP "p99"), cpu == "" ? "" : sprintf("%.3f", cpu),
                    err[k] + 0, rr == "-" ? "" : rr, cr == "-" ? "" : cr > csv
            }
            if (v < nv) print ""
        }
        np = split(pairs, P, " ")
        for (p = 1; p <= np; p++) {
            split(P[p], pair, ":")
            second = ""
            for (v = 1; v <= nv; v++) {
                one = median(V[v] SUBSEP pair[1] SUBSEP "cpu"); two = median(V[v] SUBSEP pair[2] SUBSEP "cpu")
                if (one != "" && two != "" && one > 0)
                    second = second sprintf("%s %s %.2fx", second == "" ? "" : ",", V[v], two / one)
            }
            if (second == "") continue
            if (p == 1) printf "\na second worker, CPU per request of two workers over one (both unpinned):\n"
            printf "  %-26s %s\n", pair[2] " over " pair[1] ":", second
        }
    }' "$OUT/runs.csv" >"$OUT/table.tmp"
{
    echo "lb benchmark${TLS:+ over TLS ($TLS certificate; close = a full handshake per request)}, $(date '+%F %T'), $CPU_MODEL, proxy on CPU $PROXY_CPU, wrk + 3 replicas on CPU $LOAD_CPU"
    cat "$OUT/table.tmp"
} >"$OUT/results.txt"
rm -f "$OUT/table.tmp"
echo
cat "$OUT/results.txt"

# --- concurrency sweep --------------------------------------------------------------

if [[ $SWEEP != 0 ]]; then
    echo "# connections lb_rps haproxy_rps lb_cpu_us_per_req haproxy_cpu_us_per_req" >"$OUT/sweep.dat"
    for c in $SWEEP_CONNECTIONS; do
        line="$c"
        cpus=""
        for t in lb haproxy; do
            read -r requests rps _ _ _ cpu < <(run_wrk "$t" keepalive "$c" "$SWEEP_DURATION_S") || die "sweep run failed"
            line+=" $rps"
            cpus+=" $(awk -v c="$cpu" -v n="$requests" 'BEGIN { printf "%.3f", n ? c / n / 1000 : 0 }')"
            say "sweep $c connections $t: $rps req/s"
        done
        echo "$line$cpus" >>"$OUT/sweep.dat"
    done
    gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 900,560 font "sans,10"
set output "$OUT/sweep.png"
set title "lb vs HAProxy, keep-alive GET /, 1 worker on CPU $PROXY_CPU: $(date '+%F %H:%M'), $CPU_MODEL" noenhanced
set xlabel "concurrent connections"
set ylabel "requests per second"
set logscale x 2
set xrange [$(echo "$SWEEP_CONNECTIONS" | awk '{ lo = hi = $1; for (i = 2; i <= NF; i++) { if ($i < lo) lo = $i; if ($i > hi) hi = $i } printf "%g:%g", lo / 1.25, hi * 1.25 }')]
set xtics ($(echo "$SWEEP_CONNECTIONS" | awk '{ for (i = 1; i <= NF; i++) printf "%s\"%s\" %s", (i > 1 ? ", " : ""), $i, $i }'))
set yrange [0:*]
set grid
set key bottom right
plot "$OUT/sweep.dat" using 1:2 with linespoints lw 2 pt 7 title "lb", \
     "$OUT/sweep.dat" using 1:3 with linespoints lw 2 pt 5 title "HAProxy"
EOF
    echo
    echo "sweep (keep-alive, ${SWEEP_DURATION_S}s per run):"
    awk 'NR == 1 { printf "%12s %10s %10s %8s\n", "connections", "lb req/s", "haproxy", "lb/hap"; next }
         { printf "%12s %10.0f %10.0f %8.2f\n", $1, $2, $3, ($3 > 0 ? $2 / $3 : 0) }' "$OUT/sweep.dat"
fi
[[ $IDLE -gt 0 ]] && { echo; cat "$OUT/idle.txt"; }
echo
echo "bench: results in $OUT/results.txt, $OUT/results.csv, $OUT/runs.csv$([[ $SWEEP != 0 ]] && echo ", $OUT/sweep.png, $OUT/sweep.dat")$([[ $IDLE -gt 0 ]] && echo ", $OUT/idle.csv")"
