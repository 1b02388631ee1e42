#!/usr/bin/env bash
# bench/gpu_check.sh OUTDIR: the one prepared script for a GPU lease.
#
# Through the device tool, once `bash bench/gpu_wheels.sh` has filled .whl/
# here (git-ignored; wheels the GPU machine lacks), one call:
#
#   run(command='bash bench/gpu_check.sh "$OUT"', carry=[".whl"], timeout_s=480)
#
# The steps share a budget of GPU_CHECK_BUDGET=420 s (each step's own limit is
# cut to what is left), so the call ends in about 7 minutes at most; with a
# machine start of 1-2 minutes that leaves about 5 minutes of the 15-minute
# device time. The machine stays warm only 30 s after a call: rerun what failed
# AT ONCE (or call give_back), e.g.
#
#   run(command='GPU_CHECK_STEPS="sanitizer" GPU_CHECK_BUDGET=200 bash bench/gpu_check.sh "$OUT"',
#       carry=[".whl"], timeout_s=240)
#
# Steps (each under `timeout`; a failed step does not stop the next):
#   env        env.txt: nvidia-smi (name, driver, CUDA version, clocks), CUDA
#              tools, Python and library versions, the CUDA runtime/driver
#              versions CuPy and Numba see, gpu_act.available_backends()
#   install    gpu_act into a private folder without a registry: carried wheels
#              (.whl/*.whl), then `pip install --no-index --no-deps
#              --no-build-isolation --target` of this checkout, or a copy of
#              the package laid out as the wheel does when the build fails; if
#              the CUDA backend does not load, the fallback wheels in
#              .whl/fallback/ (numba-cuda); appends to env.txt
#   tests      every gpu-marked test (-m gpu -n 8, per-test timeout): tests.log,
#              tests.xml (JUnit)
#   sanitizer  bench/gpu_drive.py once plainly (results, variant coverage; it
#              fills Numba's kernel cache before anything else runs), then under
#              compute-sanitizer memcheck (leak check), racecheck and synccheck,
#              in parallel with the tests: sanitizer.log
#   bench      a reduced `gpu-act bench` of the GPU alone (--no-cpu): bench.json,
#              bench.png, bench.txt
# and summary.txt, the table printed last. At most 8 files, all directly in
# OUTDIR. Exit status 0 when every step passed (or when there is no GPU: then
# only env.txt and summary.txt are written).
#
# Knobs (environment): GPU_CHECK_STEPS (default "install tests sanitizer bench";
# env always runs), GPU_CHECK_BUDGET (s), GPU_CHECK_PYTHON (default python3),
# GPU_CHECK_WORKERS (8), GPU_CHECK_TEST_TIMEOUT (per test, s), GPU_CHECK_SERIAL=1
# (tests and sanitizer one after the other), GPU_CHECK_SANITIZERS (default
# "memcheck racecheck synccheck"), GPU_CHECK_BENCH_ARGS, GPU_CHECK_WORK (scratch
# folder), GPU_CHECK_NO_GPU=1 (behave as on a machine without a GPU),
# GPU_CHECK_REQUIRE (backends install insists on; default cuda,cupy).

set -uo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
    [ $# -lt 1 ] && exit 2
    exit 0
fi

mkdir -p "$1" || exit 2
OUTDIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${GPU_CHECK_PYTHON:-python3}
case $PY in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac # the steps run elsewhere
BUDGET=${GPU_CHECK_BUDGET:-420}
STEPS=" ${GPU_CHECK_STEPS:-install tests sanitizer bench} "
TOOLS=${GPU_CHECK_SANITIZERS:-memcheck racecheck synccheck}
WORKERS=${GPU_CHECK_WORKERS:-8}
REQUIRE=${GPU_CHECK_REQUIRE:-cuda,cupy} # backends the install step insists on
TEST_TIMEOUT=${GPU_CHECK_TEST_TIMEOUT:-150}
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:---ops softmax,log_softmax,softmax_backward,cross_entropy,gelu,gelu_backward --shapes 4096x4096,256x32000,32x262144}
WORK=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/gpu_act_check}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_state.XXXXXX") || exit 2
trap 'rm -rf "$STATE"' EXIT
T0=$SECONDS
SAN_EXIT=86 # compute-sanitizer --error-exitcode: tells its findings from the driver's own exit codes
export PYTHONUNBUFFERED=1

