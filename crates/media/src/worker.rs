//! The relay threads. Each owns an epoll instance (edge-triggered) holding the sockets of the
//! streams assigned to it round robin, all four sockets of a stream on the same thread. For each
//! readable socket it takes the stream's slot lock, drains it a batch of datagrams per `recvmmsg`,
//! applies the latching rule and the counters per datagram, and sends the accepted ones from the
//! matching socket of the other leg with one `sendto` (one datagram) or `sendmmsg` (more), straight
//! out of the receive buffers. The clock is read once per `epoll_wait`. Nothing on this path
//! allocates, blocks or waits for another thread except on the slot lock, which the proxy holds
//! only for field reads and writes.
//!
//! Wake-up moderation, as NICs moderate interrupts: at low rates a thread sleeps in `epoll_wait`
//! until a packet comes. Once packets come several per [`COALESCE`], waking up for each costs a
//! context switch per packet (at 100k packets/s on loopback, five times as many switches and up to
//! a quarter more CPU), so the thread polls every [`COALESCE`] instead and handles what arrived
//! meanwhile in one go, until the rate drops again. That adds at most [`COALESCE`] to a packet's
//! stay, far inside a phone's jitter buffer.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::latch::Verdict;
use crate::relay::Core;
use crate::rtcp;
use crate::srtp;
use crate::stream::{self, Which};
use crate::sys::{BATCH, Batch};

const MAX_EVENTS: usize = 256;
/// The polling period of a busy relay thread (see the module docs).
const COALESCE: Duration = Duration::from_micros(200);
/// Full batches read from one socket per event before the others get their turn.
const MAX_ROUNDS: usize = 8;

pub(crate) fn run(core: Arc<Core>, index: usize) {
    let me = &core.workers[index];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut batch = Batch::new();
    // Sockets left with data after MAX_ROUNDS: read again after the next (non-waiting) poll.
    let mut again: Vec<u64> = Vec::with_capacity(MAX_EVENTS);
    let mut retry: Vec<u64> = Vec::with_capacity(MAX_EVENTS);
    let tick = COALESCE.as_nanos() as u64;
    // SAFETY: prctl on the calling thread only: timers may fire 10 µs late instead of 50 µs.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 10_000 as libc::c_ulong) };
    let mut polling = false;
    let mut next_poll = 0u64;
    loop {
        if polling {
            let now = core.now_ns();
            if next_poll > now {
                std::thread::sleep(Duration::from_nanos(next_poll - now));
            }
        }
        let timeout = if again.is_empty() && !polling { -1 } else { 0 };
        let before = core.now_ns();
        let n = match me.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, thread = index, "media relay epoll_wait failed; thread stops");
                return;
            }
        };
        if core.stopping.load(Ordering::Acquire) {
            return;
        }
        let now = core.now_ns();
        // Start polling when a blocking wait lasted under a quarter tick (some 20,000 packets/s on
        // this thread), stop when a tick brings fewer than two events (under some 10,000).
        polling = if polling {
            n >= 2
        } else {
            n > 0 && now - before < tick / 4
        };
        // A full event list leaves more ready sockets: fetch them without sleeping.
        next_poll = if n == MAX_EVENTS { now } else { now + tick };
        std::mem::swap(&mut again, &mut retry);
        let tokens = events[..n].iter().map(|ev| ev.u64).chain(retry.drain(..));
        for token in tokens {
            if token == stream::WAKE {
                me.wake.drain();
            } else if relay(&core, &mut batch, token, now) && again.len() < again.capacity() {
                again.push(token);
            }
        }
    }
}

