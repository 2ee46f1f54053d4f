# Shared helpers for the bench/ scripts. Sourced (not executed) by bench/*/run.sh.
#
# Every process a script starts is recorded here by PID and stopped by PID on exit;
# nothing is ever killed by name.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PEERS_DIR="$BENCH_DIR/peers"

STARTED_PIDS=()   # processes started by this script (masters / foreground daemons)
CHILD_PIDS=()     # their children we looked up (nginx workers): "pid:comm"
RUN_DIR=""
KEEP_RUN_DIR="${KEEP_RUN_DIR:-0}"
LAST_PID=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# Install haproxy, nginx, wrk, h2load if any is missing.
ensure_tools() {
    local missing=() t
    for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
    ((${#missing[@]} == 0)) && return 0
    log "missing tools: ${missing[*]}; installing haproxy nginx wrk nghttp2-client"
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install haproxy nginx wrk nghttp2-client yourself"
        sudo=(sudo)
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy nginx wrk nghttp2-client; then
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy nginx wrk nghttp2-client
    fi
    for t in "$@"; do command -v "$t" >/dev/null 2>&1 || die "$t still missing after apt-get install"; done
}

make_run_dir() {
    RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/drover-bench.XXXXXX")"
    # nginx workers run as 'nobody' when started as root; let them traverse the run dir.
    chmod 755 "$RUN_DIR"
    mkdir -p "$RUN_DIR"/{backend,proxy}/{logs,tmp}
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

require_port_free() {
    local p
    for p in "$@"; do
        if port_open "$p"; then
            die "127.0.0.1:$p is already in use (another benchmark running, or a leftover process?). Stop it first."
        fi
    done
}

# wait_port PORT PID LOGFILE [SECONDS]: poll until PORT accepts, fail if PID dies or deadline passes.
wait_port() {
    local port="$1" pid="$2" logf="$3" secs="${4:-20}"
    local deadline=$((SECONDS + secs))
    while ! port_open "$port"; do
        if ! alive "$pid"; then
            log "process $pid exited before listening on $port; last lines of $logf:"
            tail -n 20 "$logf" >&2 || true
            die "startup failed"
        fi
        ((SECONDS < deadline)) || { tail -n 20 "$logf" >&2 || true; die "timeout waiting for 127.0.0.1:$port"; }
        sleep 0.1
    done
}

# start_bg LOGFILE CMD...: start CMD in the background, record its PID in LAST_PID and STARTED_PIDS.
start_bg() {
    local logf="$1"; shift
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

# children PID: PIDs of the direct children of PID (one per line).
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# nginx_pids MASTER: waits for the worker(s) to appear; echoes "master worker..." and records workers.
NGINX_PIDS=""
nginx_pids() {
    local master="$1" w deadline=$((SECONDS + 10))
    local workers=""
    while :; do
        workers="$(children "$master" | xargs)"
        [[ -n "$workers" ]] && break
        ((SECONDS < deadline)) || die "nginx master $master has no worker process"
        sleep 0.1
    done
    for w in $workers; do CHILD_PIDS+=("$w:$(cat /proc/"$w"/comm 2>/dev/null)"); done
    NGINX_PIDS="$master $workers"
    NGINX_WORKERS="$workers"
}

# start_nginx NAME CONF PORT: nginx in the foreground (daemon off) with prefix $RUN_DIR/NAME.
# Sets NGINX_PIDS ("master worker...") and NGINX_WORKERS.
start_nginx() {
    local name="$1" conf="$2" port="$3"
    local prefix="$RUN_DIR/$name"
    mkdir -p "$prefix/logs" "$prefix/tmp"
    start_bg "$prefix/logs/stdout.log" nginx -p "$prefix/" -e "$prefix/logs/error.log" -c "$conf" -g 'daemon off;'
    local master="$LAST_PID"
    wait_port "$port" "$master" "$prefix/logs/error.log"
    nginx_pids "$master"
}

# start_haproxy CFG_TEMPLATE PORT: substitutes @RUN@, starts haproxy in the foreground. Sets HAPROXY_PID.
start_haproxy() {
    local tmpl="$1" port="$2"
    sed "s|@RUN@|$RUN_DIR|g" "$tmpl" >"$RUN_DIR/haproxy.cfg"
    haproxy -c -q -f "$RUN_DIR/haproxy.cfg" || die "haproxy config check failed"
    start_bg "$RUN_DIR/haproxy.log" haproxy -db -f "$RUN_DIR/haproxy.cfg"
    HAPROXY_PID="$LAST_PID"
    wait_port "$port" "$HAPROXY_PID" "$RUN_DIR/haproxy.log"
}

# start_drover PORT ARGS...: starts the drover binary from the repo root. Sets DROVER_PID.
start_drover() {
    local port="$1"; shift
    [[ -x "$DROVER_BIN" ]] || die "drover binary not found at $DROVER_BIN"
    start_bg "$RUN_DIR/drover.log" bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO_DIR" "$DROVER_BIN" "$@"
    DROVER_PID="$LAST_PID"
    wait_port "$port" "$DROVER_PID" "$RUN_DIR/drover.log" 60
}

build_drover() {
    if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
        log "SKIP_BUILD=1: using existing $DROVER_BIN"
        return 0
    fi
    log "cargo build --release (in $REPO_DIR)"
    (cd "$REPO_DIR" && cargo build --release) || die "cargo build --release failed"
}

cleanup() {
    local rc=$?
    set +e
    local pid i
    # stop in reverse start order: proxies first, backends last
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        pid="${STARTED_PIDS[$i]}"
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    local deadline=$((SECONDS + 5))
    for pid in "${STARTED_PIDS[@]}"; do
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # nginx workers normally exit with their master; kill any orphan that still has the same name
    local entry comm
    for entry in "${CHILD_PIDS[@]}"; do
        pid="${entry%%:*}"; comm="${entry#*:}"
        if alive "$pid" && [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$comm" ]]; then
            sleep 0.5
            alive "$pid" && kill -KILL "$pid" 2>/dev/null
        fi
    done
    if [[ -n "$RUN_DIR" && -d "$RUN_DIR" ]]; then
        if [[ -n "${OUT_DIR:-}" && -d "${OUT_DIR:-}" ]]; then
            mkdir -p "$OUT_DIR/logs"
            (cd "$RUN_DIR" && find . -name '*.log' -size +0 -exec cp --parents {} "$OUT_DIR/logs/" \;) 2>/dev/null
        fi
        if [[ "$KEEP_RUN_DIR" == 1 ]]; then log "run dir kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
    fi
    exit "$rc"
}

install_cleanup_trap() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# cpu_ticks PID...: utime+stime (fields 14+15 of /proc/PID/stat) summed over PIDs, in clock ticks.
cpu_ticks() {
    local total=0 pid line rest
    for pid in "$@"; do
        read -r line <"/proc/$pid/stat" || die "cannot read /proc/$pid/stat (process gone?)"
        rest="${line##*) }"            # fields 3.. (comm may contain spaces)
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))  # field 14 = 12th after ')', field 15 = 13th
    done
    echo "$total"
}

# backend_accepts: the backend nginx's "accepts" counter from stub_status on 127.0.0.1:9000.
# (The status request itself is one accepted connection.)
backend_accepts() {
    local resp
    resp="$(exec 3<>/dev/tcp/127.0.0.1/9000 && printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3)" \
        || die "cannot read stub_status on 127.0.0.1:9000"
    # body: "Active connections: N \nserver accepts handled requests\n A H R \n..."
    awk '/server accepts handled requests/ { getline; print $1; exit }' <<<"$resp" | tr -d '\r'
}

# sys_busy_ticks: machine-wide user+nice+system time (first line of /proc/stat), in clock ticks.
# (irq/softirq/steal are left out on both sides of the "foreign CPU" subtraction.)
sys_busy_ticks() {
    local _cpu u n s _rest
    read -r _cpu u n s _rest </proc/stat
    echo $((u + n + s))
}

# shell_children_ticks: cutime+cstime (fields 16+17) of this script's shell: the CPU of every child
# it has waited for (wrk, h2load, curl, python...).
shell_children_ticks() {
    local line rest
    read -r line <"/proc/$$/stat"
    rest="${line##*) }"
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${14} + ${15}))
}

# machine_busy_pct SECONDS: % of one core used machine-wide over SECONDS (call with nothing of ours running).
machine_busy_pct() {
    local b0 b1 hz
    hz="$(getconf CLK_TCK)"
    b0="$(sys_busy_ticks)"; sleep "$1"; b1="$(sys_busy_ticks)"
    echo $(((b1 - b0) * 100 / (hz * $1)))
}

# top_others: the few busiest processes right now (for a warning).
top_others() { ps -eo pcpu=,pid=,comm= --sort=-pcpu | head -n "${1:-3}" | awk '{printf "%s(pid %s, %s%%) ", $3, $2, $1}'; }