# ---------------------------------------------------------------- bookkeeping
# Each step writes its row to $STATE/NN.tsv (the sanitizer one per run to NNz.tsv):
# name, status (PASS, FAIL, TIMEOUT, SKIP, NONE), seconds, detail.
row() { printf '%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$5" >>"$STATE/$1.tsv"; }

left() { echo $((BUDGET - (SECONDS - T0))); }

limit_for() { # the step's own limit, cut to the budget left
    local want=$1 l
    l=$(left)
    [ "$l" -lt "$want" ] && want=$l
    echo "$want"
}

status_of() { # exit code -> status
    case $1 in
    0) echo PASS ;;
    124 | 137) echo TIMEOUT ;;
    *) echo FAIL ;;
    esac
}

selected() { [ "$1" = env ] || [[ $STEPS == *" $1 "* ]]; }

names() { # the base names of the paths that exist, on one line
    local f
    for f in "$@"; do [ -e "$f" ] && printf '%s ' "${f##*/}"; done
}

# do_step NN NAME LIMIT: run step_NAME with its limit (cut to the budget) and record it
do_step() {
    local nn=$1 name=$2 lim t rc
    if ! selected "$name"; then
        row "$nn" "$name" SKIP 0 "not in GPU_CHECK_STEPS"
        return 0
    fi
    lim=$(limit_for "$3")
    if [ "$lim" -lt 15 ]; then
        row "$nn" "$name" FAIL 0 "not run: budget of ${BUDGET}s spent"
        return 1
    fi
    t=$SECONDS
    echo "== $name (limit ${lim}s, $(left)s of the budget left)"
    "step_$name" "$nn" "$lim"
    rc=$?
    if [ ! -s "$STATE/$nn.detail" ]; then echo "exit code $rc" >"$STATE/$nn.detail"; fi
    row "$nn" "$name" "$(status_of "$rc")" $((SECONDS - t)) "$(head -c 300 "$STATE/$nn.detail")"
    echo "== $name: $(status_of "$rc") in $((SECONDS - t))s"
    return "$rc"
}

detail() { printf '%s' "$2" >"$STATE/$1.detail"; }

