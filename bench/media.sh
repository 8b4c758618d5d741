#!/usr/bin/env bash
# Concurrent G.711 calls through switchboard's relay, set up over SIP with SDP (bench/media_calls.py)
# and played with the rtpengine anchor's generator (../shared/peers/rtpengine/rtpblast.c), so the
# figures compare directly with ../shared/peers/rtpengine/bench.sh (run it right after, same CALLS).
#
# Usage: bench/media.sh CALLS [SECONDS]     (default 15 s)
# Prints rtpblast's line (calls pps sent received loss_pct p50_us p99_us max_us late_sends) and
# switchboard's CPU over all its threads during the playing (100 = one core).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RTPE=${RTPE:-$ROOT/../shared/peers/rtpengine}
CALLS=${1:?CALLS}
SECS=${2:-15}
IP=127.0.0.1
PORT=${PORT:-5080}
SB=$ROOT/target/release/switchboard
RUN=$(mktemp -d -t mediabench.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
cc -O2 -o "$RUN/rtpblast" "$RTPE/rtpblast.c"
. "$HERE/lib.sh" # cpu_ns
for u in 1000 1001; do "$SB" user add $u --password pw$u --domain $IP --data-dir "$RUN/sb" >/dev/null; done
"$SB" serve --sip-listen $IP:$PORT --domain $IP --data-dir "$RUN/sb" --http-listen $IP:18081 \
  --media-address $IP --rtp-ports 30000-39999 --media-timeout 600 --max-calls-per-user 0 >"$RUN/server.log" 2>&1 &
PID=$!
sleep 1
python3 "$HERE/media_calls.py" "$IP:$PORT" "$CALLS" "$RUN/pairs" 20000 24000
C0=$(cpu_ns $PID); T0=$(date +%s.%N)
"$RUN/rtpblast" "$RUN/pairs" "$SECS" "$IP" | tee "$RUN/out"
T1=$(date +%s.%N); C1=$(cpu_ns $PID)
echo "switchboard CPU% (100 = one core): $(awk -v a=$C0 -v b=$C1 -v t0=$T0 -v t1=$T1 'BEGIN{printf "%.1f", 100*(b-a)/1e9/(t1-t0)}')"
