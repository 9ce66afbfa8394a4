#!/bin/bash
# overload.sh (make bench, after bench.sh): the demonstration of issue 15.
# Servers that collapse past their best concurrency, and what a load
# balancer in front of them does about it: throughput and p99 latency
# against concurrent clients, lb against HAProxy, with and without limits.
#
# The servers
#   Three test replicas in overload mode, build/replica -o N -d MS (see
#   test/replica/replica.c): a request that finds c requests in service,
#   itself included, takes MS x max(1, (c/N)^2) ms, on a timer. Up to N at
#   once each request costs MS; beyond, each one slows down more than
#   proportionally, so a replica's throughput, N^2 / (MS x c) per ms, falls
#   as its load c grows: the chapter's overloaded database. At c = N a
#   replica serves its best, N / MS per ms.
#
#   Defaults N=32, MS=10: each replica peaks at 3,200 req/s, the three at
#   9,600, reached at 3N = 96 concurrent requests. So the sweep sees the
#   chapter's curve: through a proxy, 32 and 64 clients are below the knee,
#   128 past it, 256 and 512 far past; one replica alone (direct) passes
#   it at 64. 9,600 req/s is an eighth of what one proxy worker forwards
#   on CPU 0 in bench.sh (80,000 keep-alive req/s; "proxy cpu" stays near
#   20%), and costs wrk and the replicas on CPU 1 a fraction of it, so
#   neither proxy nor load generator is ever the bottleneck: every
#   difference between the rows is what each target does with the
#   replicas' concurrency. A smaller N puts the knee below the sweep
#   (N=8: 24 clients for three replicas) and makes the service times past
#   it too long to measure in a few seconds (N=8, MS=10: 41 s a request
#   for direct at 512 clients).
#
#   Round robin without a limit does worse than an even split of the
#   clients: a replica that falls behind holds its requests longer, so it
#   collects more of the clients in service and slows further, until it
#   holds nearly all of them ("peak" shows it: about 250 of 256).
#
# The targets (wrk: keep-alive GET /, -t1, --latency, --timeout 30s)
#   direct           wrk straight at one replica: the dip itself (a third
#                    of the capacity of the proxied targets)
#   haproxy          HAProxy, round robin over the three, no maxconn
#   haproxy-maxconn  the same with "maxconn N" on every server (the limit
#                    tuned by hand) and "timeout queue 30s", so that no
#                    queued request times out at 512 clients
#   lb               lb, round robin, no limits (today's behaviour)
#   lb-limit         lb with max_connections: N, queue.max 10000 and
#                    timeouts.queue 30s in the backend (SPEC 13)
#   lb-auto          lb with max_connections: auto (default cap) and the
#                    same queue: the adaptive limit, not told N
#   Each proxy runs one worker (lb workers: 1, haproxy nbthread 1) pinned to
#   CPU 0, the replicas and wrk share CPU 1 (as in bench.sh), pooled
#   keep-alive server connections, no health checks, no access log. The
#   configurations are generated into build/bench/overload-run/. If lb -t
#   refuses the configuration of lb-limit or lb-auto (a build without
#   SPEC 13's keys), that target is skipped with a message, not failed.
#
# Method
#   For each concurrency (BENCH_OVERLOAD_CONNECTIONS) every target runs once
#   for BENCH_OVERLOAD_DURATION, the starting target rotating from one
#   concurrency to the next; BENCH_OVERLOAD_ROUNDS sweeps repeat all that,
#   and the table has the medians (the machine is shared: another job's
#   burst on a CPU shows as a stall of a run, a low req/s and a high p99;
#   rounds and BENCH_NICE=-10 help). Before each run the script waits until no
#   request is in service on any replica (abandoned requests finish their
#   time, as queries do; /stats "in_flight") and resets their peaks
#   (/control/reset-peak); after it, "peak" is the highest peak_in_flight of
#   the replicas: the concurrency the target let reach a server. Proxy CPU
#   is read from /proc/PID/task/*/schedstat before and after each run.
#
# Output (stdout, build/bench/overload.txt, .csv, .dat, .png; every
# single run in overload-runs.csv)
#   req/s         completed requests per second (wrk); median over rounds,
#                 and with more than one round the lowest and highest
#   of peak       req/s over this target's best req/s in the sweep
#   p50, p99      latency percentiles of the completed requests, ms
#   errors        wrk socket errors (connect, read, write, timeout)
#   non-2xx       answers other than 2xx/3xx (503 from a full queue, ...)
#   peak          the most requests in service at once on one replica
#   proxy cpu     the proxy's CPU time over the run's wall time, %
#   Then the goals of issue 15 where their rows exist, and overload.png:
#   throughput and p99 (log scale) against concurrency, one line per target,
#   with the three replicas' capacity min(c, 3N) / MS as a dashed line.
#
# Environment (defaults)
#   BENCH_OVERLOAD_CONNECTIONS="32 64 128 256 512"
#   BENCH_OVERLOAD_DURATION=8s  BENCH_OVERLOAD_ROUNDS=1
#   BENCH_OVERLOAD_N=32  BENCH_OVERLOAD_MS=10   (replica -o N -d MS)
#   BENCH_OVERLOAD_TARGETS="direct haproxy haproxy-maxconn lb lb-limit lb-auto"
#   BENCH_OVERLOAD_PORT_BASE=18100  (replicas BASE+1..3, lb BASE+10,
#                           haproxy BASE+11, haproxy-maxconn BASE+12,
#                           lb-limit BASE+13, lb-auto BASE+14)
#   BENCH_NICE=0        (as in bench.sh)
#   BUILD=build  LB_BIN=$BUILD/lb  REPLICA_BIN=$BUILD/replica
#   BENCH_OVERLOAD_OUT=$BUILD/bench
# With the defaults: 6 targets x 5 concurrencies x 8 s, plus the waits for
# the replicas to drain between runs (up to 2.6 s after direct at 512):
# about four and a half minutes (three without lb-limit and lb-auto).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
LB_BIN=${LB_BIN:-$BUILD/lb}
REPLICA_BIN=${REPLICA_BIN:-$BUILD/replica}
OUT=${BENCH_OVERLOAD_OUT:-$BUILD/bench}
RUN=$OUT/overload-run
CONNECTIONS=${BENCH_OVERLOAD_CONNECTIONS:-32 64 128 256 512}
DURATION=${BENCH_OVERLOAD_DURATION:-8s}
ROUNDS=${BENCH_OVERLOAD_ROUNDS:-1}
N=${BENCH_OVERLOAD_N:-32}
MS=${BENCH_OVERLOAD_MS:-10}
WANTED=${BENCH_OVERLOAD_TARGETS:-direct haproxy haproxy-maxconn lb lb-limit lb-auto}
PORT_BASE=${BENCH_OVERLOAD_PORT_BASE:-18100}
NICE=${BENCH_NICE:-0}
DRAIN_LIMIT=120 # seconds to wait for the replicas to finish abandoned requests

