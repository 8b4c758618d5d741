# Shared by the bench scripts (sourced): CPU time of processes and a wait for a SIP server.

# cpu_ns PID...: CPU nanoseconds so far of every thread of the processes (100 % = one core).
cpu_ns() {
  local t=0 f v p
  for p in "$@"; do
    for f in /proc/$p/task/*/schedstat; do
      v=$(awk '{print $1}' "$f" 2>/dev/null) && t=$((t + ${v:-0}))
    done
  done
  echo "$t"
}

# wait_options IP PORT: until a SIP server answers OPTIONS over UDP there (10 s at most).
wait_options() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
for _ in range(100):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2); s.bind((ip, 0))
    m = (f"OPTIONS sip:{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{s.getsockname()[1]};branch=z9hG4bKprobe\r\n"
         f"Max-Forwards: 70\r\nFrom: <sip:probe@{ip}>;tag=1\r\nTo: <sip:{ip}>\r\nCall-ID: probe@{ip}\r\n"
         f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    try:
        s.sendto(m.encode(), (ip, port)); s.recvfrom(65535); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}
