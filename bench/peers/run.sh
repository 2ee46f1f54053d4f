#!/usr/bin/env bash
# drover vs HAProxy vs nginx: the cost of proxying one request, measured side by side in one run,
# exactly as /work/shared/peer-bench/README.md describes (configs copied here: haproxy.cfg,
# proxy.nginx.conf, backends.nginx.conf). See bench/README.md.
#
# Usage: bench/peers/run.sh [--no-drover]
# Env:   DURATION=15       seconds per measured run (wrk and h2load)
#        REPS=3            repetitions; target order rotated each repetition; the table shows medians
#        TARGETS="direct haproxy nginx drover"   subset/order of targets
#        DROVER_ARGS="--threads 1"               extra args after `drover serve --config $DROVER_CONFIG`
#        DROVER_CONFIG=examples/peers.toml       relative to the repo root
#        ALT_POLICY=adaptive  the policy of target drover-alt: the same config on port 8086 with
#                             this policy, to price a policy against round robin in one run, e.g.
#                             TARGETS="drover drover-alt" ALT_POLICY=adaptive
#        ALT_STICKY=route|insert|learn  give drover-alt sticky sessions of this mode (its members get
#                             routes node1-node3), and send a cookie on every request to every
#                             target: route JSESSIONID=<id>.node2, insert drover-alt's own
#                             DROVERID (taken from its first answer), learn PHPSESSID=<id>. Price
#                             stickiness against the same policy without it:
#                             TARGETS="drover drover-alt" ALT_POLICY=round-robin ALT_STICKY=route
#        ALT_ACCESS_LOG=combined|json  give drover-alt an access log in this format (written to
#                             the run's temp dir), to price the log against the same config without:
#                             TARGETS="drover drover-alt" ALT_POLICY=round-robin ALT_ACCESS_LOG=combined
#        DROVER_BIN=target/release/drover        SKIP_BUILD=1 to skip `cargo build --release`
#        WARMUP=3  SETTLE=1 (seconds of pause between runs)  KEEP_RUN_DIR=1 (keep temp dir)
#        QUIET_WAIT=0      before each run, wait up to this many seconds for other load to stop
set -euo pipefail

# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

ORIG_ARGS=("$@")
DURATION="${DURATION:-15}"
REPS="${REPS:-3}"
WARMUP="${WARMUP:-3}"
SETTLE="${SETTLE:-1}"
QUIET_WAIT="${QUIET_WAIT:-0}"
TARGETS="${TARGETS:-direct haproxy nginx drover}"
DROVER_ARGS="${DROVER_ARGS---threads 1}"
DROVER_CONFIG="${DROVER_CONFIG:-examples/peers.toml}"
ALT_POLICY="${ALT_POLICY:-adaptive}"
ALT_STICKY="${ALT_STICKY:-}"
ALT_ACCESS_LOG="${ALT_ACCESS_LOG:-}"
COOKIE=""
DROVER_BIN="${DROVER_BIN:-$REPO_DIR/target/release/drover}"
CONNS=64
RATE_PER_CONN=80   # h2load --rps is per client: 64 x 80 = 5,120 req/s offered

for arg in "$@"; do
    case "$arg" in
        --no-drover) TARGETS="$(tr ' ' '\n' <<<"$TARGETS" | grep -vx drover | xargs)" ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

read -r -a TARGET_LIST <<<"$TARGETS"
((${#TARGET_LIST[@]} > 0)) || die "TARGETS is empty"
declare -A PORT=([direct]=9001 [haproxy]=8081 [nginx]=8082 [drover]=8085 [drover-alt]=8086)
for t in "${TARGET_LIST[@]}"; do
    [[ -n "${PORT[$t]:-}" ]] || die "unknown target '$t' (known: direct haproxy nginx drover drover-alt)"
done
has_target() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }
[[ "$DURATION" =~ ^[0-9]+$ && "$REPS" =~ ^[0-9]+$ && "$REPS" -ge 1 ]] || die "DURATION and REPS must be positive integers"

# The exact command, for the report.
COMMAND="DURATION=$DURATION REPS=$REPS TARGETS='$TARGETS'"
has_target drover && COMMAND+=" DROVER_ARGS='$DROVER_ARGS'"
has_target drover-alt && COMMAND+=" ALT_POLICY='$ALT_POLICY'"
[[ -n "$ALT_STICKY" ]] && COMMAND+=" ALT_STICKY='$ALT_STICKY'"
case "$ALT_STICKY" in
    "" | route | insert | learn) ;;
    *) die "ALT_STICKY must be route, insert or learn" ;;
