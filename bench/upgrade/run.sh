#!/usr/bin/env bash
# Binary upgrade / reload under load: requests lost and connections refused while each proxy is
# replaced UPGRADES times under wrk -c64 (issue 6, acceptance 4). See docs/performance.md,
# "Binary upgrade", and docs/upgrade.md.
#
#   drover   kill -USR2 <pid>: a new drover process takes the listening sockets over, the old
#            one drains and exits (the pid changes every time)
#   haproxy  haproxy -x <stats socket> -sf <old pid>: a new process gets the listening sockets
#            from the old one (stats socket with "expose-fd listeners"), the old one soft-stops
#            (HAProxy's documented seamless reload)
#   nginx    kill -HUP <master>: new workers with the (same) config, old workers shut down
#            gracefully (nginx -s reload)
#
# Counted from wrk's own report, per server and repetition: failed requests = socket errors
# (connect + read + write + timeout) + non-2xx/3xx answers; refused = wrk's connect errors.
# A count, not a CPU figure: it may run on a busy machine (the rate will vary, the counts not).
#
# Usage: bench/upgrade/run.sh
# Env:   DURATION=30  seconds of load per run     UPGRADES=10  upgrades/reloads per run
#        REPS=3       repetitions (server order rotated)
#        TARGETS="drover haproxy nginx"
#        DROVER_BIN=${CARGO_TARGET_DIR:-target}/release/drover   SKIP_BUILD=1 to skip the build
#        KEEP_RUN_DIR=1 (keep the temp dir with every log)
set -euo pipefail

# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

DURATION="${DURATION:-30}"
UPGRADES="${UPGRADES:-10}"
REPS="${REPS:-3}"
TARGETS="${TARGETS:-drover haproxy nginx}"
DROVER_BIN="${DROVER_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/drover}"
CONNS=64

case "${1:-}" in
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    "") ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac
for v in DURATION UPGRADES REPS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -ge 1 ]] || die "$v must be a positive integer"
done
read -r -a TARGET_LIST <<<"$TARGETS"
declare -A PORT=([haproxy]=8081 [nginx]=8082 [drover]=8085)
for t in "${TARGET_LIST[@]}"; do
    [[ -n "${PORT[$t]:-}" ]] || die "unknown target '$t' (known: drover haproxy nginx)"
done
((DURATION >= 2 * UPGRADES)) || die "DURATION must give each upgrade at least 2 seconds"
COMMAND="DURATION=$DURATION UPGRADES=$UPGRADES REPS=$REPS TARGETS='$TARGETS' bench/upgrade/run.sh"

ensure_tools haproxy nginx wrk
if [[ " $TARGETS " == *" drover "* ]]; then
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release -p drover"
        (cd "$REPO_DIR" && cargo build --release -p drover) || die "cargo build failed"
    fi
    [[ -x "$DROVER_BIN" ]] || die "no drover binary at $DROVER_BIN"
fi

OUT_DIR="$REPO_DIR/bench/out/upgrade-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR/raw"
RESULTS="$OUT_DIR/results.tsv"
printf 'rep\tserver\tupgrades\trequests\tconnect\tread\twrite\ttimeout\tnon2xx\tfailed\trefused\n' >"$RESULTS"

install_cleanup_trap
make_run_dir
require_port_free 9000 9001 9002 9003 "${PORT[@]}"

log "starting backend nginx (127.0.0.1:9000-9003)"
start_nginx backend "$PEERS_DIR/backends.nginx.conf" 9003

# The peers' configs, plus what each needs to be replaced in place.
sed "s|@RUN@|$RUN_DIR|g" "$PEERS_DIR/haproxy.cfg" \
    | sed "s|^    pidfile .*|&\n    stats socket $RUN_DIR/haproxy.sock mode 600 level admin expose-fd listeners|" \
    >"$RUN_DIR/haproxy.cfg"
grep -q "expose-fd listeners" "$RUN_DIR/haproxy.cfg" || die "cannot add the stats socket to haproxy.cfg"
haproxy -c -q -f "$RUN_DIR/haproxy.cfg" || die "haproxy config check failed"

CURRENT=""   # the pid to upgrade / reload next

start_target() {
    case "$1" in
        haproxy)
            start_bg "$RUN_DIR/haproxy.log" haproxy -db -f "$RUN_DIR/haproxy.cfg"
            CURRENT="$LAST_PID"
            wait_port 8081 "$CURRENT" "$RUN_DIR/haproxy.log"
            ;;
        nginx)
            start_nginx proxy "$PEERS_DIR/proxy.nginx.conf" 8082
            CURRENT="${NGINX_PIDS%% *}"
            ;;
        drover)
            : >"$RUN_DIR/drover.log"
            start_bg "$RUN_DIR/drover.log" bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO_DIR" \
                "$DROVER_BIN" serve --config examples/peers.toml --threads 1
            CURRENT="$LAST_PID"
            wait_port 8085 "$CURRENT" "$RUN_DIR/drover.log" 60
            ;;
    esac
}

# running PID: alive and not a zombie (a drover started by SIGUSR2 is reaped by init, not us).
running() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "${stat##*) }" != Z* ]]
}

