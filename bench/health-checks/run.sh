#!/usr/bin/env bash
# The CPU cost of active health checks: drover with one farm of MEMBERS (default 1,000) members,
# each checked over HTTP every second, against the same drover without checks. The acceptance
# target: "1,000 members checked every second add under 5% CPU on one core". See bench/README.md.
#
# Usage: bench/health-checks/run.sh
# Env:   MEMBERS=1000        members (ports BASE_PORT .. BASE_PORT+MEMBERS-1, served by members.py)
#        BASE_PORT=20000     first member port; members.py's GET /count listens on BASE_PORT-1
#        WARMUP=5            seconds between drover's start and the measured window
#        SECONDS_RUN=30      seconds of the measured window
#        ORDER="off on"      configs to run, in order ("on off", "on", ...)
#        REUSE=              true|false: write `reuse_connection = $REUSE` into the check table;
#                            empty (the default) leaves the key out, i.e. drover's default (true)
#        DROVER_BIN=target/release/drover   SKIP_BUILD=1 to skip `cargo build --release`
#        KEEP_RUN_DIR=1      keep the temp dir (drover and members.py logs)
set -euo pipefail

# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

MEMBERS="${MEMBERS:-1000}"
BASE_PORT="${BASE_PORT:-20000}"
WARMUP="${WARMUP:-5}"
SECONDS_RUN="${SECONDS_RUN:-30}"
ORDER="${ORDER:-off on}"
REUSE="${REUSE:-}"
DROVER_BIN="${DROVER_BIN:-$REPO_DIR/target/release/drover}"
LISTEN_PORT=18080
CONTROL_PORT=$((BASE_PORT - 1))
HC_DIR="$BENCH_DIR/health-checks"
DROVER_PID=""   # set by start_drover (lib.sh)

case "${1:-}" in -h | --help) sed -n '2,17p' "$0"; exit 0 ;; "") ;; *) die "unknown argument: $1 (see --help)" ;; esac
for knob in MEMBERS BASE_PORT WARMUP SECONDS_RUN; do
    [[ "${!knob}" =~ ^[0-9]+$ && "${!knob}" -ge 1 ]] || die "$knob must be a positive integer (got '${!knob}')"