summary() {
    local code=0 rows
    rows=$(printf '%s\n' "$STATE"/*.tsv | LC_ALL=C sort | while read -r f; do cat "$f"; done)
    if grep -qE $'\t(FAIL|TIMEOUT)\t' <<<"$rows"; then code=1; fi
    {
        echo
        echo "gpu_check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - T0))s of a ${BUDGET}s budget): ${GPU_NAME:-no GPU}"
        printf '%-20s %-8s %7s  %s\n' step status seconds detail
        while IFS=$'\t' read -r n s secs d; do
            printf '%-20s %-8s %7s  %s\n' "$n" "$s" "$secs" "$d"
        done <<<"$rows"
        printf '%-20s %-8s %7s  %s\n' overall "$([ $code = 0 ] && echo PASS || echo FAIL)" $((SECONDS - T0)) \
            "files in $OUTDIR: $(names "$OUTDIR"/*)"
    } | tee "$OUTDIR/summary.txt"
    return $code
}

# ---------------------------------------------------------------- steps
gpu_present() {
    [ -n "${GPU_CHECK_NO_GPU:-}" ] && return 1
    local list
    command -v nvidia-smi >/dev/null 2>&1 && list=$(timeout 30 nvidia-smi -L 2>/dev/null) && grep -q '^GPU ' <<<"$list"
}

find_sanitizer() {
    local c
    for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer \
        /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

step_env() {
    local nn=$1 lim=$2 rc
    {
        echo "# gpu_check environment report, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "host: $(uname -srmo 2>/dev/null || uname -a)"
        echo "cpus: $(nproc 2>/dev/null || echo '?'); memory: $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"
        echo "checkout: $ROOT"
        echo
        echo "## GPU"
        if command -v nvidia-smi >/dev/null 2>&1; then
            timeout 30 nvidia-smi
            echo
            timeout 30 nvidia-smi --format=csv --query-gpu=index,name,pci.bus_id,driver_version,memory.total,memory.used,pstate,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.draw,power.limit,temperature.gpu,compute_mode
        else
            echo "nvidia-smi: not found"
        fi
        if gpu_present; then echo "GPU present: yes"; else echo "GPU present: NO"; fi
        echo
        echo "## CUDA tools"
        local t
        for t in nvcc compute-sanitizer ncu; do
            if command -v "$t" >/dev/null 2>&1; then
                echo "$t: $(command -v "$t"): $(timeout 20 "$t" --version 2>&1 | grep -iE 'release|version' | tail -1)"
            else
                echo "$t: not on PATH"
            fi
        done
        echo
        echo "## Python ($PY)"
    } >"$OUTDIR/env.txt" 2>&1
    (cd "$STATE" && timeout -k 10 "$lim" "$PY" "$ROOT/bench/gpu_drive.py" env) >>"$OUTDIR/env.txt" 2>&1
    rc=$?
    detail "$nn" "python $(grep -m1 '^python version:' "$OUTDIR/env.txt" | cut -d' ' -f3); $(grep -m1 'available_backends()' "$OUTDIR/env.txt" || grep -m1 '^gpu_act' "$OUTDIR/env.txt")"
    return $rc
}

# gpu_act as the wheel lays it out (gpu_act.kernels is the top-level kernels/ folder)
copy_package() {
    rm -rf "$WORK/site" && mkdir -p "$WORK/site" || return 1
    cp -R "$ROOT/gpu_act" "$WORK/site/gpu_act" && rm -rf "$WORK/site/gpu_act/kernels" &&
        cp -R "$ROOT/kernels" "$WORK/site/gpu_act/kernels" || return 1
    find "$WORK/site" -name __pycache__ -prune -exec rm -rf {} +
}

verify_package() {
    (cd "$WORK/run" && PYTHONPATH="$WORK/site" "$PY" -c '
import os, sys
import gpu_act, gpu_act.kernels as k
here = os.path.realpath(os.path.dirname(gpu_act.__file__))
assert here == os.path.realpath(os.path.join(sys.argv[1], "gpu_act")), here
assert os.path.exists(os.path.join(os.path.dirname(k.__file__), "softmax.cu")), "kernels missing"
print("gpu_act", gpu_act.__version__, "at", here)' "$WORK/site")
}

step_install() {
    local nn=$1 lim=$2 how rc
    {
        echo
        echo "## install (scratch folder $WORK)"
        rm -rf "$WORK/site" "$WORK/wheels" && mkdir -p "$WORK/site" "$WORK/wheels" "$WORK/run" || return 1
        if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
            echo "carried wheels: $(names "$ROOT"/.whl/*.whl)"
            timeout -k 5 "$lim" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$WORK/wheels" "$ROOT"/.whl/*.whl || echo "FAILED to install the carried wheels"
        else
            echo "no carried wheels (.whl/*.whl)"
        fi
        if timeout -k 5 "$lim" "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir \
            --target "$WORK/site" "$ROOT" >"$WORK/pip.log" 2>&1 && verify_package; then
            how="pip install --target"
        else
            tail -n 12 "$WORK/pip.log"
            echo "pip could not build the checkout here (setuptools older than 77?): copying the package instead"
            copy_package && verify_package || return 1
            how="copied"
        fi
        echo "gpu_act: $how"
        (cd "$WORK/run" && timeout -k 5 60 "$PY" "$ROOT/bench/gpu_drive.py" backends --require "$REQUIRE")
        rc=$?
        if [ $rc != 0 ] && compgen -G "$ROOT/.whl/fallback/*.whl" >/dev/null; then
            echo "a GPU backend did not load: trying the fallback wheels $(names "$ROOT"/.whl/fallback/*.whl)"
            timeout -k 5 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$WORK/wheels" "$ROOT"/.whl/fallback/*.whl
            # numba-cuda reaches numba.cuda through a .pth file, which a PYTHONPATH entry does not run
            printf 'import os, site\nsite.addsitedir(os.path.dirname(os.path.abspath(__file__)))\n' \
                >"$WORK/wheels/sitecustomize.py"
            (cd "$WORK/run" && timeout -k 5 60 "$PY" "$ROOT/bench/gpu_drive.py" backends --require "$REQUIRE")
            rc=$?
            how="$how, fallback wheels"
        fi
        detail "$nn" "gpu_act $how; $(cd "$WORK/run" && timeout 60 "$PY" -c 'import gpu_act; print("backends", ",".join(gpu_act.available_backends()))' 2>&1 | tail -1)"
        return $rc
    } >>"$OUTDIR/env.txt" 2>&1
}

step_tests() {
    local nn=$1 lim=$2 rc args
    args=(-m pytest "$ROOT/tests" -m gpu -p no:cacheprovider -q -rfE --durations=15 -o junit_family=xunit2
        --junitxml="$OUTDIR/tests.xml")
    if "$PY" -c 'import xdist' 2>/dev/null; then args+=(-n "$WORKERS"); fi
    if "$PY" -c 'import pytest_timeout' 2>/dev/null; then args+=(--timeout="$TEST_TIMEOUT"); fi
    echo "$PY ${args[*]}" >"$OUTDIR/tests.log"
    # SIGINT first: pytest then still prints its summary and writes the JUnit file
    (cd "$WORK/run" && timeout -s INT -k 20 "$lim" "$PY" "${args[@]}") >>"$OUTDIR/tests.log" 2>&1
    rc=$?
    detail "$nn" "$(grep -E '[0-9]+ (passed|failed|errors?|skipped)' "$OUTDIR/tests.log" | tail -1 | tr -d '=' | sed 's/^ *//')"
    return $rc
}

# one driver run, plain or under one sanitizer tool, into $WORK/san-NAME.{log,rc,secs}
sanitizer_run() {
    local name=$1 lim=$2 t=$SECONDS rc
    shift 2
    (cd "$WORK/run" && PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout -k 10 "$lim" "$@") >"$WORK/san-$name.log" 2>&1
    rc=$?
    echo $rc >"$WORK/san-$name.rc"
    echo $((SECONDS - t)) >"$WORK/san-$name.secs"
}

step_sanitizer() {
    local nn=$1 lim=$2 cs tool rc worst=0 st d n drive
    drive=("$PY" "$ROOT/bench/gpu_drive.py" run)
    rm -f "$WORK"/san-*
    # the plain run first, alone: it compiles every kernel variant once and fills
    # Numba's disk cache, which the sanitizer runs and the test workers then load
    # (Numba's cache is keyed by the device, so it cannot be filled off the GPU)
    sanitizer_run plain "$lim" "${drive[@]}"
    if cs=$(find_sanitizer); then
        for tool in $TOOLS; do
            local opts=(--tool "$tool" --error-exitcode "$SAN_EXIT" --report-api-errors no --print-limit 50)
            [ "$tool" = memcheck ] && opts+=(--leak-check full)
            sanitizer_run "$tool" "$lim" "$cs" "${opts[@]}" "${drive[@]}" --exact-alloc --reset &
        done
    fi
    wait
    : >"$OUTDIR/sanitizer.log"
    for n in plain $TOOLS; do
        if [ ! -f "$WORK/san-$n.rc" ]; then
            row "${nn}z" "  $n" FAIL 0 "compute-sanitizer not found"
            worst=1
            continue
        fi
        rc=$(cat "$WORK/san-$n.rc")
        {
            echo "######## $n: exit code $rc after $(cat "$WORK/san-$n.secs")s"
            if [ "$(wc -c <"$WORK/san-$n.log")" -gt 3000000 ]; then # keep the file well under 16 MiB
                head -c 2000000 "$WORK/san-$n.log"
                echo
                echo "[... cut ...]"
                tail -c 1000000 "$WORK/san-$n.log"
            else
                cat "$WORK/san-$n.log"
            fi
            echo
        } >>"$OUTDIR/sanitizer.log"
        st=$(status_of "$rc")
        d=$(grep -E '(ERROR|LEAK|RACECHECK) SUMMARY' "$WORK/san-$n.log" | tail -2 | sed 's/^=* *//' | paste -sd ';' -)
        case $rc in
        0) ;;
        "$SAN_EXIT") d="errors found: $d" ;;
        1) d="a call failed or gave a wrong result (see FAILED lines); $d" ;;
        3) d="ran clean but variants were never chosen; $d" ;;
        124 | 137) ;;
        *) d="exit code $rc: $(grep -vE '^(=========|\[)' "$WORK/san-$n.log" | tail -1 | cut -c1-120); $d" ;;
        esac
        [ "$n" = plain ] && d="$(grep -m1 '^gpu_drive:' "$WORK/san-$n.log" | cut -c12-200) $d"
        row "${nn}z" "  $n" "$st" "$(cat "$WORK/san-$n.secs")" "$d"
        [ "$rc" != 0 ] && worst=$rc
    done
    detail "$nn" "driver plain and under: ${cs:+$TOOLS}${cs:-no compute-sanitizer found}"
    return "$worst"
}

