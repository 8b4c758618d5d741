#!/usr/bin/env bash
# REGISTER + digest auth on shared stores (issue #9), driven by sipload like bench/register.sh:
#
#   embedded   one node, everything in its SQLite file (the default)
#   redis      one node, registrations in Redis, subscribers in PostgreSQL
#   two-nodes  two nodes (127.0.0.1:5060 and :5062) sharing Redis and PostgreSQL, each offered
#              half the rate by its own sipload (users 1000-1499 and 1500-1999)
#
# Usage: bench/cluster.sh RATE [SECONDS] [embedded|redis|two-nodes|all]   (default: 10 s, all)
#
# Needs: cargo-built target/release/{switchboard,sipload}; Redis at $REDIS and PostgreSQL at
# $POSTGRES (defaults: the test services .ci/run sets up). The database sb_bench and the Redis
# keys bench:* are made fresh for each run. The servers' CPU is summed over all their threads
# (100 % = one core); Redis's and PostgreSQL's CPU is shown apart.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RATE=${1:?RATE}
SECS=${2:-10}
WHICH=${3:-all}
IP=127.0.0.1
SB=$ROOT/target/release/switchboard
LOAD=$ROOT/target/release/sipload
REDIS=${REDIS:-redis://127.0.0.1:6379/}
POSTGRES=${POSTGRES:-postgres://switchboard:switchboard@127.0.0.1:5432/postgres}
PG_BASE=${POSTGRES%/*}
DB=sb_bench

RUN=$(mktemp -d -t clusterbench.XXXXXX)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT

# cpu_ns, wait_options
. "$HERE/lib.sh"

fresh_stores() {
  psql "$POSTGRES" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  psql "$POSTGRES" -qc "CREATE DATABASE $DB" >/dev/null
  redis-cli --scan --pattern 'bench:*' | xargs -r redis-cli del >/dev/null
}

users_csv() {
  for u in $(seq 1000 1999); do echo "$u,pw$u"; done >"$RUN/users.csv"
}

# start_node NAME PORT STORE-ARGS...
start_node() {
  local name=$1 port=$2
  shift 2
  "$SB" serve --sip-listen "$IP:$port" --domain "$IP" --data-dir "$RUN/$name" \
    --http-listen "$IP:0" --node-id "$name" "$@" >"$RUN/$name.log" 2>&1 &
  PIDS+=("$!")
  wait_options "$IP" "$port"
}

service_pids() {
  pgrep -x redis-server || true
  pgrep -x postgres || true
}

report() {
  local label=$1 c0=$2 c1=$3 s0=$4 s1=$5 t0=$6 t1=$7
  shift 7
  python3 - "$label" "$RATE" "$SECS" "$c0" "$c1" "$s0" "$s1" "$t0" "$t1" "$@" <<'PY'
import sys
label, rate, secs, c0, c1, s0, s1, t0, t1, *outs = sys.argv[1:]
ok = failed = retrans = 0; per_s = 0.0; p99 = 0.0
for out in outs:
    kv = dict(l.split("=", 1) for l in open(out).read().split() if "=" in l)
    ok += int(kv.get("succeeded", 0)); failed += int(kv.get("failed", 0))
    retrans += int(kv.get("retransmissions", 0)); per_s += float(kv.get("successful_per_s", 0))
    p99 = max(p99, float(kv.get("latency_p99_ms", 0)))
wall = int(t1) - int(t0)
print(f"{label:10s} offered={rate}/s x {secs}s  ok={ok} failed={failed} ok/s={per_s:.0f} retrans={retrans} "
      f"p99={p99:.1f}ms switchboard_cpu={100 * (int(c1) - int(c0)) / wall:.0f}% "
      f"redis+postgres_cpu={100 * (int(s1) - int(s0)) / wall:.0f}%")
PY
}

run() {
  local which=$1
  fresh_stores
  users_csv
  local shared=(--store-subscribers "$PG_BASE/$DB" --store-records "$PG_BASE/$DB"
    --store-locations "${REDIS}?prefix=bench:")
  case "$which" in
    embedded)
      "$SB" user import "$RUN/users.csv" --domain "$IP" --data-dir "$RUN/a" >/dev/null 2>&1
      start_node a 5060 ;;
    redis)
      "$SB" user import "$RUN/users.csv" --domain "$IP" --store-subscribers "$PG_BASE/$DB" >/dev/null 2>&1
      start_node a 5060 "${shared[@]}" ;;
    two-nodes)
      "$SB" user import "$RUN/users.csv" --domain "$IP" --store-subscribers "$PG_BASE/$DB" >/dev/null 2>&1
      start_node a 5060 "${shared[@]}"
      start_node b 5062 "${shared[@]}" ;;
  esac
  local services
  mapfile -t services < <(service_pids)
  local c0 s0 t0 c1 s1 t1
  c0=$(cpu_ns "${PIDS[@]}"); s0=$(cpu_ns "${services[@]}"); t0=$(date +%s%N)
  if [ "$which" = two-nodes ]; then
    local half=$((RATE / 2))
    "$LOAD" register --server "$IP:5060" --rate "$half" --duration "$SECS" --users 1000-1499 \
      --sockets 4 >"$RUN/load-a.out" 2>/dev/null &
    local la=$!
    "$LOAD" register --server "$IP:5062" --rate "$half" --duration "$SECS" --users 1500-1999 \
      --sockets 4 >"$RUN/load-b.out" 2>/dev/null || true
    wait "$la" || true
    c1=$(cpu_ns "${PIDS[@]}"); s1=$(cpu_ns "${services[@]}"); t1=$(date +%s%N)
    report "$which" "$c0" "$c1" "$s0" "$s1" "$t0" "$t1" "$RUN/load-a.out" "$RUN/load-b.out"
  else
    "$LOAD" register --server "$IP:5060" --rate "$RATE" --duration "$SECS" --users 1000-1999 \
      --sockets 8 >"$RUN/load.out" 2>/dev/null || true
    c1=$(cpu_ns "${PIDS[@]}"); s1=$(cpu_ns "${services[@]}"); t1=$(date +%s%N)
    report "$which" "$c0" "$c1" "$s0" "$s1" "$t0" "$t1" "$RUN/load.out"
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
  PIDS=()
  sleep 1
}

case "$WHICH" in
  all) run embedded; run redis; run two-nodes ;;
  embedded | redis | two-nodes) run "$WHICH" ;;
  *) echo "usage: $0 RATE [SECONDS] [embedded|redis|two-nodes|all]" >&2; exit 2 ;;
esac
psql "$POSTGRES" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
redis-cli --scan --pattern 'bench:*' | xargs -r redis-cli del >/dev/null || true