esac
[[ -z "$ALT_STICKY" ]] || has_target drover-alt || die "ALT_STICKY needs the drover-alt target"
[[ -n "$ALT_ACCESS_LOG" ]] && COMMAND+=" ALT_ACCESS_LOG='$ALT_ACCESS_LOG'"
case "$ALT_ACCESS_LOG" in
    "" | combined | json) ;;
    *) die "ALT_ACCESS_LOG must be combined or json" ;;
esac
[[ -z "$ALT_ACCESS_LOG" ]] || has_target drover-alt || die "ALT_ACCESS_LOG needs the drover-alt target"
for knob in WARMUP SETTLE QUIET_WAIT DROVER_CONFIG DROVER_BIN SKIP_BUILD; do
    [[ -n "${!knob+x}" ]] || continue
    case "$knob" in
        WARMUP) [[ "$WARMUP" == 3 ]] && continue ;;
        SETTLE) [[ "$SETTLE" == 1 ]] && continue ;;
        QUIET_WAIT) [[ "$QUIET_WAIT" == 0 ]] && continue ;;
        DROVER_CONFIG) [[ "$DROVER_CONFIG" == examples/peers.toml ]] && continue ;;
        DROVER_BIN) [[ "$DROVER_BIN" == "$REPO_DIR/target/release/drover" ]] && continue ;;
        SKIP_BUILD) has_target drover || continue ;;
    esac
    COMMAND+=" $knob='${!knob}'"
done
COMMAND+=" bench/peers/run.sh"
((${#ORIG_ARGS[@]})) && COMMAND+=" ${ORIG_ARGS[*]}"

ensure_tools haproxy nginx wrk h2load
CLK_TCK="$(getconf CLK_TCK)"

if has_target drover || has_target drover-alt; then
    [[ -f "$REPO_DIR/$DROVER_CONFIG" || -f "$DROVER_CONFIG" ]] || die "drover config $DROVER_CONFIG not found (run with --no-drover or TARGETS=... to skip drover)"
    build_drover
fi

OUT_DIR="$REPO_DIR/bench/out/peers-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR/raw"
RUNS="$OUT_DIR/runs.jsonl"
: >"$RUNS"

install_cleanup_trap
make_run_dir

# Is the machine quiet? Other work (a cargo build, tests) on a 2-core box skews every figure.
IDLE_BUSY="$(machine_busy_pct 2)"
if ((IDLE_BUSY > 15)); then
    log "WARNING: the machine is busy before the benchmark (${IDLE_BUSY}% of a core used): $(top_others 3)"
fi

ports=(9000 9001 9002 9003)
for t in "${TARGET_LIST[@]}"; do [[ "$t" == direct ]] || ports+=("${PORT[$t]}"); done
require_port_free "${ports[@]}"

declare -A PIDS
ALL_PIDS=()   # every process we started (and nginx workers): their CPU is not "foreign"
log "starting backend nginx (127.0.0.1:9000-9003)"
start_nginx backend "$PEERS_DIR/backends.nginx.conf" 9003
PIDS[direct]="$NGINX_PIDS"
ALL_PIDS+=($NGINX_PIDS)
if has_target haproxy; then
    log "starting HAProxy (127.0.0.1:8081)"
    start_haproxy "$PEERS_DIR/haproxy.cfg" 8081
    PIDS[haproxy]="$HAPROXY_PID"
    ALL_PIDS+=("$HAPROXY_PID")
fi
if has_target nginx; then
    log "starting nginx proxy (127.0.0.1:8082)"
    start_nginx proxy "$PEERS_DIR/proxy.nginx.conf" 8082
    PIDS[nginx]="$NGINX_PIDS"
    ALL_PIDS+=($NGINX_PIDS)
fi
if has_target drover; then
    log "starting drover (127.0.0.1:8085): $DROVER_BIN serve --config $DROVER_CONFIG $DROVER_ARGS"
    # shellcheck disable=SC2086
    start_drover 8085 serve --config "$DROVER_CONFIG" $DROVER_ARGS
    PIDS[drover]="$DROVER_PID"
    ALL_PIDS+=("$DROVER_PID")
fi
if has_target drover-alt; then
    # The same config, listening on 8086, with only the policy changed.
    ALT_CONFIG="$RUN_DIR/drover-alt.toml"
    ( cd "$REPO_DIR" && sed -e 's/127\.0\.0\.1:8085/127.0.0.1:8086/' \
        -e "s/^policy = .*/policy = \"$ALT_POLICY\"/" "$DROVER_CONFIG" ) >"$ALT_CONFIG"
    grep -q "policy = \"$ALT_POLICY\"" "$ALT_CONFIG" || die "cannot set the policy in $ALT_CONFIG"
    if [[ -n "$ALT_STICKY" ]]; then
        for n in 1 2 3; do
            sed -i "s/{ address = \"127.0.0.1:900$n\" }/{ address = \"127.0.0.1:900$n\", route = \"node$n\" }/" "$ALT_CONFIG"
            grep -q "route = \"node$n\"" "$ALT_CONFIG" || die "cannot give member $n a route in $ALT_CONFIG"
        done
        case "$ALT_STICKY" in
            route) sticky='mode = "route"\ncookie = "JSESSIONID"' ;;
            insert) sticky='mode = "insert"\nkeys = ["peers-bench-key-0123456789abcdef"]' ;;
            learn) sticky='mode = "learn"\ncookie = "PHPSESSID"' ;;
        esac
        printf '\n[farm.app.sticky]\n%b\n' "$sticky" >>"$ALT_CONFIG"
    fi
    if [[ -n "$ALT_ACCESS_LOG" ]]; then
        sed -i "/^listen = \"127.0.0.1:8086\"/a access_log = { path = \"$RUN_DIR/drover-alt-access.log\", format = \"$ALT_ACCESS_LOG\" }" "$ALT_CONFIG"
        grep -q "^access_log = " "$ALT_CONFIG" || die "cannot add the access log to $ALT_CONFIG"
    fi
    log "starting drover-alt (127.0.0.1:8086, policy $ALT_POLICY): $DROVER_BIN serve --config $ALT_CONFIG $DROVER_ARGS"
    # shellcheck disable=SC2086
    start_drover 8086 serve --config "$ALT_CONFIG" $DROVER_ARGS
    PIDS[drover-alt]="$DROVER_PID"
    ALL_PIDS+=("$DROVER_PID")
