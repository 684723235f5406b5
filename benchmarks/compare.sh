#!/usr/bin/env bash
# tapegrad vs LibTorch, side by side (issue 5). See benchmarks/README.md.
#
#     benchmarks/compare.sh [--rounds N] [--repetitions R] [--threads "1 2"] [--groups "W1 W2 W3a W4 W5 W6"]
#                           [--epoch] [--epoch-rounds N] [--batch-ms MS] [--build-dir DIR] [--out FILE]
#                           [--no-build]
#
# Builds both peers in Release, then for each workload group and thread count runs the two sides
# alternately (tapegrad, LibTorch, tapegrad, LibTorch, ... for N rounds), merges the rounds
# (median) and prints one table. Without LibTorch it prints the tapegrad column alone.
set -euo pipefail

ROUNDS=3
REPS=7
THREADS="1 2"
GROUPS_="W1 W2 W3a W4 W5 W6"
EPOCH=0
EPOCH_ROUNDS=3
BATCH_MS=40
BUILD=build-bench
OUT=benchmarks/results.json
DO_BUILD=1

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --repetitions) REPS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --groups) GROUPS_=$2; shift 2 ;;
        --epoch) EPOCH=1; shift ;;
        --epoch-rounds) EPOCH_ROUNDS=$2; shift 2 ;;
        --batch-ms) BATCH_MS=$2; shift 2 ;;
        --build-dir) BUILD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

load_before=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_before" 'BEGIN { exit !(l > 0.5) }'; then
    echo "WARNING: load average is $load_before (> 0.5): the machine is not idle. Other processes" >&2
    echo "         make 2-thread timings 10-50x slower (shared/research/anchors.md note 5);" >&2
    echo "         treat these results as noise and rerun on an idle machine." >&2
fi

if [ "$DO_BUILD" = 1 ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_BENCHMARKS=ON \
        -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_TOOLS=OFF >/dev/null
fi
HAVE_TORCH=0
targets="peer_tapegrad peer_report"
target_list=$(cmake --build "$BUILD" --target help)
if grep -qw fma_peak <<<"$target_list"; then
    targets="$targets fma_peak"
fi
if grep -qw peer_torch <<<"$target_list"; then
    HAVE_TORCH=1
    targets="$targets peer_torch"
else
    echo "LibTorch not found (find_package(Torch) failed): showing the tapegrad column alone." >&2
fi
if [ "$DO_BUILD" = 1 ]; then
    # shellcheck disable=SC2086
    cmake --build "$BUILD" -j2 --target $targets
fi

# The load average lags by a minute (and includes our own build); this samples the CPU now.
busy_percent() { # share of all cores busy over 2 s, from /proc/stat
    read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
    sleep 2
    read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
    local busy=$(((u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1)))
    local idle=$(((i2 + w2) - (i1 + w1)))
    echo $((100 * busy / (busy + idle + 1)))
}
busy_before=$(busy_percent)
if [ "$busy_before" -gt 10 ]; then
    echo "WARNING: the CPUs are ${busy_before}% busy with other work right now: results will be noisy." >&2
fi

# OpenBLAS 0.3.21 does not know this CPU model and falls back to its Prescott (SSE3) kernels,
# sgemm 4-5x slower than the AVX-512 ones. Both sides use the same libopenblas, so both get the same
# core type. An explicit OPENBLAS_CORETYPE in the environment wins.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi

# The machine's own FP32 FMA peak per thread, for the "% of peak" column: the best of three runs of
# an FMA loop on all the threads the comparison uses. Without fma_peak (not x86-64, or a CPU
# without AVX2 + FMA) peer_report falls back to anchors.md's figure and says so.
max_threads=$(tr ' ' '\n' <<<"$THREADS" | sort -n | tail -1)
peak=0
if [ -x "$BUILD/benchmarks/fma_peak" ]; then
    for _ in 1 2 3; do
        p=$("$BUILD/benchmarks/fma_peak" "$max_threads" || echo 0)
        peak=$(awk -v a="$peak" -v b="$p" 'BEGIN { print (b > a ? b : a) }')
    done
fi
peak_args=()
if awk -v p="$peak" 'BEGIN { exit !(p > 0) }'; then
    echo "FMA peak on this machine: $peak GFLOP/s per thread (fma_peak, $max_threads threads)"
    peak_args=(--peak-gflops-per-thread "$peak")
else
    echo "WARNING: could not measure the FMA peak; % of peak uses anchors.md's 242.5 GFLOP/s per thread" >&2
fi

RESULTS="$BUILD/peer-results"
mkdir -p "$RESULTS"
TG_JSON="$RESULTS/tapegrad.jsonl"
TORCH_JSON="$RESULTS/libtorch.jsonl"
LOG="$RESULTS/run.log"
rm -f "$TG_JSON" "$TORCH_JSON" "$LOG"

run_tapegrad() { # threads workload
    "$BUILD/benchmarks/peer_tapegrad" --threads "$1" --workload "$2" --repetitions "$REPS" \
        --batch-ms "$BATCH_MS" --json "$TG_JSON" >>"$LOG"
}
run_torch() { # threads workload
    # LibTorch's best configuration: OpenBLAS pinned to one thread (anchors.md note 1).
    OPENBLAS_NUM_THREADS=1 "$BUILD/benchmarks/peer_torch" --threads "$1" --workload "$2" \
        --repetitions "$REPS" --batch-ms "$BATCH_MS" --json "$TORCH_JSON" >>"$LOG"
}

for group in $GROUPS_; do
    for t in $THREADS; do
        for ((r = 1; r <= ROUNDS; r++)); do
            echo "== $group, $t thread(s), round $r/$ROUNDS" | tee -a "$LOG"
            run_tapegrad "$t" "$group"
            if [ "$HAVE_TORCH" = 1 ]; then run_torch "$t" "$group"; fi
        done
    done
done
if [ "$EPOCH" = 1 ]; then
    # one process per side and round, for a per-workload peak RSS; the rounds alternate the sides
    # and are merged like the others (median), as one epoch's wall time moves by 10-30 % on a
    # shared machine
    for t in $THREADS; do
        for ((r = 1; r <= EPOCH_ROUNDS; r++)); do
            echo "== epoch, $t thread(s), round $r/$EPOCH_ROUNDS" | tee -a "$LOG"
            run_tapegrad "$t" epoch
            if [ "$HAVE_TORCH" = 1 ]; then run_torch "$t" epoch; fi
        done
    done
fi

load_after=$(cut -d' ' -f1 /proc/loadavg)
report_args=(--tapegrad "$TG_JSON" --out "$OUT" "${peak_args[@]}"
    --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    --meta "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    --meta "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    --meta "rounds=$ROUNDS" --meta "repetitions=$REPS" --meta "batch_ms=$BATCH_MS"
    --meta "load_before=$load_before" --meta "busy_percent_before=$busy_before" --meta "load_after=$load_after"
    --meta "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}"
    --meta "libtorch_OPENBLAS_NUM_THREADS=1")
if [ "$HAVE_TORCH" = 1 ]; then report_args+=(--libtorch "$TORCH_JSON"); fi
echo
"$BUILD/benchmarks/peer_report" "${report_args[@]}"
echo "Raw JSON lines and the run log: $RESULTS/"
