#!/usr/bin/env bash
# The web console at N registrations (default 1,000; issue #8: "works at 1,000 registrations
# without freezing"), measured in real headless Chromium.
#
# Usage: bench/console.sh [N_USERS=1000]      (VERBOSE=1 for details on stderr; WINDOW=10 s)
#
# What it does: provisions users 1000..(999+N) (password pw<user>) with `switchboard user import`
# into a temp --data-dir, starts `switchboard serve` on 127.0.0.1 (ports chosen by the kernel,
# --domain 127.0.0.1 --no-media), registers every user once with sipload (500 flows/s, Expires
# 3600, so the bindings stay for the whole run) and checks GET /api/registrations lists N. Then
# bench/console_load.py drives Chromium through chromedriver (plain WebDriver over HTTP) and
# prints one line:
#
#   console rows=1000 first_render_ms=... long_tasks=N max_long_task_ms=... worst_frame_gap_ms=...
#           filter_ms=... heap_mb=... api_registrations_ms=... api_bytes=...
#
#   first_render_ms     navigation start -> N rows in the DOM and painted
#   long_tasks, max_long_task_ms, worst_frame_gap_ms, max_loaf_ms
#                       over WINDOW s of the page left alone (it refreshes every 2 s and ticks
#                       the countdowns every second): long tasks (> 50 ms), the longest gap
#                       between requestAnimationFrame callbacks, the longest long animation frame
#   filter_ms           last keystroke of "19" in the filter box -> the visible rows changed and
#                       painted; includes the console's 120 ms debounce (filter_work_ms: without)
#   heap_mb             performance.memory.usedJSHeapSize
#   api_registrations_ms, api_bytes  median of 10 GET /api/registrations (Python urllib)
#
# The exit status is non-zero when the page never shows N rows. Everything is on loopback and
# bounded (about 30 s in all). A freeze would show as long tasks on every refresh (5 in 10 s)
# and a worst frame gap of hundreds of ms; a smooth page has none and a gap near 17 ms.
#
# Needs: target/release/{switchboard,sipload} (built with `cargo build --release -p switchboard
# -p sipload` when missing), python3, /usr/bin/chromium and /usr/bin/chromedriver (or CHROMIUM=,
# CHROMEDRIVER=).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-1000}
WINDOW=${WINDOW:-10}
IP=127.0.0.1
SB=$ROOT/target/release/switchboard
LOAD=$ROOT/target/release/sipload
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
case "$N" in '' | *[!0-9]* | 0) echo "usage: $0 [N_USERS=1000]" >&2; exit 2 ;; esac

if [ ! -x "$SB" ] || [ ! -x "$LOAD" ]; then
  (cd "$ROOT" && cargo build --release -p switchboard -p sipload)
fi

RUN=$(mktemp -d -t consolebench.XXXXXX)
PID=""
LOADPY=""
cleanup() {
  set +e
  [ -n "$LOADPY" ] && kill "$LOADPY" 2>/dev/null && wait "$LOADPY" 2>/dev/null
  # console_load.py stops chromedriver itself; if it died first, its pidfile is still there.
  # Kill that process group from Python: procps-ng 4.0.2's `kill -KILL -PGID` signals every process.
  if [ -s "$RUN/chromedriver.pid" ]; then
    python3 - "$(cat "$RUN/chromedriver.pid")" <<'PY'
import os, signal, sys
pid = int(sys.argv[1])
try:
    pgid = os.getpgid(pid)
    if pid > 1 and pgid == pid and pgid != os.getpgid(0):
        os.killpg(pgid, signal.SIGKILL)
except (ProcessLookupError, PermissionError):
    pass
PY
  fi
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Users 1000..(999+N), password pw<user>: what sipload registers.
{
  echo "ext,password"
  for ((u = 1000; u < 1000 + N; u++)); do echo "$u,pw$u"; done
} >"$RUN/users.csv"
"$SB" user import "$RUN/users.csv" --domain "$IP" --data-dir "$RUN/sb" >"$RUN/import.log" 2>&1 || {
  cat "$RUN/import.log" >&2
  exit 1
}

: >"$RUN/server.out"
"$SB" serve --sip-listen "$IP:0" --http-listen "$IP:0" --domain "$IP" --data-dir "$RUN/sb" --no-media \
  >"$RUN/server.out" 2>"$RUN/server.log" &
PID=$!
SIP="" HTTP=""
for _ in $(seq 100); do
  SIP=$(awk '$1 == "sip" && $2 == "udp" {print $3; exit}' "$RUN/server.out")
  HTTP=$(awk '$1 == "http" {print $2; exit}' "$RUN/server.out")
  [ -n "$SIP" ] && [ -n "$HTTP" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$SIP" ] || [ -z "$HTTP" ]; then
  echo "switchboard did not start:" >&2
  cat "$RUN/server.out" "$RUN/server.log" >&2
  exit 1
fi

# Every user once: N flows at 500/s (or N/s for fewer than 500), Expires 3600.
RATE=$((N < 500 ? N : 500))
SECS=$(python3 -c "print($N / $RATE)")
"$LOAD" register --server "$SIP" --rate "$RATE" --duration "$SECS" --users "1000-$((999 + N))" \
  >"$RUN/load.out" 2>"$RUN/load.err" || {
  cat "$RUN/load.err" >&2
  exit 1
}
REGS=$(python3 - "http://$HTTP/api/registrations" <<'PY'
import json, sys, urllib.request
print(len(json.load(urllib.request.urlopen(sys.argv[1], timeout=10))["registrations"]))
PY
)
echo "# $N users, $(awk -F= '$1 == "succeeded" {print $2}' "$RUN/load.out") registered by sipload;" \
  "GET /api/registrations: $REGS; console http://$HTTP/" >&2
if [ "$REGS" -ne "$N" ]; then
  echo "expected $N registrations, the API lists $REGS" >&2
  cat "$RUN/load.out" >&2
  exit 1
fi

python3 "$HERE/console_load.py" --url "http://$HTTP/" --rows "$N" --window "$WINDOW" \
  --chromium "$CHROMIUM" --chromedriver "$CHROMEDRIVER" --pidfile "$RUN/chromedriver.pid" --tmpdir "$RUN" \
  ${VERBOSE:+--verbose} &
LOADPY=$!
STATUS=0
wait "$LOADPY" || STATUS=$?
LOADPY=""
exit "$STATUS"