fi

# Every target must answer 200 with the member's body before we measure it
# (health checks may start members down: allow a few seconds).
for t in "${TARGET_LIST[@]}"; do
    deadline=$((SECONDS + 15))
    until curl -fsS -o "$RUN_DIR/probe.out" "http://127.0.0.1:${PORT[$t]}/" 2>/dev/null \
        && grep -q peer-bench-backend "$RUN_DIR/probe.out"; do
        ((SECONDS < deadline)) || die "$t (127.0.0.1:${PORT[$t]}) does not answer 200 with the member's body"
        sleep 0.2
    done
    log "$t ready on 127.0.0.1:${PORT[$t]}, measured PIDs: ${PIDS[$t]}"
done

# The cookie every request carries, to every target, when drover-alt is sticky.
case "$ALT_STICKY" in
    route) COOKIE="JSESSIONID=0123456789ABCDEF0123456789ABCDEF.node2" ;;
    learn) COOKIE="PHPSESSID=0123456789abcdefghijklmnop" ;;
    insert)
        COOKIE="$(curl -fsS -D - -o /dev/null "http://127.0.0.1:8086/" | tr -d '\r' \
            | awk 'tolower($1) == "set-cookie:" { split($2, a, ";"); print a[1]; exit }')"
        [[ "$COOKIE" == DROVERID=* ]] || die "drover-alt set no DROVERID cookie: '$COOKIE'"
        ;;
esac
[[ -z "$COOKIE" ]] || log "every request carries Cookie: $COOKIE"

# --- machine and labels --------------------------------------------------------------------
HAPROXY_VER="$(haproxy -v | head -1 | awk '{print $3}')"
NGINX_VER="$(nginx -v 2>&1 | sed 's|.*nginx/||')"
WRK_VER="$(wrk -v 2>&1 | head -1 | awk '{print $2}' || true)"
H2LOAD_VER="$(h2load --version | head -1)"
DROVER_REV="$(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo unknown)"
CPU_MODEL="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"

