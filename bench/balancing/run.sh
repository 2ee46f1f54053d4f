#!/usr/bin/env bash
# The socket benchmark of BALANCING.md: the standard tables, 3 repetitions x 60 s measured
# (+ 10 s warm-up) per policy, sized for a 2-core machine. See bench/balancing/README.md.
#
#   bench/balancing/run.sh                  # m, equal5, linkerd, herding (~2 h 20 min + build)
#   bench/balancing/run.sh m                # one part (m: ~50 min)
#   SKIP_BUILD=1 REPS=1 WINDOW=20s bench/balancing/run.sh equal5
#
# Parts: m, equal5, linkerd, herding, pathologies. The `balancing` binary starts and stops its
# own members and drover processes (by PID, also on error and Ctrl-C); this script only builds,
# runs it once per part and gathers the tables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET_DIR/release/balancing"
DROVER_BIN="${DROVER_BIN:-$TARGET_DIR/release/drover}"
WARMUP="${WARMUP:-10s}"
WINDOW="${WINDOW:-60s}"
REPS="${REPS:-3}"
SEED="${SEED:-1}"
THREADS="${THREADS:-1}"
REPORTS="${REPORTS:-orca,push}"
# Herding is about the age of pushed reports: no in-band ORCA there, or every answer would refresh
# each balancer's view whatever the push interval.
REPORTS_HERDING="${REPORTS_HERDING:-push}"
OUT="${OUT:-$REPO/bench/out/balancing-$(date +%Y%m%d-%H%M%S)}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

parts=("$@")
((${#parts[@]})) || parts=(m equal5 linkerd herding)

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building drover and drover-bench (release)"
    (cd "$REPO" && cargo build --release -p drover -p drover-bench)
fi
[[ -x "$BIN" ]] || { log "no $BIN: build with cargo build --release -p drover-bench"; exit 1; }
[[ -x "$DROVER_BIN" ]] || { log "no $DROVER_BIN: build with cargo build --release -p drover"; exit 1; }

load="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: load average is $load; other work on this machine moves every figure"
fi

mkdir -p "$OUT"
{
    echo "# bench/balancing $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "drover $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
    echo "reps $REPS x window $WINDOW (warm-up $WARMUP), seed $SEED, drover threads $THREADS, reports $REPORTS (herding: $REPORTS_HERDING)"
} >"$OUT/tables.md"

run_part() {
    local part="$1" scenario policies reports="$REPORTS"
    case "$part" in
        m)           scenario="m";       policies="round-robin,least-conn,p2c,peak-ewma,dynamic(cpu=1),adaptive,oracle,oracle-wait" ;;
        equal5)      scenario="equal5";  policies="round-robin,least-conn,p2c,peak-ewma,adaptive,oracle,oracle-wait" ;;
        linkerd)     scenario="linkerd"; policies="round-robin,least-conn,p2c,peak-ewma,adaptive,oracle-wait" ;;
        herding)     scenario="herding"; policies="least-conn,p2c,lowest(cpu),adaptive"; reports="$REPORTS_HERDING" ;;
        pathologies) scenario="hidden,slow,stall,degrade,fail"; policies="least-conn,p2c,peak-ewma,adaptive,oracle-wait" ;;
        *) log "unknown part $part (m, equal5, linkerd, herding, pathologies)"; exit 2 ;;
    esac
    log "part $part: scenario $scenario, policies $policies, reports $reports"
    "$BIN" --scenario "$scenario" --policies "$policies" \
        --warmup "$WARMUP" --window "$WINDOW" --reps "$REPS" --seed "$SEED" \
        --drover "$DROVER_BIN" --threads "$THREADS" --reports "$reports" \
        --out "$OUT/$part" ${RATE:+--rate "$RATE"} ${EXTRA_ARGS:-}
    cat "$OUT/$part/tables.md" >>"$OUT/tables.md"
}

for p in "${parts[@]}"; do
    run_part "$p"
done
log "tables: $OUT/tables.md; raw JSON: $OUT/<part>/results.json; configs and drover logs: $OUT/<part>/runs/"
