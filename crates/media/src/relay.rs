//! The handle the proxy holds: starting and stopping the relay threads, allocating and releasing
//! streams, giving each leg its remote, reading counters, and reporting calls whose media stopped.
//! Every call here is thread-safe and short: it takes the pool, call-table or slot lock for field
//! updates and makes at most the socket/bind/`epoll_ctl`/close system calls of the streams it
//! creates or releases, never waits for a packet.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::pool::PortPool;
use crate::stream::{self, LegState, Slot, Stream, Which};
use crate::sys::{Epoll, EventFd};
use crate::{Leg, MediaConfig, MediaError, StreamId, StreamStats};

/// State shared by the handle and the relay threads.
pub(crate) struct Core {
    pub config: MediaConfig,
    pub slots: Box<[Slot]>,
    pub workers: Box<[WorkerHandle]>,
    pub stopping: AtomicBool,
    epoch: Instant,
    pool: PortPool,
    /// Free slots with the generation their next stream gets.
    free_slots: Mutex<Vec<(u32, u32)>>,
    calls: Mutex<HashMap<Box<str>, CallEntry>>,
    next_worker: AtomicUsize,
    /// Datagrams and bytes sent on, over every stream since start (one add per batch).
    pub forwarded_packets: AtomicU64,
    pub forwarded_bytes: AtomicU64,
}

pub(crate) struct WorkerHandle {
    pub epoll: Epoll,
    pub wake: EventFd,
}

#[derive(Default)]
struct CallEntry {
    streams: Vec<StreamId>,
    /// Already returned by `timed_out`; cleared when media flows again.
    reported: bool,
}

impl Core {
    /// The relay clock: nanoseconds since start, never 0.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    fn slot(&self, id: StreamId) -> Option<&Slot> {
        self.slots.get(id.slot as usize)
    }

    /// Whether sending to `addr` would feed the relay its own packets.
    fn loops(&self, addr: SocketAddr) -> bool {
        let relay = self.config.address;
        let ours = addr.ip() == relay || (relay.is_unspecified() && addr.ip().is_loopback());
        let (lo, hi) = self.config.ports;
        ours && (lo..=hi).contains(&addr.port())
    }

    /// Takes the stream out of its slot, closes its sockets and returns its ports and slot. Does
    /// not touch the call table.
    fn release_stream(&self, id: StreamId) -> Option<Box<str>> {
        let slot = self.slot(id)?;
        let stream = {
            let mut guard = slot.state.lock();
            match guard.as_deref() {
                Some(s) if s.generation == id.generation => guard.take()?,
                _ => return None,
            }
        };
        // Out of the slot, no relay thread reaches the sockets any more: it holds the slot lock
        // while it uses them, and finds the slot empty after this.
        slot.armed_at.store(0, Ordering::Relaxed);
        let epoll = &self.workers[stream.worker].epoll;
        let Stream { legs, call, .. } = *stream;
        for leg in &legs {
            let _ = epoll.delete(leg.rtp.fd());
            let _ = epoll.delete(leg.rtcp.fd());
        }
        let ports = legs.map(|l| l.port); // drops (closes) the sockets
        for p in ports {
            self.pool.put(p);
        }
        self.free_slots.lock().push((id.slot, id.generation.wrapping_add(1)));
        Some(call)
    }
}

/// The media relay. Cheap to clone; the relay stops with [`MediaRelay::shutdown`] or when the last
/// clone is dropped.
#[derive(Clone)]
pub struct MediaRelay {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        shutdown(&self.core, &self.threads);
    }
}

