//! `sipload respond`: a minimal stateless registrar for calibrating the generator itself (how many
//! flows/s and how much CPU the generator needs when the server is not the limit) and for testing
//! it. It answers a REGISTER without credentials with 401 (MD5 and SHA-256 challenges, `qop=auth`,
//! like switchboard), checks the digest of one with credentials (password `<prefix><user>`, realm
//! = the domain, `uri` = the Request-URI) and answers 200, or 401 again when it is wrong. No state
//! (but for `drop_every`) and no nonce check: a test peer. Datagrams are read and answered in
//! batches (`recvmmsg`/`sendmmsg`) so that it stays cheaper than the load it answers.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sip::digest::{self, Algorithm};
use sip::{HeaderName, Message, Method};

use crate::sys::{self, PollFd, RecvBatch, SendBatch};

/// What the responder offers and checks.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// The realm (and expected From/To domain).
    pub realm: String,
    pub password_prefix: String,
    /// Challenges offered, in this order.
    pub algorithms: Vec<Algorithm>,
    /// Ignore every Nth request received (0 = none), to exercise retransmissions; a request is
    /// ignored at most once (its retransmission is answered).
    pub drop_every: u64,
}

/// What the responder counted.
#[derive(Debug, Default)]
pub struct ResponderCounters {
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub challenged: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub unparsable: AtomicU64,
}

impl ResponderCounters {
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "received={} dropped={} challenged={} accepted={} refused={} unparsable={}",
            g(&self.received),
            g(&self.dropped),
            g(&self.challenged),
            g(&self.accepted),
            g(&self.refused),
            g(&self.unparsable)
        )
    }
}

/// A non-blocking socket bound to `addr` with SO_REUSEPORT (so several threads can share the
/// port) and large buffers.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Answers on `udp` until `stop` is set: waits in `poll` (100 ms at most, to notice `stop`),
/// then reads batches with `recvmmsg` and sends each batch's answers with one `sendmmsg`.
pub fn serve(udp: &UdpSocket, cfg: &ResponderConfig, counters: &ResponderCounters, stop: &AtomicBool) {
    let fd = udp.as_raw_fd();
    let mut pollfd = [PollFd::readable(fd)];
    let mut rx = RecvBatch::new(64, 8192);
    let mut tx = SendBatch::default();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut spans = Vec::with_capacity(64);
    let mut dests = Vec::with_capacity(64);
    let mut state = State::default();
    while !stop.load(Ordering::Relaxed) {
        if sys::poll(&mut pollfd, 100).is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            let n = rx.recv(fd).unwrap_or(0);
            for i in 0..n {
                let d = rx.get(i);
                let Some(from) = d.from else { continue };
                let start = out.len();
                if answer(d.data, cfg, counters, &mut state, &mut out) {
                    spans.push((start as u32, (out.len() - start) as u32));
                    dests.push(from);
                }
            }
            if !spans.is_empty() {
                tx.send(fd, &out, &spans, Some(&dests));
                out.clear();
                spans.clear();
                dests.clear();
            }
            if n < rx.capacity() {
                break;
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    /// Branches of the requests dropped once.
    dropped: HashSet<Option<String>>,
}

/// Appends the answer to one datagram to `out`; false when there is none to send.
fn answer(
    datagram: &[u8],
    cfg: &ResponderConfig,
    counters: &ResponderCounters,
    state: &mut State,
    out: &mut Vec<u8>,
) -> bool {
    let n = counters.received.fetch_add(1, Ordering::Relaxed) + 1;
    state.seq += 1;
    let seq = state.seq;
    let Ok(req) = Message::parse(datagram.to_vec()) else {
        counters.unparsable.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    if !req.is_request() || req.method() == Some(&Method::Ack) {
        return false;
    }
    if cfg.drop_every > 0 && n.is_multiple_of(cfg.drop_every) {
        let branch = req.via().ok().and_then(|v| v.branch().map(str::to_owned));
        if state.dropped.insert(branch) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
    }
    let tag = format!("r{seq:x}");
    let resp = if req.method() != Some(&Method::Register) {
        Message::response_to(&req, 405, None, Some(&tag))
    } else if req.header("Authorization").is_none() {
        counters.challenged.fetch_add(1, Ordering::Relaxed);
        challenge(&req, cfg, &tag, seq)
    } else if verify(&req, cfg) {
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let mut r = Message::response_to(&req, 200, None, Some(&tag));
        if let Some(c) = req.header("Contact") {
            r.push_header(HeaderName::Contact, &format!("{c};expires=3600"));
        }
        r
    } else {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        challenge(&req, cfg, &tag, seq)
    };
    resp.write_to(out);
    true
}

fn challenge(req: &Message, cfg: &ResponderConfig, tag: &str, seq: u64) -> Message {
    let mut r = Message::response_to(req, 401, None, Some(tag));
    for alg in &cfg.algorithms {
        r.push_header(
            HeaderName::WwwAuthenticate,
            &format!(
                "Digest realm=\"{}\", nonce=\"sipload{seq:016x}\", qop=\"auth\", algorithm={}",
                cfg.realm,
                alg.as_str()
            ),
        );
    }
    r
}

/// Whether the request's Digest credentials are right for the user's password.
fn verify(req: &Message, cfg: &ResponderConfig) -> bool {
    let Some(d) = req
        .credentials(HeaderName::Authorization)
        .filter_map(Result::ok)
        .find_map(|c| c.digest().ok())
    else {
        return false;
    };
    let alg = match d.algorithm.as_deref() {
        None => Algorithm::Md5,
        Some(a) => match Algorithm::parse(a) {
            Some(a) if cfg.algorithms.contains(&a) => a,
            _ => return false,
        },
    };
    if d.realm != cfg.realm || Some(&*d.uri) != req.request_uri_str() {
        return false;
    }
    let (Some(qop), Some(nc), Some(cnonce)) = (d.qop.as_deref(), d.nc.as_deref(), d.cnonce.as_deref()) else {
        return false;
    };
    let password = format!("{}{}", cfg.password_prefix, d.username);
    let ha1 = digest::ha1(alg, &d.username, &d.realm, &password);
    let ha2 = digest::ha2(alg, "REGISTER", &d.uri);
    let want = digest::response(alg, &ha1, &d.nonce, nc, cnonce, Some(qop), &ha2);
    digest::constant_time_eq(want.as_bytes(), d.response.as_bytes())
}
