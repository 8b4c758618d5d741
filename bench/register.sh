#!/usr/bin/env bash
# REGISTER + digest auth, switchboard against Kamailio, driven by sipload (bench/sipload), which
# runs the flow of ../shared/peers/kamailio/scenarios/reg_auth.xml at about a third of SIPp's CPU
# cost, so the servers, not the generator, are what saturates.
#
# Usage: bench/register.sh RATE [SECONDS] [switchboard|kamailio|both]   (default: 10 s, both)
#
# Each server is started fresh on 127.0.0.1:5060 with users 1000..1999 (password pw<user>,
# realm 127.0.0.1) exactly as ../shared/peers/kamailio/bench.sh provisions them: switchboard with
# `switchboard user add` on its embedded store (bindings durable before each 200), Kamailio with
# that directory's kamailio.cfg (usrloc in memory, 4 UDP workers). The server's CPU is summed over
# all its threads/processes from /proc/PID/task/*/schedstat; 100 % = one core.
# Needs: cargo-built target/release/{switchboard,sipload}; kamailio and kamcmd for Kamailio.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
KAMDIR=${KAMDIR:-$ROOT/../shared/peers/kamailio}
RATE=${1:?RATE}
SECS=${2:-10}
WHICH=${3:-both}
IP=127.0.0.1
PORT=5060
SB=$ROOT/target/release/switchboard
LOAD=$ROOT/target/release/sipload
SOCKETS=${SOCKETS:-8}

RUN=$(mktemp -d -t regbench.XXXXXX)
PID=""
cleanup() {
  set +e
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT

# cpu_ns, wait_options
. "$HERE/lib.sh"

start_switchboard() {
  for u in $(seq 1000 1999); do
    "$SB" user add "$u" --password "pw$u" --domain "$IP" --data-dir "$RUN/sb" >/dev/null
  done
  "$SB" serve --sip-listen "$IP:$PORT" --domain "$IP" --data-dir "$RUN/sb" --http-listen "$IP:18080" ${SB_ARGS:-} \
    >"$RUN/server.log" 2>&1 &
  PID=$!
  wait_options "$IP" "$PORT"
  PIDS=("$PID")
}

start_kamailio() {
  mkdir -p "$RUN/db"
  python3 - "$RUN/db" "$IP" <<'PY'
import hashlib, sys
db, ip = sys.argv[1], sys.argv[2]
with open(f"{db}/version", "w") as f:
    f.write("id(int,auto) table_name(string) table_version(int) \n1:version:1\n2:subscriber:7\n3:location:9\n")
with open(f"{db}/subscriber", "w") as f:
    f.write("id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n")
    for i, u in enumerate(range(1000, 2000), 1):
        pw = f"pw{u}"
        ha1 = hashlib.md5(f"{u}:{ip}:{pw}".encode()).hexdigest()
        ha1b = hashlib.md5(f"{u}@{ip}:{ip}:{pw}".encode()).hexdigest()
        f.write(f"{i}:{u}:{ip}:{pw}:{ha1}:{ha1b}\n")
PY
  kamailio -f "$KAMDIR/kamailio.cfg" -DD -E -m 2048 -M 16 -Y "$RUN" \
    -A "DBURL=\"text://$RUN/db\"" -A "CTLSOCK=\"unix:$RUN/kamailio_ctl\"" -A "CHILDREN=4" -A "LISTEN_IP=$IP" \
    >"$RUN/server.log" 2>&1 &
  PID=$!
  wait_options "$IP" "$PORT"
  mapfile -t PIDS < <(echo "$PID"; ps -o pid= --ppid "$PID" | tr -d ' ')
}

run_one() {
  local name=$1
  if [ "$name" = switchboard ]; then start_switchboard; else start_kamailio; fi
  local c0 t0 c1 t1
  c0=$(cpu_ns "${PIDS[@]}"); t0=$(date +%s%N)
  "$LOAD" register --server "$IP:$PORT" --rate "$RATE" --duration "$SECS" --users 1000-1999 \
    --sockets "$SOCKETS" >"$RUN/load.out" 2>"$RUN/load.err" || true
  c1=$(cpu_ns "${PIDS[@]}"); t1=$(date +%s%N)
  local rss
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$PID"/status)
  python3 - "$name" "$RATE" "$SECS" "$c0" "$c1" "$t0" "$t1" "$rss" "$RUN/load.out" <<'PY'
import sys
name, rate, secs, c0, c1, t0, t1, rss, out = sys.argv[1:]
kv = dict(l.split("=", 1) for l in open(out).read().split() if "=" in l)
cpu = 100 * (int(c1) - int(c0)) / (int(t1) - int(t0))
print(f"{name:11s} offered={rate}/s x {secs}s  ok={kv.get('succeeded')} failed={kv.get('failed')} "
      f"ok/s={kv.get('successful_per_s')} retrans={kv.get('retransmissions')} "
      f"p99={kv.get('latency_p99_ms')}ms server_cpu={cpu:.0f}% sipload_cpu={kv.get('cpu_pct')}% rss={int(rss)//1024}MB")
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  sleep 1
}

case "$WHICH" in
  both) run_one switchboard; run_one kamailio ;;
  switchboard | kamailio) run_one "$WHICH" ;;
  *) echo "usage: $0 RATE [SECONDS] [switchboard|kamailio|both]" >&2; exit 2 ;;
esac