impl MediaRelay {
    /// Checks the configuration, creates the pool and starts the relay threads. No port is bound
    /// until [`allocate`](Self::allocate).
    pub fn start(config: MediaConfig) -> io::Result<MediaRelay> {
        let (lo, hi) = config.ports;
        let pool = PortPool::new(lo, hi);
        if pool.size() < 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("media port range {lo}-{hi} holds no stream (4 ports: 2 even RTP ports and their RTCP)"),
            ));
        }
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let streams = pool.size() / 2;
        let workers = (0..threads)
            .map(|_| {
                let w = WorkerHandle {
                    epoll: Epoll::new()?,
                    wake: EventFd::new()?,
                };
                w.epoll.add(w.wake.raw(), stream::WAKE)?;
                Ok(w)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let core = Arc::new(Core {
            config,
            slots: (0..streams).map(|_| Slot::new()).collect(),
            workers: workers.into_boxed_slice(),
            stopping: AtomicBool::new(false),
            epoch: Instant::now(),
            pool,
            free_slots: Mutex::new((0..streams as u32).rev().map(|s| (s, 0)).collect()),
            calls: Mutex::new(HashMap::new()),
            next_worker: AtomicUsize::new(0),
            forwarded_packets: AtomicU64::new(0),
            forwarded_bytes: AtomicU64::new(0),
        });
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let c = Arc::clone(&core);
            let spawned = std::thread::Builder::new()
                .name(format!("media-relay-{i}"))
                .spawn(move || crate::worker::run(c, i));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let threads = Mutex::new(handles);
                    shutdown(&core, &threads);
                    return Err(e);
                }
            }
        }
        tracing::info!(
            address = %core.config.address, ports = ?core.config.ports, streams, threads,
            "media relay started"
        );
        Ok(MediaRelay {
            inner: Arc::new(Inner {
                core,
                threads: Mutex::new(handles),
            }),
        })
    }

    /// Stops the relay threads and releases every stream. Idempotent; later allocations fail with
    /// [`MediaError::ShutDown`].
    pub fn shutdown(&self) {
        shutdown(&self.inner.core, &self.inner.threads);
    }

    /// The address the media ports are bound on.
    pub fn address(&self) -> IpAddr {
        self.inner.core.config.address
    }

    /// Allocates a stream for `call`: two legs, each an even RTP port and the RTCP port above it,
    /// bound on the media address. Packets are dropped until the legs' remotes are set.
    pub fn allocate(&self, call: &str) -> Result<StreamId, MediaError> {
        let core = &*self.inner.core;
        if core.stopping.load(Ordering::Acquire) {
            return Err(MediaError::ShutDown);
        }
        let (slot, generation) = core.free_slots.lock().pop().ok_or(MediaError::PortsExhausted)?;
        let give_back_slot = || core.free_slots.lock().push((slot, generation));
        let a = match core.pool.bind(core.config.address) {
            Ok(a) => a,
            Err(e) => {
                give_back_slot();
                return Err(e);
            }
        };
        let b = match core.pool.bind(core.config.address) {
            Ok(b) => b,
            Err(e) => {
                let port = a.port;
                drop(a);
                core.pool.put(port);
                give_back_slot();
                return Err(e);
            }
        };
        let worker = core.next_worker.fetch_add(1, Ordering::Relaxed) % core.workers.len();
        let id = StreamId { slot, generation };
        let stream = Box::new(Stream {
            generation,
            call: call.into(),
            worker,
            legs: [
                LegState::new(a.port, a.rtp, a.rtcp),
                LegState::new(b.port, b.rtp, b.rtcp),
            ],
        });
        let fds: Vec<(i32, Which)> = (0..2)
            .flat_map(|leg| {
                let l = &stream.legs[leg];
                [
                    (l.rtp.fd(), Which { leg, rtcp: false }),
                    (l.rtcp.fd(), Which { leg, rtcp: true }),
                ]
            })
            .collect();
        let s = &core.slots[slot as usize];
        s.last_packet.store(0, Ordering::Relaxed);
        s.armed_at.store(0, Ordering::Relaxed);
        *s.state.lock() = Some(stream);
        let epoll = &core.workers[worker].epoll;
        for (fd, which) in fds {
            if let Err(e) = epoll.add(fd, stream::token(id, which)) {
                core.release_stream(id);
                return Err(MediaError::Io(e));
            }
        }
        core.calls.lock().entry(call.into()).or_default().streams.push(id);
        Ok(id)
    }

    /// The RTP ports of leg A (to announce to the caller) and leg B (to the callee). RTCP is on
    /// each plus one.
    pub fn ports(&self, stream: StreamId) -> Option<(u16, u16)> {
        let slot = self.inner.core.slot(stream)?;
        let guard = slot.state.lock();
        let s = guard.as_deref().filter(|s| s.generation == stream.generation)?;
        Some((s.legs[0].port, s.legs[1].port))
    }

    /// The streams allocated for `call`.
    pub fn streams(&self, call: &str) -> Vec<StreamId> {
        self.inner
            .core
            .calls
            .lock()
            .get(call)
            .map(|e| e.streams.clone())
            .unwrap_or_default()
    }

    /// Sets the address the SDP of `leg`'s phone announced: RTP, and RTCP if the SDP said
    /// (`a=rtcp`, RFC 3605), else the RTP port + 1. Packets toward the leg go there until the leg
    /// latches to its phone's real source; calling it again (re-INVITE) lets the leg latch anew.
    /// The latching rule is in [`crate::latch`].
    pub fn set_remote(
        &self,
        stream: StreamId,
        leg: Leg,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    ) -> Result<(), MediaError> {
        let core = &*self.inner.core;
        if core.loops(rtp) || rtcp.is_some_and(|a| core.loops(a)) {
            return Err(MediaError::InvalidRemote);
        }
        let slot = core.slot(stream).ok_or(MediaError::UnknownStream)?;
        let now = core.now_ns();
        let mut guard = slot.state.lock();
        let s = guard
            .as_deref_mut()
            .filter(|s| s.generation == stream.generation)
            .ok_or(MediaError::UnknownStream)?;
        let i = leg.index();
        s.legs[i].set_remote(rtp, rtcp, core.config.address, now);
        let other = &mut s.legs[1 - i];
        other.rtp.latch.refresh(now);
        other.rtcp.latch.refresh(now);
        if s.legs.iter().all(|l| l.sdp_rtp.is_some()) {
            slot.armed_at.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sets the SRTP keys of `leg` (AES_CM_128_HMAC_SHA1_80 master key and salt): `rx` is the key
    /// its phone encrypts with (from the phone's `a=crypto`), `tx` the key the relay encrypts with
    /// toward it (the one put into the SDP sent to the phone). `None` means plain RTP that way. A
    /// key equal to the one in place keeps its context (rollover counter, replay window).
    pub fn set_srtp(
        &self,
        stream: StreamId,
        leg: Leg,
        rx: Option<crate::SrtpKey>,
        tx: Option<crate::SrtpKey>,
    ) -> Result<(), MediaError> {
        let core = &*self.inner.core;
        let slot = core.slot(stream).ok_or(MediaError::UnknownStream)?;
        let mut guard = slot.state.lock();
        let s = guard
            .as_deref_mut()
            .filter(|s| s.generation == stream.generation)
            .ok_or(MediaError::UnknownStream)?;
        let l = &mut s.legs[leg.index()];
        if rx.is_none() && tx.is_none() {
            l.srtp = None;
            return Ok(());
        }
        let srtp = l.srtp.get_or_insert_with(Default::default);
        let r = srtp.set(rx, tx);
        if srtp.is_empty() {
            l.srtp = None;
        }
        r
    }

    /// Releases a stream: closes its sockets and returns its ports to the pool. `false` if it was
    /// already released.
    pub fn release(&self, stream: StreamId) -> bool {
        let core = &*self.inner.core;
        let Some(call) = core.release_stream(stream) else {
            return false;
        };
        let mut calls = core.calls.lock();
        if let Some(entry) = calls.get_mut(&call) {
            entry.streams.retain(|s| *s != stream);
            if entry.streams.is_empty() {
                calls.remove(&call);
            }
        }
        true
    }

    /// Releases every stream of `call`; returns how many there were.
    pub fn release_call(&self, call: &str) -> usize {
        let core = &*self.inner.core;
        let Some(entry) = core.calls.lock().remove(call) else {
            return 0;
        };
        entry
            .streams
            .iter()
            .filter(|s| core.release_stream(**s).is_some())
            .count()
    }

    /// The stream's counters, or `None` if it was released.
    pub fn stats(&self, stream: StreamId) -> Option<StreamStats> {
        let core = &*self.inner.core;
        let slot = core.slot(stream)?;
        let now = core.now_ns();
        let guard = slot.state.lock();
        let s = guard.as_deref().filter(|s| s.generation == stream.generation)?;
        Some(StreamStats {
            call: s.call.to_string(),
            ports: (s.legs[0].port, s.legs[1].port),
            a: s.legs[0].snapshot(),
            b: s.legs[1].snapshot(),
            idle: slot.idle_ns(now).map(Duration::from_nanos),
        })
    }

    /// Calls whose media stopped: at least one stream with both remotes set, and no such stream
    /// carried an accepted packet (RTP or RTCP, either way) for the media timeout, counted from
    /// the later of its last packet and the last `set_remote`. Each call is returned once per
    /// silence; the proxy should send BYE both ways and release it.
    pub fn timed_out(&self) -> Vec<String> {
        let core = &*self.inner.core;
        let now = core.now_ns();
        let limit = core.config.media_timeout.as_nanos() as u64;
        let mut out = Vec::new();
        for (call, entry) in core.calls.lock().iter_mut() {
            let mut armed = false;
            let mut silent = true;
            for id in &entry.streams {
                if let Some(idle) = core.slot(*id).and_then(|s| s.idle_ns(now)) {
                    armed = true;
                    silent &= idle >= limit;
                }
            }
            if armed && silent {
                if !entry.reported {
                    entry.reported = true;
                    out.push(call.to_string());
                }
            } else {
                entry.reported = false;
            }
        }
        out
    }

    /// Streams the pool can still hold (free RTP/RTCP pairs / 2).
    pub fn pool_free(&self) -> usize {
        self.inner.core.pool.free() / 2
    }

    /// Streams the pool holds when none is allocated.
    pub fn pool_size(&self) -> usize {
        self.inner.core.pool.size() / 2
    }

    /// Datagrams (RTP and RTCP) and bytes relayed since start, over every stream.
    pub fn forwarded_totals(&self) -> (u64, u64) {
        let core = &*self.inner.core;
        (
            core.forwarded_packets.load(Ordering::Relaxed),
            core.forwarded_bytes.load(Ordering::Relaxed),
        )
    }

    /// Streams allocated now.
    pub fn active_streams(&self) -> usize {
        let core = &*self.inner.core;
        core.slots.len() - core.free_slots.lock().len()
    }
}

fn shutdown(core: &Core, threads: &Mutex<Vec<JoinHandle<()>>>) {
    core.stopping.store(true, Ordering::Release);
    for w in core.workers.iter() {
        w.wake.wake();
    }
    let handles = std::mem::take(&mut *threads.lock());
    let stopped = !handles.is_empty();
    for h in handles {
        let _ = h.join();
    }
    let calls: Vec<_> = core.calls.lock().drain().collect();
    for (_, entry) in calls {
        for id in entry.streams {
            core.release_stream(id);
        }
    }
    if stopped {
        tracing::info!("media relay stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    /// A socket holding more than MAX_ROUNDS full batches is read again after the next poll, not
    /// left until its next datagram arrives.
    #[test]
    fn a_backlog_beyond_one_turn_is_drained() {
        let relay = MediaRelay::start(MediaConfig {
            address: "127.0.0.1".parse().expect("ip"),
            ports: (21960, 21979),
            media_timeout: Duration::from_secs(60),
            threads: 1,
        })
        .expect("start");
        let s = relay.allocate("backlog").expect("allocate");
        let (pa, _) = relay.ports(s).expect("ports");
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").expect("a"),
            UdpSocket::bind("127.0.0.1:0").expect("b"),
        );
        socket2::SockRef::from(&b)
            .set_recv_buffer_size(4 << 20)
            .expect("rcvbuf");
        b.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        relay
            .set_remote(s, Leg::A, a.local_addr().expect("addr"), None)
            .expect("remote");
        relay
            .set_remote(s, Leg::B, b.local_addr().expect("addr"), None)
            .expect("remote");
        const N: u16 = 600;
        {
            // Hold the stream so the relay thread cannot read while the backlog builds up.
            let slot = &relay.inner.core.slots[s.slot as usize];
            let guard = slot.state.lock();
            let leg = &guard.as_deref().expect("stream").legs[0];
            socket2::SockRef::from(&leg.rtp.socket)
                .set_recv_buffer_size(4 << 20)
                .expect("rcvbuf");
            for seq in 0..N {
                a.send_to(&seq.to_be_bytes(), ("127.0.0.1", pa)).expect("send");
            }
            // Loopback delivery may finish in ksoftirqd: let every datagram reach the socket, so no
            // arrival after the relay thread's last epoll event re-arms the edge.
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut buf = [0u8; 16];
        for seq in 0..N {
            let n = b.recv(&mut buf).expect("every datagram of the backlog arrives");
            assert_eq!(&buf[..n], &seq.to_be_bytes());
        }
        let st = relay.stats(s).expect("stats");
        assert_eq!(st.a.forwarded_packets, u64::from(N));
    }
}
