# proclib.sh: what the benchmark scripts share (bench.sh, bench-h2.sh, overload.sh,
# rolling-restart.sh, callgrind.sh; sourced, after the script has defined
# die): process handling, durations, pinning, the descriptor limit, CPU
# time, resident memory and idle connections held. Every process a script starts is handed
# to track_pid; on exit all of them get TERM, and KILL if they are still
# there after 10 s.

TRACKED_PIDS=()

track_pid() {
    TRACKED_PIDS+=("$1")
}

stop_tracked() {
    local pid alive
    for pid in "${TRACKED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for pid in "${TRACKED_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.2
    done
    for pid in "${TRACKED_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_tracked EXIT
trap 'exit 130' INT TERM

# wait_port PID PORT LOG SECONDS: until PORT accepts on 127.0.0.1, the
# process PID dies (then die with the end of LOG), or SECONDS pass.
wait_port() {
    local pid=$1 port=$2 log=$3 deadline=$((SECONDS + $4))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited during start-up; its log $log:"$'\n'"$(tail -n 20 "$log" 2>/dev/null)"
        ((SECONDS < deadline)) || die "nothing accepts on 127.0.0.1:$port after $4 s; log: $log"
        sleep 0.05
    done
}

# seconds DURATION: a duration for wrk in seconds ("8s", "2m"; a bare
# number is seconds).
seconds() {
    case $1 in
        *[0-9]) echo "$1" ;;
        *s) echo "${1%s}" ;;
        *m) echo $(( ${1%m} * 60 )) ;;
        *) die "bad duration '$1' (use e.g. 8s)" ;;
    esac
}

# pin_commands PROXY_CPU LOAD_CPU NICE: PIN_PROXY and PIN_LOAD, the command
# prefixes that pin (and renice) the proxy and the load. taskset and nice
# exec the command, so the pid of a background job is the command's own.
pin_commands() {
    PIN_PROXY=(taskset -c "$1")
    PIN_LOAD=(taskset -c "$2")
    if [[ $3 != 0 ]]; then
        PIN_PROXY=(nice -n "$3" "${PIN_PROXY[@]}")
        PIN_LOAD=(nice -n "$3" "${PIN_LOAD[@]}")
    fi
}

# Many sockets at hundreds of connections: raise the descriptor limit when
# allowed.
raise_fd_limit() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# cpu_ns NAME: CPU time in ns used so far by the process ${PID[NAME]} (the
# script's associative array PID): every thread's schedstat, and for nginx
# those of its workers (children of the master) too.
cpu_ns() {
    local pids=${PID[$1]} files=() p
    [[ $1 == nginx* ]] && pids="$pids $(pgrep -P "${PID[$1]}" | tr '\n' ' ')"
    for p in $pids; do files+=("/proc/$p/task/"*/schedstat); done
    awk '{ s += $1 } END { printf "%.0f\n", s }' "${files[@]}" 2>/dev/null
}

# rss_kb NAME: resident memory of the process ${PID[NAME]} in KiB (nginx:
# master and workers).
rss_kb() {
    local pids=${PID[$1]} p total=0
    [[ $1 == nginx* ]] && pids="$pids $(pgrep -P "${PID[$1]}" | tr '\n' ' ')"
    for p in $pids; do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")))
    done
    echo "$total"
}

# hold_idle NAME PORT COUNT BATCH [--tls | --h2c]: the RSS of ${PID[NAME]}
# before, while scripts/idle_conns.py holds COUNT idle connections to PORT
# (one request each, sent BATCH at a time; --h2c: an HTTP/2 preface and
# SETTINGS instead), and 3 s after they closed: "before holding after".
# Uses the script's $RUN and PIN_LOAD (pin_commands).
hold_idle() {
    local name=$1 port=$2 count=$3 batch=$4 flag=${5:-} before holding after fifo=$RUN/idle.fifo out=$RUN/idle.out
    before=$(rss_kb "$name")
    rm -f "$fifo" "$out"
    mkfifo "$fifo"
    "${PIN_LOAD[@]}" /usr/bin/python3 scripts/idle_conns.py ${flag:+"$flag"} "$port" "$count" "$batch" <"$fifo" >"$out" 2>&1 &
    local client=$!
    track_pid "$client"
    exec 7>"$fifo"
    for _ in $(seq 240); do
        grep -q holding "$out" 2>/dev/null && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.5
    done
    grep -q holding "$out" || die "idle connections to $name: $(cat "$out")"
    sleep 2 # a second trim tick has passed
    holding=$(rss_kb "$name")
    echo >&7
    exec 7>&-
    wait "$client" 2>/dev/null || true
    sleep 3
    after=$(rss_kb "$name")
    echo "$before $holding $after"
}

# An awk function for programs that read wrk's output: ms(v) is a latency
# as wrk prints it ("245.00us", "1.20ms", "2.00s", units up to h) in ms,
# -1 when unreadable. Put it in front: awk "$WRK_AWK_MS"'...'.
WRK_AWK_MS='
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v * 1
            if (v ~ /s$/)  return v * 1000
            if (v ~ /m$/)  return v * 60000
            if (v ~ /h$/)  return v * 3600000
            return -1
        }
'