PROXY_CPU=0
LOAD_CPU=1
ALL_TARGETS=(direct haproxy haproxy-maxconn lb lb-limit lb-auto)
REPLICA_PORTS=($((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)))
declare -A PORT=([direct]=$((PORT_BASE + 1)) [lb]=$((PORT_BASE + 10)) [haproxy]=$((PORT_BASE + 11))
                 [haproxy-maxconn]=$((PORT_BASE + 12)) [lb-limit]=$((PORT_BASE + 13)) [lb-auto]=$((PORT_BASE + 14)))
declare -A PID=()

die() { echo "overload: $*" >&2; exit 1; }
say() { echo "overload: $*" >&2; }

# Processes (tracked, stopped on exit), durations, pinning: proclib.sh.
# shellcheck source=scripts/proclib.sh
source "$(dirname "$0")/proclib.sh"

# --- checks ------------------------------------------------------------------

DURATION_S=$(seconds "$DURATION")
for n in "$DURATION_S" "$ROUNDS" "$N" "$MS" "$PORT_BASE" $CONNECTIONS; do
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "expected a positive integer, got '$n'"
done
[[ $NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer, got '$NICE'"
TARGETS=()
for t in $WANTED; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target '$t' (targets: ${ALL_TARGETS[*]})"
    TARGETS+=("$t")
done
[[ ${#TARGETS[@]} -gt 0 ]] || die "BENCH_OVERLOAD_TARGETS names no target"

missing=""
for tool in wrk haproxy curl taskset timeout awk gnuplot; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[[ -z $missing ]] || die "missing:$missing (scripts/deps.sh --bench, or apt-get install -y wrk haproxy gnuplot-nox curl)"
for bin in "$LB_BIN" "$REPLICA_BIN"; do
    [[ -x $bin ]] || die "$bin not built (run make)"
done
"$REPLICA_BIN" -h | grep -q -- '-o N' || die "$REPLICA_BIN has no overload mode (-o): rebuild it (make)"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (proxies on CPU $PROXY_CPU, load on CPU $LOAD_CPU)"

# 512 clients through a proxy: about three descriptors each.
raise_fd_limit
pin_commands "$PROXY_CPU" "$LOAD_CPU" "$NICE"

# --- configurations ------------------------------------------------------------

mkdir -p "$OUT"
rm -rf "$RUN"
mkdir -p "$RUN"

servers_lb="" servers_haproxy="" servers_haproxy_maxconn=""
for i in 0 1 2; do
    p=${REPLICA_PORTS[$i]}
    servers_lb+="      - addr: 127.0.0.1:$p"$'\n'
    servers_haproxy+="    server r$((i + 1)) 127.0.0.1:$p"$'\n'
    servers_haproxy_maxconn+="    server r$((i + 1)) 127.0.0.1:$p maxconn $N"$'\n'
done

# lb_config NAME LIMITS QUEUE_TIMEOUT: an lb for target NAME; LIMITS are
# extra backend lines (SPEC 13), QUEUE_TIMEOUT an extra line of timeouts.
lb_config() {
    local name=$1 limits=$2 queue_timeout=$3
    cat <<EOF
# Generated by scripts/overload.sh ($name).
global:
  workers: 1
  max_connections: 4000
  grace: 1s
  log:
    level: error
    target: stderr
  access_log: off

listeners:
  - name: $name
    bind: "127.0.0.1:${PORT[$name]}"
    mode: http
    backend: replicas

backends:
  - name: replicas
    balance: round_robin
    servers:
${servers_lb%$'\n'}
    health_check:
      type: none
    keepalive: 1024
${limits}    timeouts:
      connect: 2s
      response: 60s
${queue_timeout}
EOF
}
lb_config lb "" "" >"$RUN/lb.yaml"
lb_config lb-limit "    max_connections: $N
    queue:
      max: 10000
" "      queue: 30s" >"$RUN/lb-limit.yaml"
lb_config lb-auto "    max_connections: auto
    queue:
      max: 10000
" "      queue: 30s" >"$RUN/lb-auto.yaml"

cat >"$RUN/haproxy.cfg" <<EOF
# Generated by scripts/overload.sh (haproxy and haproxy-maxconn).
global
    nbthread 1
    maxconn 8000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 30s
    option http-keep-alive
    http-reuse always

frontend haproxy
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend replicas

frontend haproxy-maxconn
    bind 127.0.0.1:${PORT[haproxy-maxconn]}
    default_backend replicas-maxconn

backend replicas
    balance roundrobin
${servers_haproxy%$'\n'}

backend replicas-maxconn
    balance roundrobin
${servers_haproxy_maxconn%$'\n'}
EOF

haproxy -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 || die "haproxy rejects $RUN/haproxy.cfg: $(cat "$RUN/haproxy.log")"
SKIPPED=()
RUNNING=()
for t in "${TARGETS[@]}"; do
    if [[ $t == lb* ]]; then
        if ! "$LB_BIN" -t -c "$RUN/$t.yaml" >"$RUN/$t.log" 2>&1; then
            [[ $t == lb ]] && die "$LB_BIN rejects $RUN/lb.yaml: $(cat "$RUN/$t.log")"
            say "skipping $t: $LB_BIN refuses its configuration (SPEC 13's overload keys are not in this build?): $(head -n 1 "$RUN/$t.log")"
            SKIPPED+=("$t")
            continue
        fi
    fi
    RUNNING+=("$t")
done
[[ ${#RUNNING[@]} -gt 0 ]] || die "no target left to run"

# --- start ------------------------------------------------------------------------

for t in "${RUNNING[@]}" replica2 replica3; do
    case $t in replica2) port=${REPLICA_PORTS[1]} ;; replica3) port=${REPLICA_PORTS[2]} ;; *) port=${PORT[$t]} ;; esac
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (set BENCH_OVERLOAD_PORT_BASE to move all ports)"
    fi
done
for i in 0 1 2; do
    name=replica$((i + 1))
    "${PIN_LOAD[@]}" "$REPLICA_BIN" -p "${REPLICA_PORTS[$i]}" -n "$name" -o "$N" -d "$MS" >"$RUN/$name.log" 2>&1 &
    PID[$name]=$!
    track_pid $!
done
for i in 0 1 2; do
    wait_port "${PID[replica$((i + 1))]}" "${REPLICA_PORTS[$i]}" "$RUN/replica$((i + 1)).log" 10
done
PID[direct]=${PID[replica1]}

haproxy_started=0
for t in "${RUNNING[@]}"; do
    case $t in
        direct) ;;
        haproxy | haproxy-maxconn)
            if [[ $haproxy_started == 0 ]]; then
                "${PIN_PROXY[@]}" haproxy -db -f "$RUN/haproxy.cfg" >>"$RUN/haproxy.log" 2>&1 &
                PID[haproxy]=$!
                track_pid $!
                haproxy_started=1
            fi
            PID[$t]=${PID[haproxy]}
            wait_port "${PID[$t]}" "${PORT[$t]}" "$RUN/haproxy.log" 10
            ;;
        lb*)
            "${PIN_PROXY[@]}" "$LB_BIN" -c "$RUN/$t.yaml" >>"$RUN/$t.log" 2>&1 &
            PID[$t]=$!
            track_pid $!
            wait_port "${PID[$t]}" "${PORT[$t]}" "$RUN/$t.log" 10
            ;;
    esac
done

# replica_field PORT FIELD: a number from the replica's /stats.
replica_field() {
    local body v
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$1/stats") || die "GET /stats on :$1 failed"
    v=$(sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$body")
    [[ -n $v ]] || die "no $2 in /stats of :$1: $body"
    echo "$v"
}

# check_target NAME: GET / answers 200, and a proxy spreads 6 requests over
# all three replicas.
check_target() {
    local name=$1 body names=()
    for _ in 1 2 3 4 5 6; do
        body=$(curl -sS --max-time 10 -o - -w '\n%{http_code}' "http://127.0.0.1:${PORT[$name]}/") \
            || die "$name: GET / failed"
        [[ ${body##*$'\n'} == 200 ]] || die "$name: GET / answered ${body##*$'\n'}, not 200"
        names+=("${body%%$'\n'*}")
    done
    if [[ $name != direct ]]; then
        local distinct
        distinct=$(printf '%s\n' "${names[@]}" | sort -u | wc -l)
        [[ $distinct == 3 ]] || die "$name: 6 requests reached $distinct replica(s), not 3: ${names[*]}"
    fi
}
for t in "${RUNNING[@]}"; do check_target "$t"; done

# wait_idle: until no replica has a request in service (the ones a run's
# clients abandoned run their time out), then reset their peaks.
wait_idle() {
    local deadline=$((SECONDS + DRAIN_LIMIT)) p busy v
    while :; do
        busy=0
        for p in "${REPLICA_PORTS[@]}"; do
            v=$(replica_field "$p" in_flight)
            busy=$((busy + v))
        done
        [[ $busy == 0 ]] && break
        ((SECONDS < deadline)) || die "the replicas still have $busy requests in service after ${DRAIN_LIMIT}s"
        sleep 0.2
    done
    for p in "${REPLICA_PORTS[@]}"; do
        curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$p/control/reset-peak" || die "reset-peak on :$p failed"
    done
}

# peak_in_service TARGET: the highest peak_in_flight of the replicas the
# target reaches.
peak_in_service() {
    local p best=0 v ports=("${REPLICA_PORTS[@]}")
    [[ $1 == direct ]] && ports=("${PORT[direct]}")
    for p in "${ports[@]}"; do
        v=$(replica_field "$p" peak_in_flight)
        ((v > best)) && best=$v
    done
    echo "$best"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
HEADER="overload (issue 15), $(date '+%F %T'), $CPU_MODEL: 3 replicas -o $N -d $MS (peak $((3 * N * 1000 / MS)) req/s at $((3 * N)) in service; direct: one replica, $((N * 1000 / MS)) at $N) on CPU $LOAD_CPU with wrk; proxies on CPU $PROXY_CPU, 1 worker; wrk keep-alive, ${DURATION_S}s per point"
say "$(date '+%F %T'), $CPU_MODEL, $(nproc) CPUs; $("$LB_BIN" -V 2>&1 | head -n 1) ($LB_BIN), $(haproxy -v | head -n 1 | awk '{ print "HAProxy " $3 }')"
say "targets: ${RUNNING[*]}${SKIPPED[*]:+ (skipped: ${SKIPPED[*]})}; replicas -o $N -d $MS"

# --- measuring ------------------------------------------------------------------

# run_wrk TARGET CONNECTIONS: one run. Prints "requests rps p50_ms p99_ms
# socket_errors non2xx peak cpu_percent" (cpu -1 for direct).
run_wrk() {
    local target=$1 conns=$2 before=0 after=0 t0 t1 out peak
    wait_idle
    [[ $target == direct ]] || before=$(cpu_ns "$target")
    t0=$(date +%s%N)
    out=$(timeout --foreground $((DURATION_S + 60)) "${PIN_LOAD[@]}" wrk -t1 -c "$conns" -d "${DURATION_S}s" \
            --latency --timeout 30s "http://127.0.0.1:${PORT[$target]}/" 2>&1) \
        || die "wrk against $target ($conns connections) failed: $out"
    t1=$(date +%s%N)
    [[ $target == direct ]] || after=$(cpu_ns "$target")
    kill -0 "${PID[$target]}" 2>/dev/null || die "$target died during the run; log: $RUN/$target.log"
    peak=$(peak_in_service "$target")
    printf '== %s %s\n%s\n' "$target" "$conns" "$out" >>"$RUN/wrk.log"
    # wrk: "  123456 requests in 5.00s, ...", "Requests/sec: 24690.12",
    # "     50%  245.00us" (us, ms, s, m, h), "  Socket errors: connect 0,
    # read 0, write 0, timeout 0", "  Non-2xx or 3xx responses: 3". With no
    # request completed there are no percentiles: "-".
    awk -v cpu=$((after - before)) -v wall=$((t1 - t0)) -v proxy="$([[ $target == direct ]] && echo 0 || echo 1)" \
        -v peak="$peak" "$WRK_AWK_MS"'
        / requests in /              { requests = $1 }
        /^Requests\/sec:/            { rps = $2 }
        $1 == "50%"                  { p50 = sprintf("%.3f", ms($2)) }
        $1 == "99%"                  { p99 = sprintf("%.3f", ms($2)) }
        /Socket errors:/             { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/  { non2xx += $NF }
        END {
            if (requests == "" || rps == "") exit 1
            if (requests == 0 || p50 == "") { p50 = "-"; p99 = "-" }
            printf "%.0f %.2f %s %s %.0f %.0f %d %s\n", requests, rps, p50, p99, errors, non2xx, peak,
                proxy ? sprintf("%.1f", 100 * cpu / wall) : "-1"
        }' <<<"$out" || die "cannot parse wrk output for $target ($conns):"$'\n'"$out"
}

echo "round,target,connections,seconds,requests,rps,p50_ms,p99_ms,socket_errors,non_2xx,replica_peak_in_flight,proxy_cpu_percent" \
    >"$OUT/overload-runs.csv"
nrun=${#RUNNING[@]}
k0=0
started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    for c in $CONNECTIONS; do
        for ((k = 0; k < nrun; k++)); do
            t=${RUNNING[$(((k + k0) % nrun))]}
            read -r requests rps p50 p99 errors non2xx peak cpu < <(run_wrk "$t" "$c") || die "run failed"
            echo "$round,$t,$c,$DURATION_S,$requests,$rps,$p50,$p99,$errors,$non2xx,$peak,$cpu" >>"$OUT/overload-runs.csv"
            say "round $round/$ROUNDS, $c clients, $t: $rps req/s, p50 $p50 ms, p99 $p99 ms, peak $peak in service, errors $errors, non-2xx $non2xx"
        done
        k0=$((k0 + 1))
    done
done
wait_idle

# --- the table, the goals, the figure ------------------------------------------------

# overload.csv: per target (in ALL_TARGETS order) and connections, the
# medians over rounds ("-" where no request completed in any), errors
# summed, the highest peak.
awk -F, -v targets="${RUNNING[*]}" -v list="$CONNECTIONS" '
    function median(key,    n, i, j, t, a) {
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return "-"
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, v) { if (v != "-" && v != "") vals[key] = vals[key] " " v }
    NR > 1 {
        k = $2 SUBSEP $3
        secs[k] = $4; rounds[k]++
        add(k SUBSEP "rps", $6); add(k SUBSEP "p50", $7); add(k SUBSEP "p99", $8)
        if ($12 >= 0) add(k SUBSEP "cpu", $12)
        err[k] += $9; non[k] += $10
        if (!(k in peak) || $11 + 0 > peak[k]) peak[k] = $11 + 0
        if (!(k in lo) || $6 + 0 < lo[k]) lo[k] = $6 + 0
        if (!(k in hi) || $6 + 0 > hi[k]) hi[k] = $6 + 0
    }
    function num(v, f) { return v == "-" ? "-" : sprintf(f, v) }
    END {
        print "target,connections,seconds,rounds,rps,rps_min,rps_max,p50_ms,p99_ms,socket_errors,non_2xx,replica_peak_in_flight,proxy_cpu_percent"
        nt = split(targets, T, " "); nc = split(list, C, " ")
        for (t = 1; t <= nt; t++)
            for (c = 1; c <= nc; c++) {
                k = T[t] SUBSEP C[c]
                if (!(k in rounds) || seen[k]++) continue
                cpu = median(k SUBSEP "cpu")
                printf "%s,%s,%s,%d,%.2f,%.2f,%.2f,%s,%s,%d,%d,%d,%s\n", T[t], C[c], secs[k], rounds[k],
                    median(k SUBSEP "rps"), lo[k], hi[k], num(median(k SUBSEP "p50"), "%.3f"),
                    num(median(k SUBSEP "p99"), "%.3f"), err[k], non[k], peak[k], (cpu == "-" ? "" : sprintf("%.1f", cpu))
            }
    }' "$OUT/overload-runs.csv" >"$OUT/overload.csv"

{
    echo "$HEADER"
    [[ ${#SKIPPED[@]} -eq 0 ]] || echo "skipped (lb -t refuses their configuration): ${SKIPPED[*]}"
    echo
    awk -F, -v rounds="$ROUNDS" '
        NR == 1 { next }
        { row[NR] = $0; if ($5 + 0 > best[$1]) best[$1] = $5 + 0 }
        END {
            fmt = "%-16s %6s %9s %s%8s %9s %9s %7s %8s %6s %10s\n"
            printf fmt, "target", "conns", "req/s", (rounds > 1 ? sprintf("%13s ", "min..max") : ""), "of peak",
                "p50 ms", "p99 ms", "errors", "non-2xx", "peak", "proxy cpu"
            for (i = 2; i <= NR; i++) {
                split(row[i], f, ",")
                if (i > 2 && f[1] != last) print ""
                last = f[1]
                printf fmt, f[1], f[2], sprintf("%.0f", f[5]), (rounds > 1 ? sprintf("%13s ", sprintf("%.0f..%.0f", f[6], f[7])) : ""),
                    (best[f[1]] > 0 ? sprintf("%.2f", f[5] / best[f[1]]) : "-"),
                    (f[8] == "-" ? "-" : sprintf("%.1f", f[8])), (f[9] == "-" ? "-" : sprintf("%.1f", f[9])),
                    f[10], f[11], f[12], (f[13] == "" ? "-" : f[13] "%")
            }
        }' "$OUT/overload.csv"

    # Issue 15's goals, where both rows exist: lb-auto at 256 and 512
    # within 10% of its own peak with a p99 below HAProxy's without
    # maxconn; lb-limit at least HAProxy-maxconn's req/s and at most its p99.
    awk -F, -v list="$CONNECTIONS" '
        NR == 1 { next }
        { rps[$1, $2] = $5; p99[$1, $2] = $9; if ($5 + 0 > best[$1]) best[$1] = $5 + 0; have[$1] = 1 }
        function v(x) { return x == "-" ? 1e12 : x + 0 }
        function ms(x) { return x == "-" ? "-" : sprintf("%.1f", x) }
        END {
            out = ""
            nc = split(list, C, " ")
            if (have["lb-auto"])
                for (i = 1; i <= nc; i++) if (C[i] + 0 >= 256 && (("lb-auto", C[i]) in rps)) {
                    c = C[i]
                    line = sprintf("  lb-auto, %d clients: %.0f%% of its peak (goal >= 90%%)", c, 100 * rps["lb-auto", c] / best["lb-auto"])
                    if (("haproxy", c) in p99)
                        line = line sprintf(", p99 %s ms vs haproxy %s ms (goal: below)", ms(p99["lb-auto", c]), ms(p99["haproxy", c]))
                    out = out line "\n"
                }
            if (have["lb-limit"] && have["haproxy-maxconn"])
                for (i = 1; i <= nc; i++) if ((("lb-limit", C[i]) in rps) && (("haproxy-maxconn", C[i]) in rps)) {
                    c = C[i]
                    out = out sprintf("  lb-limit / haproxy-maxconn, %d clients: req/s %.2f (goal >= 1), p99 %.2f (goal <= 1)\n", c,
                        rps["haproxy-maxconn", c] > 0 ? rps["lb-limit", c] / rps["haproxy-maxconn", c] : 0,
                        v(p99["haproxy-maxconn", c]) > 0 ? v(p99["lb-limit", c]) / v(p99["haproxy-maxconn", c]) : 0)
                }
            if (out != "") {
                print ""
                print "goals (issue 15):"
                printf "%s", out
            }
        }' "$OUT/overload.csv"
} >"$OUT/overload.txt"
echo
cat "$OUT/overload.txt"

# overload.dat: connections, capacity, then req/s and p99 per target ("?" =
# no data).
{
    printf '# connections capacity'
    for t in "${RUNNING[@]}"; do printf ' %s_rps %s_p99' "$t" "$t"; done
    echo
    for c in $CONNECTIONS; do
        printf '%s %s' "$c" "$(( (c < 3 * N ? c : 3 * N) * 1000 / MS ))"
        for t in "${RUNNING[@]}"; do
            awk -F, -v t="$t" -v c="$c" '$1 == t && $2 == c { printf " %s %s", $5, ($9 == "-" ? "?" : $9); found = 1 }
                END { if (!found) printf " ? ?" }' "$OUT/overload.csv"
        done
        echo
    done
} >"$OUT/overload.dat"

xrange=$(echo "$CONNECTIONS" | awk '{ lo = hi = $1; for (i = 2; i <= NF; i++) { if ($i < lo) lo = $i; if ($i > hi) hi = $i } printf "%g:%g", lo / 1.25, hi * 1.25 }')
xtics=$(echo "$CONNECTIONS" | awk '{ for (i = 1; i <= NF; i++) printf "%s\"%s\" %s", (i > 1 ? ", " : ""), $i, $i }')
# One style per target, the same in both panels: HAProxy dashed, lb solid.
declare -A STYLE=([direct]='lc rgb "#555555" dt 1 pt 9' [haproxy]='lc rgb "#d62728" dt 2 pt 5'
                  [haproxy-maxconn]='lc rgb "#ff9f1c" dt 2 pt 5' [lb]='lc rgb "#9467bd" dt 1 pt 7'
                  [lb-limit]='lc rgb "#1f77b4" dt 1 pt 7' [lb-auto]='lc rgb "#2ca02c" dt 1 pt 7')
rps_plots="" p99_plots="" i=0
for t in "${RUNNING[@]}"; do
    i=$((i + 1))
    rps_plots+=", \"$OUT/overload.dat\" using 1:$((1 + 2 * i)) with linespoints lw 2 ${STYLE[$t]} title \"$t\""
    p99_plots+="${p99_plots:+, }\"$OUT/overload.dat\" using 1:$((2 + 2 * i)) with linespoints lw 2 ${STYLE[$t]} title \"$t\""
done
gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 1400,560 font "sans,10"
set output "$OUT/overload.png"
set datafile missing "?"
set multiplot layout 1,2 title "Overloaded replicas (-o $N -d $MS: best at $N in service each), wrk keep-alive ${DURATION_S}s per point, $(date '+%F %H:%M')" noenhanced
set logscale x 2
set xrange [$xrange]
set xtics ($xtics)
set xlabel "concurrent clients"
set grid
set key center right noenhanced
set title "throughput"
set ylabel "requests per second"
set yrange [0:*]
plot "$OUT/overload.dat" using 1:2 with lines dt 3 lw 2 lc rgb "gray60" title "capacity of the 3 replicas"$rps_plots
set title "p99 latency"
set ylabel "p99, ms (log scale)"
set logscale y 10
set yrange [*:*]
set key top left noenhanced
plot $p99_plots
unset multiplot
EOF
echo
say "$((SECONDS - started)) s of runs; results in $OUT/overload.txt, $OUT/overload.csv, $OUT/overload-runs.csv, $OUT/overload.dat, $OUT/overload.png (configs and wrk output in $RUN/)"
