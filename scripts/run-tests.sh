#!/bin/bash
# Runs every suite against each build directory given (build, build-asan):
# the cmocka unit tests, then the pytest integration tests with real
# processes; then the fuzz targets of build-fuzz/ replay their seeds
# (unless RUN_FUZZ_SEEDS=0).
# Ends with one summary line over everything: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failed_suites=()
PYTHON=/usr/bin/python3   # Debian's, which sees python3-pytest

count() { # $1 = log file; adds cmocka's or pytest's counts to the totals
    local p f
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$1" | awk '{s+=$4} END {print s+0}')
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$1" | awk '{s+=$4} END {print s+0}')
    # pytest's closing line, with or without its "=====" frame:
    # "85 passed in 16.6s", "1 failed, 84 passed in 17.0s", "2 errors in ..."
    local summary='^(=+ )?[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s'
    if grep -qE "$summary" "$1"; then
        line=$(grep -E "$summary" "$1" | tail -n 1)
        p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
        f=$(( $(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0) +
              $(echo "$line" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+' || echo 0) ))
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
}

for build in "$@"; do
    mkdir -p "$build/logs"
    export LB_BUILD="$build"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:quarantine_size_mb=8"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export TSAN_OPTIONS="second_deadlock_stack=1"
    for t in "$build"/unit/test_*; do
        [ -x "$t" ] && [ "${t%.d}" = "$t" ] || continue
        log="$build/logs/$(basename "$t").log"
        echo "== $t"
        if ! timeout 300 "$t" >"$log" 2>&1; then
            failed_suites+=("$t")
            grep -q '^\[  FAILED  \]' "$log" || failed=$((failed + 1))  # crashed: count it
        fi
        tail -n 3 "$log"
        count "$log"
    done
    log="$build/logs/integration.log"
    echo "== integration tests ($build)"
    timeout 900 "$PYTHON" -m pytest -q -rf -p no:cacheprovider test/integration 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        failed_suites+=("integration ($build)")
        grep -qE '^(=+ )?[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$log" || failed=$((failed + 1))
    fi
    count "$log"
done

# The fuzz targets replay their seed corpora (a smoke test: each target
# still builds, and no seed crashes it). One test per target.
for bin in build-fuzz/fuzz_*; do
    [ "${RUN_FUZZ_SEEDS:-1}" = 1 ] && [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    corpus=test/fuzz/corpus/$name
    [ -d "$corpus" ] || corpus=test/fuzz/corpus/${name%_diff}
    log="build-fuzz/$name.replay.log"
    if timeout 120 "$bin" "$corpus"/* >"$log" 2>&1; then
        echo "== $bin: $(ls "$corpus" | wc -l) seeds replayed"
        passed=$((passed + 1))
    else
        echo "== $bin: FAILED on its seeds (see $log)"
        failed=$((failed + 1))
        failed_suites+=("$bin")
    fi
done

[ ${#failed_suites[@]} -gt 0 ] && echo "failed suites: ${failed_suites[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failed_suites[@]} -eq 0 ]