# wait_gone PID SECONDS: polls until PID has exited (false after SECONDS).
wait_gone() {
    local deadline=$((SECONDS + $2))
    while running "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# upgrade TARGET: replaces the serving process (or its workers) once; sets CURRENT to the pid to
# upgrade next. Waits until the replacement serves.
upgrade() {
    local old="$CURRENT" deadline n
    case "$1" in
        drover)
            n="$(grep -c 'started a new drover' "$RUN_DIR/drover.log" || true)"
            kill -USR2 "$old"
            deadline=$((SECONDS + 20))
            until [[ "$(grep -c 'the old drover let go' "$RUN_DIR/drover.log" || true)" -gt "$n" ]]; do
                ((SECONDS < deadline)) || die "drover: no hand-over within 20s (see $RUN_DIR/drover.log)"
                sleep 0.05
            done
            CURRENT="$(grep -o 'started a new drover to take over pid=[0-9]*' "$RUN_DIR/drover.log" \
                | tail -n 1 | sed 's/.*pid=//')"
            STARTED_PIDS+=("$CURRENT")
            ;;
        haproxy)
            # One log per generation (a crash of an old process shows in its own).
            start_bg "$RUN_DIR/haproxy-$(date +%s%N).log" haproxy -db -f "$RUN_DIR/haproxy.cfg" \
                -x "$RUN_DIR/haproxy.sock" -sf "$old"
            CURRENT="$LAST_PID"
            # The new process sends the old one its soft-stop signal once it listens.
            wait_gone "$old" 30 || log "haproxy: old process $old still running after 30s"
            alive "$CURRENT" || die "haproxy: the new process died (see $RUN_DIR/haproxy.log)"
            ;;
        nginx)
            local before w fresh=""
            before=" $(children "$old" | xargs) "
            kill -HUP "$old"
            deadline=$((SECONDS + 20))
            # Reloaded once a worker that was not there before runs.
            while [[ -z "$fresh" ]]; do
                for w in $(children "$old"); do
                    [[ "$before" == *" $w "* ]] || fresh="$w"
                done
                [[ -n "$fresh" ]] && break
                ((SECONDS < deadline)) || die "nginx: no new worker within 20s"
                sleep 0.05
            done
            ;;
    esac
}

stop_target() {
    local pid="$CURRENT"
    running "$pid" && kill -TERM "$pid"
    wait_gone "$pid" 20 || { kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
}

# sock_err FIELD FILE: the number after FIELD in wrk's "Socket errors" line (0 if absent).
sock_err() {
    { grep 'Socket errors' "$2" || true; } | { grep -o "$1 [0-9]*" || true; } | awk '{print $2}' | head -n 1
}

order=("${TARGET_LIST[@]}")
for ((rep = 1; rep <= REPS; rep++)); do
    for t in "${order[@]}"; do
        log "rep $rep/$REPS: $t, $UPGRADES upgrades in ${DURATION}s of wrk -c$CONNS"
        start_target "$t"
        raw="$OUT_DIR/raw/$t-$rep.txt"
        wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$t]}/" >"$raw" 2>&1 &
        wrk_pid=$!
        STARTED_PIDS+=("$wrk_pid")
        gap_ms=$((DURATION * 1000 / (UPGRADES + 1)))
        done_n=0
        for ((u = 1; u <= UPGRADES; u++)); do
            sleep "$(awk -v ms="$gap_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
            alive "$wrk_pid" || break
            upgrade "$t"
            done_n=$((done_n + 1))
        done
        wait "$wrk_pid" || true
        stop_target
        requests="$(awk '/requests in/ {print $1}' "$raw")"
        connect="$(sock_err connect "$raw")"; read_e="$(sock_err read "$raw")"
        write_e="$(sock_err write "$raw")"; timeout_e="$(sock_err timeout "$raw")"
        non2xx="$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$raw")"
        connect="${connect:-0}" read_e="${read_e:-0}" write_e="${write_e:-0}" timeout_e="${timeout_e:-0}" non2xx="${non2xx:-0}"
        failed=$((connect + read_e + write_e + timeout_e + non2xx))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$t" "$done_n" "${requests:-0}" \
            "$connect" "$read_e" "$write_e" "$timeout_e" "$non2xx" "$failed" "$connect" >>"$RESULTS"
        log "  $t: $done_n upgrades, ${requests:-0} requests, failed $failed (connect $connect, read $read_e, write $write_e, timeout $timeout_e, non-2xx $non2xx)"
        sleep 1
    done
    order=("${order[@]:1}" "${order[0]}")
done

{
    echo "Command: $COMMAND"
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr)"
    echo "Versions: $(haproxy -v | head -n 1 | awk '{print "HAProxy", $3}'), $(nginx -v 2>&1 | sed 's|.*/||;s|^|nginx |'), wrk -t2 -c$CONNS"
    echo
    echo "| server | rep | upgrades | requests | failed | refused | connect / read / write / timeout / non-2xx |"
    echo "|---|---|---|---|---|---|---|"
    tail -n +2 "$RESULTS" | sort -k2,2 -k1,1n | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s / %s / %s / %s / %s |\n", $2, $1, $3, $4, $10, $11, $5, $6, $7, $8, $9}'
    echo
    echo "Totals:"
    tail -n +2 "$RESULTS" | awk -F'\t' '{u[$2]+=$3; f[$2]+=$10; r[$2]+=$11} END {for (s in u) printf "  %s: %d upgrades, %d failed requests, %d refused connections\n", s, u[s], f[s], r[s]}' | sort
} | tee "$OUT_DIR/report.md"
log "results in $OUT_DIR"
