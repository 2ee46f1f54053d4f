#!/usr/bin/env bash
# Memory of idle keep-alive client connections: the target's RSS while it holds N (default 10,000)
# client connections that have each served one request and now idle in keep-alive.
# See bench/README.md.
#
# Usage: bench/idle-conns/run.sh
# Env:   TARGET=drover|haproxy|nginx   (default drover; for nginx the worker's memory is measured)
#        N=10000  BATCH=500 (connections opened concurrently per batch)  SETTLE=2  HOLD=0 (seconds)
#        DROVER_ARGS=""  DROVER_CONFIG=examples/peers.toml  DROVER_BIN=target/release/drover  SKIP_BUILD=1
#        KEEP_RUN_DIR=1
set -euo pipefail

# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

TARGET="${TARGET:-drover}"
N="${N:-10000}"
BATCH="${BATCH:-500}"
SETTLE="${SETTLE:-2}"
HOLD="${HOLD:-0}"
DROVER_ARGS="${DROVER_ARGS:-}"
DROVER_CONFIG="${DROVER_CONFIG:-examples/peers.toml}"
DROVER_BIN="${DROVER_BIN:-$REPO_DIR/target/release/drover}"
IDLE_DIR="$BENCH_DIR/idle-conns"

case "${1:-}" in -h | --help) sed -n '2,10p' "$0"; exit 0 ;; "") ;; *) die "unknown argument: $1" ;; esac
declare -A PORT=([drover]=8085 [haproxy]=8081 [nginx]=8082)
[[ -n "${PORT[$TARGET]:-}" ]] || die "TARGET must be drover, haproxy or nginx (got '$TARGET')"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 ]] || die "N must be a positive integer"
port="${PORT[$TARGET]}"

# Open-file limit: the client and the target each hold N sockets. Aim for >= 30000; without
# CAP_SYS_RESOURCE we can only go up to the hard limit, which must still fit N plus headroom.
want=$((N + 2000 > 30000 ? N + 2000 : 30000))
if ! ulimit -HSn "$want" 2>/dev/null; then
    hard="$(ulimit -Hn)"
    if [[ "$hard" != unlimited ]] && ((hard < want)); then
        ulimit -Sn "$hard"
        log "note: cannot raise the open-file limit to $want (hard limit $hard); using $hard"
        ((hard >= N + 500)) || die "open-file hard limit $hard is too low for N=$N connections"
    else
        ulimit -Sn "$want"
    fi
fi
log "open-file limit: $(ulimit -Sn) (soft) / $(ulimit -Hn) (hard)"

if [[ "$TARGET" == drover ]]; then
    [[ -f "$REPO_DIR/$DROVER_CONFIG" || -f "$DROVER_CONFIG" ]] || die "drover config $DROVER_CONFIG not found"
    build_drover
fi
if [[ "$TARGET" == haproxy ]]; then ensure_tools nginx haproxy curl; else ensure_tools nginx curl; fi

install_cleanup_trap
make_run_dir
require_port_free 9000 9001 9002 9003 "$port"

log "starting backend nginx (127.0.0.1:9000-9003)"
start_nginx backend "$PEERS_DIR/backends.nginx.conf" 9003

maxc=$((N + 1000))
case "$TARGET" in
    drover)
        log "starting drover: $DROVER_BIN serve --config $DROVER_CONFIG $DROVER_ARGS"
        # shellcheck disable=SC2086
        start_drover 8085 serve --config "$DROVER_CONFIG" $DROVER_ARGS
        MEASURED="$DROVER_PID"
        ;;
    haproxy)
        # The peer config caps connections at maxconn 4000; only the connection limits are raised.
        # HAProxy wants 2 fds per maxconn (client + server side) and by default refuses to start if
        # it cannot get them; idle client connections take one fd each, so with a lower hard limit
        # we let it start anyway ('no strict-limits': it warns instead).
        extra=""
        (( $(ulimit -Hn) < 2 * maxc + 100 )) && extra="\n    no strict-limits"
        sed -e "s/^\(\s*maxconn\) 4000/\1 $maxc$extra/" -e "s/^defaults$/defaults\n    maxconn $maxc/" \
            "$PEERS_DIR/haproxy.cfg" >"$RUN_DIR/haproxy.idle.cfg.in"
        log "starting HAProxy (maxconn $maxc)"
        start_haproxy "$RUN_DIR/haproxy.idle.cfg.in" 8081
        MEASURED="$HAPROXY_PID"
        ;;
    nginx)
        # The peer config has worker_connections 8192 (clients + upstreams); only that is raised, to
        # 2N+1000: nginx closes idle keep-alive connections when fewer than 1/16 of its connection
        # slots are free, which upstream connections opened during the batches would otherwise cause.
        sed -e "s/worker_connections 8192;/worker_connections $((2 * N + 1000));/" \
            "$PEERS_DIR/proxy.nginx.conf" >"$RUN_DIR/proxy.idle.nginx.conf"
        log "starting nginx proxy (worker_connections $((2 * N + 1000)))"
        start_nginx proxy "$RUN_DIR/proxy.idle.nginx.conf" 8082
        MEASURED="$(tr ' ' ',' <<<"$NGINX_WORKERS")"
        ;;
esac

deadline=$((SECONDS + 15))
until curl -fsS "http://127.0.0.1:$port/" 2>/dev/null | grep -q peer-bench-backend; do
    ((SECONDS < deadline)) || die "$TARGET (127.0.0.1:$port) does not answer 200 with the member's body"
    sleep 0.2
done
sleep 1   # let the startup settle before the "before" snapshot

log "opening $N connections to $TARGET on 127.0.0.1:$port (measured PIDs: $MEASURED)"
mkdir -p "$BENCH_DIR/out"
OUT_FILE="$BENCH_DIR/out/idle-conns-$TARGET-$(date +%Y%m%d-%H%M%S).txt"
rc=0
python3 "$IDLE_DIR/hold.py" --port "$port" --pids "$MEASURED" --label "$TARGET" --n "$N" --batch "$BATCH" \
    --settle "$SETTLE" --hold "$HOLD" | tee "$OUT_FILE" || rc=$?
if [[ "$TARGET" == haproxy ]] && grep -qi 'warning\|alert' "$RUN_DIR/haproxy.log"; then
    log "haproxy said:"; grep -i 'warning\|alert' "$RUN_DIR/haproxy.log" | head -5 >&2
fi
echo "machine: $(nproc) CPU ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr); command: TARGET=$TARGET N=$N bench/idle-conns/run.sh" | tee -a "$OUT_FILE"
log "saved to $OUT_FILE"
exit "$rc"