python3 - "$OUT_DIR/meta.json" <<EOF
import json, sys
meta = {
    "command": """$COMMAND""",
    "out_dir": "$OUT_DIR",
    "duration": $DURATION, "reps": $REPS, "warmup": $WARMUP,
    "targets": "${TARGET_LIST[*]}".split(),
    "labels": {
        "direct": "direct to one member (the member's own CPU)",
        "haproxy": "HAProxy $HAPROXY_VER",
        "nginx": "nginx $NGINX_VER",
        "drover": "drover $DROVER_REV",
        "drover-alt": "drover $DROVER_REV, policy $ALT_POLICY${ALT_STICKY:+, sticky $ALT_STICKY}${ALT_ACCESS_LOG:+, access log $ALT_ACCESS_LOG}",
    },
    "pids": {$(for t in "${TARGET_LIST[@]}"; do printf '"%s": [%s], ' "$t" "$(tr ' ' ',' <<<"${PIDS[$t]}")"; done)},
    "machine": {
        "nproc": "$(nproc)",
        "cpu": """$CPU_MODEL""",
        "kernel": "$(uname -srm)",
        "os": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
        "tools": "haproxy $HAPROXY_VER, nginx $NGINX_VER, wrk $WRK_VER, $H2LOAD_VER",
        "drover": "$(has_target drover && echo "$DROVER_REV, $DROVER_BIN serve --config $DROVER_CONFIG $DROVER_ARGS" || echo "not measured")",
        "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
        "busy before start": "${IDLE_BUSY}% of one core (2 s sample, before anything was started)",
    },
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF

# wait_quiet: with QUIET_WAIT>0, wait (up to that many seconds) until the machine is quiet, i.e. other
# work uses < 15% of a core (our own processes are idle between runs).
wait_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) busy
    while busy="$(machine_busy_pct 1)" && ((busy >= 15)); do
        if ((SECONDS >= deadline)); then
            log "machine still busy (${busy}% of a core: $(top_others 2)); measuring anyway"
            return 0
        fi
        log "machine busy (${busy}% of a core: $(top_others 2)); waiting"
        sleep 4
    done
}

# --- measurement ---------------------------------------------------------------------------
# measure TARGET REP MODE: warm-up (wrk modes), then one measured run with CPU and accepts deltas.
measure() {
    local t="$1" rep="$2" mode="$3"
    local url="http://127.0.0.1:${PORT[$t]}/"
    local out="$OUT_DIR/raw/rep${rep}-${t}-${mode}.txt"
    local -a pids hdr=() cmd
    read -r -a pids <<<"${PIDS[$t]}"
    [[ "$mode" == close ]] && hdr=(-H 'Connection: close')
    [[ -z "$COOKIE" ]] || hdr+=(-H "Cookie: $COOKIE")
    if [[ "$mode" == rate ]]; then
        cmd=(h2load --h1 -c"$CONNS" --rps="$RATE_PER_CONN" -D "$DURATION" "${hdr[@]}" "$url")
    else
        wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" "$url" >"$out.warmup" 2>&1 || die "wrk warm-up failed: $(cat "$out.warmup")"
        cmd=(wrk -t1 -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" --latency "$url")
    fi
    local acc0 acc1 cpu0 cpu1 busy0 busy1 own0 own1
    wait_quiet
    acc0="$(backend_accepts)"
    busy0="$(sys_busy_ticks)"
    own0=$(($(cpu_ticks "${ALL_PIDS[@]}") + $(shell_children_ticks)))
    cpu0="$(cpu_ticks "${pids[@]}")"
    "${cmd[@]}" >"$out" 2>&1 || die "${cmd[*]} failed: $(tail -5 "$out")"
    cpu1="$(cpu_ticks "${pids[@]}")"
    own1=$(($(cpu_ticks "${ALL_PIDS[@]}") + $(shell_children_ticks)))
    busy1="$(sys_busy_ticks)"
    acc1="$(backend_accepts)"
    echo "# ${cmd[*]}" >>"$out"
    python3 "$PEERS_DIR/report.py" record "$RUNS" --target "$t" --rep "$rep" --mode "$mode" \
        --tool "${cmd[0]}" --output "$out" --cpu-ticks $((cpu1 - cpu0)) --clk-tck "$CLK_TCK" \
        --accepts $((acc1 - acc0 - 1)) --foreign-ticks $(((busy1 - busy0) - (own1 - own0))) >&2
    sleep "$SETTLE"
}

n=${#TARGET_LIST[@]}
per_target=$((3 * DURATION + 2 * WARMUP + 3 * SETTLE))
log "$REPS repetition(s) x $n target(s), ~${per_target}s per target: ~$((REPS * n * per_target / 60 + 1)) min"
for ((rep = 1; rep <= REPS; rep++)); do
    order=()
    for ((i = 0; i < n; i++)); do order+=("${TARGET_LIST[$(((i + rep - 1) % n))]}"); done
    log "repetition $rep/$REPS, order: ${order[*]}"
    for t in "${order[@]}"; do
        for mode in ka close rate; do
            alive "${PIDS[$t]%% *}" || die "$t (pid ${PIDS[$t]%% *}) died; see logs in $OUT_DIR/logs"
            measure "$t" "$rep" "$mode"
        done
    done
done

python3 "$PEERS_DIR/report.py" table "$RUNS" "$OUT_DIR/meta.json" | tee "$OUT_DIR/table.md"