done
((BASE_PORT > 1024 && BASE_PORT + MEMBERS - 1 <= 65535)) || die "ports $BASE_PORT..$((BASE_PORT + MEMBERS - 1)) out of range"
read -r -a CONFIGS <<<"$ORDER"
((${#CONFIGS[@]} > 0)) || die "ORDER is empty"
for c in "${CONFIGS[@]}"; do [[ "$c" == on || "$c" == off ]] || die "ORDER may hold only 'on' and 'off' (got '$c')"; done
[[ -z "$REUSE" || "$REUSE" == true || "$REUSE" == false ]] || die "REUSE must be true, false or empty (got '$REUSE')"

command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v curl >/dev/null 2>&1 || die "curl is required"
CLK_TCK="$(getconf CLK_TCK)"

build_drover
[[ -x "$DROVER_BIN" ]] || die "drover binary not found at $DROVER_BIN"

OUT_DIR="$REPO_DIR/bench/out/health-checks-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"
install_cleanup_trap
make_run_dir

# members.py raises its own limit; drover inherits this shell's (one socket per check in flight).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Checking 1,000 ports one by one takes seconds; the ends, the control port and the listener tell
# whether a leftover run is still there (members.py fails loudly on any other busy port).
require_port_free "$LISTEN_PORT" "$CONTROL_PORT" "$BASE_PORT" $((BASE_PORT + MEMBERS - 1))

# --- configs -------------------------------------------------------------------------------
# write_config FILE on|off: one listener, one farm of MEMBERS members; "on" adds the check table.
write_config() {
    local file="$1" checks="$2" i
    {
        echo "# bench/health-checks/run.sh: $MEMBERS members, health checks $checks, REUSE=${REUSE:-default}"
        echo "[server]"
        echo "threads = 1"
        echo
        echo "[[listener]]"
        echo "listen = \"127.0.0.1:$LISTEN_PORT\""
        echo "farm = \"big\""
        echo
        echo "[farm.big]"
        echo "policy = \"round-robin\""
        echo "members = ["
        for ((i = 0; i < MEMBERS; i++)); do
            echo "    { address = \"127.0.0.1:$((BASE_PORT + i))\" },"
        done
        echo "]"
        if [[ "$checks" == on ]]; then
            echo
            echo "[farm.big.check]"
            echo "type = \"http\""
            echo "path = \"/health\""
            echo "expect_body = \"OK\""
            echo "interval = \"1s\""
            echo "timeout = \"500ms\""
            echo "rise = 2"
            echo "fall = 3"
            if [[ -n "$REUSE" ]]; then
                echo "reuse_connection = $REUSE"
            fi
        fi
    } >"$file"
}
write_config "$OUT_DIR/checks-on.toml" on
write_config "$OUT_DIR/checks-off.toml" off

# --- members -------------------------------------------------------------------------------
log "starting members.py: $MEMBERS members on 127.0.0.1:$BASE_PORT..$((BASE_PORT + MEMBERS - 1))"
start_bg "$RUN_DIR/members.log" python3 -u "$HC_DIR/members.py" \
    --base "$BASE_PORT" --count "$MEMBERS" --control-port "$CONTROL_PORT"
MEMBERS_PID="$LAST_PID"
deadline=$((SECONDS + 60))
until grep -qx ready "$RUN_DIR/members.log" 2>/dev/null; do
    alive "$MEMBERS_PID" || { tail -n 20 "$RUN_DIR/members.log" >&2; die "members.py exited before it was ready"; }
    ((SECONDS < deadline)) || die "members.py not ready after 60 s"
    sleep 0.1
done

# counts FILE: members.py's request counters ({"requests": N, "per_port": [...]}) into FILE.
counts() {
    curl -fsS --max-time 5 -o "$1" "http://127.0.0.1:$CONTROL_PORT/count" || die "cannot read the counters of members.py"
}

# stop_pid PID: TERM, wait up to 5 s, KILL; then forget it (so cleanup cannot hit a reused PID).
stop_pid() {
    local pid="$1" deadline=$((SECONDS + 5)) i
    alive "$pid" && kill -TERM "$pid" 2>/dev/null
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    for i in "${!STARTED_PIDS[@]}"; do
        [[ "${STARTED_PIDS[$i]}" == "$pid" ]] && unset 'STARTED_PIDS[i]'
    done
    STARTED_PIDS=("${STARTED_PIDS[@]}")
}

IDLE_BUSY="$(machine_busy_pct 2)"
if ((IDLE_BUSY > 15)); then
    log "WARNING: the machine is busy (${IDLE_BUSY}% of a core used): $(top_others 3)"
fi

# --- runs ----------------------------------------------------------------------------------
RESULTS="$OUT_DIR/results.tsv"
printf 'config\tcpu_ticks\twindow_s\trequests\tproxied\n' >"$RESULTS"
for c in "${CONFIGS[@]}"; do
    cfg="$OUT_DIR/checks-$c.toml"
    log "checks $c: $DROVER_BIN serve --config $cfg --threads 1"
    start_drover "$LISTEN_PORT" serve --config "$cfg" --threads 1
    sleep "$WARMUP"
    alive "$DROVER_PID" || die "drover exited during the warm-up; see $RUN_DIR/drover.log"
    # One request through the proxy: the farm serves (with checks on, its members are up by now).
    proxied="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LISTEN_PORT/" || true)"
    counts "$OUT_DIR/counts-$c-0.json"
    t0="$(date +%s.%N)"
    cpu0="$(cpu_ticks "$DROVER_PID")"
    sleep "$SECONDS_RUN"
    cpu1="$(cpu_ticks "$DROVER_PID")"
    t1="$(date +%s.%N)"
    counts "$OUT_DIR/counts-$c-1.json"
    stop_pid "$DROVER_PID"
    cp "$RUN_DIR/drover.log" "$OUT_DIR/drover-$c.log" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\t%s\n' "$c" $((cpu1 - cpu0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$OUT_DIR/counts-$c" "$proxied" >>"$RESULTS"
    log "checks $c: $((cpu1 - cpu0)) ticks over ${SECONDS_RUN}s; proxied request answered $proxied"
done

# --- report --------------------------------------------------------------------------------
python3 - "$RESULTS" "$CLK_TCK" "$MEMBERS" "${REUSE:-default (true)}" <<'EOF' | tee "$OUT_DIR/table.md"
import json, sys

results, clk_tck, members, reuse = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = {}
with open(results) as f:
    next(f)
    for line in f:
        config, ticks, window, counts, proxied = line.rstrip("\n").split("\t")
        before = json.load(open(counts + "-0.json"))
        after = json.load(open(counts + "-1.json"))
        per = [b - a for a, b in zip(before["per_port"], after["per_port"])]
        window = float(window)
        rows[config] = {
            "cpu": int(ticks) / clk_tck / window * 100,
            "window": window,
            "requests": after["requests"] - before["requests"],
            "min": min(per), "max": max(per),
            "proxied": proxied,
        }

print(f"| config | CPU % of one core | checks answered | checks/s | per member in window (min-max) | proxied GET / |")
print("|---|---:|---:|---:|---|---|")
for config in ("off", "on"):
    r = rows.get(config)
    if r is None:
        continue
    print(f"| checks {config} | {r['cpu']:.2f} | {r['requests']} | {r['requests'] / r['window']:.1f} "
          f"| {r['min']}-{r['max']} | {r['proxied']} |")
if "on" in rows and "off" in rows:
    diff = rows["on"]["cpu"] - rows["off"]["cpu"]
    verdict = "under" if diff < 5 else "NOT under"
    print(f"| **difference (on - off)** | **{diff:.2f}** | | | | |")
    print()
    print(f"{members} members checked every second (reuse_connection: {reuse}): +{diff:.2f}% of one core ({verdict} the 5% target); "
          f"checks verified by the members: {rows['on']['requests'] / rows['on']['window']:.1f}/s.")
print()
windows = ", ".join("%s %.1fs" % (c, r["window"]) for c, r in rows.items())
print("CPU: utime+stime of the drover process (/proc/PID/stat) over the measured window "
      "(" + windows + "), as a % of one core.")
EOF
log "raw files: $OUT_DIR"