/// Drains the socket `token` names and sends its packets on. The socket is edge-triggered, so it
/// is read until `recvmmsg` returns less than a full batch (the queue was empty); a socket that
/// still has a full batch after [`MAX_ROUNDS`] gives the others their turn: returns `true`, and the
/// caller reads it again after its next poll.
fn relay(core: &Core, batch: &mut Batch, token: u64, now: u64) -> bool {
    let (id, Which { leg, rtcp }) = stream::untoken(token);
    let Some(slot) = core.slots.get(id.slot as usize) else {
        return false;
    };
    let mut guard = slot.state.lock();
    let Some(stream) = guard.as_deref_mut() else {
        return false;
    };
    if stream.generation != id.generation {
        return false; // an event for a socket of a released stream, still in this wait's batch
    }
    let [a, b] = &mut stream.legs;
    let (src, dst) = if leg == 0 { (a, b) } else { (b, a) };
    let dest = dst.destination(rtcp);
    // SRTP on either leg: each packet is translated and sent on its own (see `srtp.rs`).
    let translate = src.srtp.is_some() || dst.srtp.is_some();
    let mut accepted = false;
    let mut more = false;
    for _ in 0..MAX_ROUNDS {
        let n = match batch.recv(src.endpoint(rtcp).fd()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break, // drained
            Err(_) => continue, // a pending socket error, now cleared: the queue may hold more
        };
        // The leg's other port (RTCP for RTP and back) cannot latch while this one is read.
        let sibling = if rtcp {
            src.rtp.latch.latched()
        } else {
            src.rtcp.latch.latched()
        }
        .map(|a| a.ip());
        for i in 0..n {
            let Some((data, from)) = batch.datagram(i) else {
                src.stats.send_errors += 1; // truncated: longer than any RTP packet we relay
                continue;
            };
            let endpoint = if rtcp { &mut src.rtcp } else { &mut src.rtp };
            match endpoint.latch.admit(from, sibling, now) {
                Verdict::Accept => {}
                Verdict::Latched => {
                    tracing::debug!(stream = %id, leg, rtcp, source = %from, "media latched");
                }
                Verdict::Unexpected => {
                    src.stats.unexpected_dropped += 1;
                    continue;
                }
                Verdict::Stolen => {
                    src.stats.stolen_dropped += 1;
                    continue;
                }
            }
            if translate {
                // Only authenticated packets count as media for the media timeout.
                accepted |= relay_srtp(core, src, dst, data, rtcp, dest);
                continue;
            }
            accepted = true;
            let len = data.len() as u64;
            if rtcp || rtcp::is_rtcp_mux(data) {
                src.stats.rtcp_packets += 1;
                src.stats.rtcp_bytes += len;
                if let Some((report, blocks)) = rtcp::last_report(data) {
                    src.stats.report = Some(report);
                    src.stats.reports += blocks as u64;
                }
            } else {
                src.stats.rtp_packets += 1;
                src.stats.rtp_bytes += len;
            }
            if dest.is_some() {
                batch.forward(i);
            } else {
                src.stats.undeliverable_dropped += 1;
            }
        }
        if let Some(dest) = dest {
            let queued = batch.queued();
            if queued > 0 {
                let (sent, bytes) = batch.send(dst.endpoint(rtcp).fd(), dest);
                src.stats.forwarded_packets += sent as u64;
                src.stats.forwarded_bytes += bytes as u64;
                core.forwarded_packets.fetch_add(sent as u64, Ordering::Relaxed);
                core.forwarded_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                src.stats.send_errors += (queued - sent) as u64;
            }
        }
        more = n == BATCH;
        if !more {
            break;
        }
    }
    if accepted {
        slot.last_packet.store(now, Ordering::Relaxed);
    }
    more
}

/// One admitted packet of a stream with SRTP on a leg: decrypted and/or encrypted, counted, and
/// sent with its own `sendto`. `false` if it failed authentication (dropped).
fn relay_srtp(
    core: &Core,
    src: &mut stream::LegState,
    dst: &mut stream::LegState,
    data: &[u8],
    rtcp_port: bool,
    dest: Option<std::net::SocketAddr>,
) -> bool {
    let is_rtcp = rtcp_port || rtcp::is_rtcp_mux(data);
    let len = data.len() as u64;
    let Some((plain, out)) = srtp::translate(src.srtp.as_deref_mut(), dst.srtp.as_deref_mut(), data, is_rtcp) else {
        src.stats.srtp_dropped += 1;
        return false;
    };
    if is_rtcp {
        src.stats.rtcp_packets += 1;
        src.stats.rtcp_bytes += len;
        if let Some((report, blocks)) = rtcp::last_report(&plain) {
            src.stats.report = Some(report);
            src.stats.reports += blocks as u64;
        }
    } else {
        src.stats.rtp_packets += 1;
        src.stats.rtp_bytes += len;
    }
    let Some(dest) = dest else {
        src.stats.undeliverable_dropped += 1;
        return true;
    };
    match dst.endpoint(rtcp_port).socket.send_to(&out, dest) {
        Ok(n) => {
            src.stats.forwarded_packets += 1;
            src.stats.forwarded_bytes += n as u64;
            core.forwarded_packets.fetch_add(1, Ordering::Relaxed);
            core.forwarded_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(_) => src.stats.send_errors += 1,
    }
    true
}