step_bench() {
    local nn=$1 lim=$2 rc args
    read -r -a args <<<"$BENCH_ARGS"
    (cd "$WORK/run" && timeout -k 10 "$lim" "$PY" -m gpu_act bench --no-cpu "${args[@]}" --output "$OUTDIR/bench") \
        >"$OUTDIR/bench.txt" 2>"$WORK/bench.err"
    rc=$?
    {
        echo
        echo "## stderr"
        tail -c 200000 "$WORK/bench.err"
    } >>"$OUTDIR/bench.txt"
    if [ $rc = 0 ] && [ ! -s "$OUTDIR/bench.json" ]; then rc=1; fi
    detail "$nn" "$(names "$OUTDIR"/bench.*)$(grep -m1 '| softmax | 4096x4096' "$OUTDIR/bench.txt" | cut -c1-150)"
    return $rc
}

# ---------------------------------------------------------------- main
echo "gpu_check: checkout $ROOT, output $OUTDIR, python $PY, budget ${BUDGET}s"
do_step 01 env 40
if ! gpu_present; then
    echo "No GPU present (nvidia-smi found none): wrote the environment report; GPU steps skipped."
    row 02 gpu NONE 0 "no GPU present: install, tests, sanitizer and bench skipped"
    summary
    exit 0
fi
GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
# every later Python finds gpu_act (and the carried wheels) here; run from $WORK/run,
# never from the checkout, whose gpu_act/ lacks gpu_act.kernels
export PYTHONPATH="$WORK/site:$WORK/wheels${PYTHONPATH:+:$PYTHONPATH}"

if do_step 02 install 60; then
    if [ -n "${GPU_CHECK_SERIAL:-}" ]; then
        do_step 03 tests 230
        do_step 04 sanitizer 200
    else # in parallel once the plain driver run has warmed the kernel cache: 8 test workers, 3 sanitizer runs
        rm -f "$WORK"/san-*
        do_step 04 sanitizer 230 >"$STATE/04.out" 2>&1 &
        while [ ! -f "$WORK/san-plain.rc" ] && jobs %1 >/dev/null 2>&1; do sleep 1; done
        do_step 03 tests 230 >"$STATE/03.out" 2>&1 &
        wait
        cat "$STATE/03.out" "$STATE/04.out"
    fi
    do_step 05 bench 100
else
    for s in tests sanitizer bench; do row 03 "$s" FAIL 0 "not run: gpu_act could not be installed (env.txt)"; done
fi
summary
