#!/usr/bin/env python3
"""Sets up N calls through switchboard for the media benchmark and writes rtpblast's pair file.

usage: media_calls.py SERVER_IP:PORT CALLS PAIRS_FILE [A_BASE B_BASE]

User 1001 registers a contact on this script's callee socket; user 1000 then makes CALLS calls
to 1001 (INVITE -> 407 -> ACK -> INVITE with digest -> 200 -> ACK), one after another. Call i's
caller SDP announces RTP port A_BASE+2i and the callee's answer B_BASE+2i, the ports rtpblast
binds. The port in the 200 the caller gets is where A sends (leg A of the relay); the port in the
INVITE the callee gets is where B sends (leg B). Each line of PAIRS_FILE:
"A_PORT A_DEST_IP:PORT B_PORT B_DEST_IP:PORT", the format of ../shared/peers/rtpengine/rtpblast.c.
The calls stay up (no BYE): the server is stopped after the measurement.
"""
import hashlib
import re
import socket
import sys
import time

server = sys.argv[1]
calls = int(sys.argv[2])
pairs_path = sys.argv[3]
a_base = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
b_base = int(sys.argv[5]) if len(sys.argv) > 5 else 24000
ip, port = server.rsplit(":", 1)
dst = (ip, int(port))
realm = ip

caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
caller.bind((ip, 0))
callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
callee.bind((ip, 0))
for s in (caller, callee):
    s.settimeout(5)
cport = caller.getsockname()[1]
eport = callee.getsockname()[1]


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def digest(method, uri, user, password, challenge, header):
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    resp = md5(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
    return (f'{header}: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"\r\n')


def recv_until(sock, pred):
    while True:
        data = sock.recv(65535).decode(errors="replace")
        if pred(data):
            return data


def header(msg, name):
    m = re.search(rf"^{name}:\s*(.*)$", msg, re.M | re.I)
    return m.group(1).strip() if m else None


def sdp(port, user):
    body = (f"v=0\r\no={user} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n")
    return body


def sdp_port(msg):
    return int(re.search(r"^m=audio (\d+)", msg, re.M).group(1))


# Register the callee.
reg_uri = f"sip:{ip}:{port}"
for cseq, auth in ((1, ""), (2, None)):
    if auth is None:
        auth = digest("REGISTER", reg_uri, "1001", "pw1001", chal, "Authorization")
    msg = (f"REGISTER {reg_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{eport};branch=z9hG4bKreg{cseq};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:1001@{ip}>;tag=r1\r\nTo: <sip:1001@{ip}>\r\nCall-ID: reg@{ip}\r\n"
           f"CSeq: {cseq} REGISTER\r\nContact: <sip:1001@{ip}:{eport}>\r\nExpires: 3600\r\n{auth}Content-Length: 0\r\n\r\n")
    callee.sendto(msg.encode(), dst)
    resp = recv_until(callee, lambda d: d.startswith("SIP/2.0"))
    chal = header(resp, "WWW-Authenticate")
if not resp.startswith("SIP/2.0 200"):
    sys.exit(f"callee registration failed: {resp.splitlines()[0]}")

pairs = []
t0 = time.time()
for i in range(calls):
    a_port, b_port = a_base + 2 * i, b_base + 2 * i
    uri = f"sip:1001@{ip}"
    call_id = f"media-{i}-{time.time()}@{ip}"
    body = sdp(a_port, "1000")

    def invite(cseq, auth):
        return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{cport};branch=z9hG4bKi{i}c{cseq};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:1000@{ip}>;tag=a{i}\r\nTo: <sip:1001@{ip}>\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq} INVITE\r\nContact: <sip:1000@{ip}:{cport}>\r\n{auth}"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")

    caller.sendto(invite(1, "").encode(), dst)
    r = recv_until(caller, lambda d: d.startswith("SIP/2.0 407"))
    to = header(r, "To")
    caller.sendto((f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{cport};branch=z9hG4bKi{i}c1;rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:1000@{ip}>;tag=a{i}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode(), dst)
    auth = digest("INVITE", uri, "1000", "pw1000", header(r, "Proxy-Authenticate"), "Proxy-Authorization")
    caller.sendto(invite(2, auth).encode(), dst)
    inv = recv_until(callee, lambda d: d.startswith("INVITE "))
    b_dest = sdp_port(inv)
    vias = re.findall(r"^Via:.*$", inv, re.M | re.I)
    rr = re.findall(r"^Record-Route:.*$", inv, re.M | re.I)
    answer = sdp(b_port, "1001")
    ok = ("SIP/2.0 200 OK\r\n" + "\r\n".join(vias) + "\r\n" + ("\r\n".join(rr) + "\r\n" if rr else "")
          + f"From: {header(inv, 'From')}\r\nTo: {header(inv, 'To')};tag=b{i}\r\nCall-ID: {call_id}\r\n"
          f"CSeq: {header(inv, 'CSeq')}\r\nContact: <sip:1001@{ip}:{eport}>\r\n"
          f"Content-Type: application/sdp\r\nContent-Length: {len(answer)}\r\n\r\n{answer}")
    callee.sendto(ok.encode(), dst)
    r = recv_until(caller, lambda d: d.startswith("SIP/2.0 200") and "INVITE" in (header(d, "CSeq") or ""))
    a_dest = sdp_port(r)
    route = ", ".join(reversed([x.split(":", 1)[1].strip() for x in re.findall(r"^Record-Route:.*$", r, re.M | re.I)]))
    caller.sendto((f"ACK sip:1001@{ip}:{eport} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{cport};branch=z9hG4bKack{i};rport\r\n"
                   f"Max-Forwards: 70\r\n" + (f"Route: {route}\r\n" if route else "")
                   + f"From: <sip:1000@{ip}>;tag=a{i}\r\nTo: {header(r, 'To')}\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n").encode(), dst)
    pairs.append(f"{a_port} {ip}:{a_dest} {b_port} {ip}:{b_dest}\n")

with open(pairs_path, "w") as f:
    f.writelines(pairs)
print(f"set up {calls} calls in {time.time() - t0:.1f} s")
