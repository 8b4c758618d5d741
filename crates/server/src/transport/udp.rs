//! UDP: one socket per core on each listen address with SO_REUSEPORT, so the kernel spreads
//! phones over the sockets (RFC 3261 §18.1/§18.2 over an unreliable transport). Each socket has a
//! pipeline of two blocking OS threads, as Kamailio's UDP workers are threads rather than async
//! tasks (an async task pays a wake-up and a context switch for nearly every datagram at the
//! rates a registrar sees):
//!
//! - the **receive** thread (`sip-udp-N`) takes datagrams off the socket, applies the bans and
//!   the per-source flood limit, and, while the worker is overloaded and behind, answers new
//!   requests with a 503 written from the raw bytes (`guard::shed`); everything else it copies
//!   and queues for the worker;
//! - the **worker** (`sip-work-N`) parses, runs the overload detector on each datagram's whole
//!   wait (kernel stamp to now), and hands the message to the engine.
//!
//! With one thread doing both, at two to three times capacity the parse and engine work left no
//! time to read the socket: the kernel dropped datagrams of flows already admitted, their phones
//! retransmitted, and goodput fell to 13k/s at 60k offered. With the receive thread free to drain
//! the socket and turn new work away cheaply, the same load keeps 21.7k/s with no
//! retransmission (`bench/register.sh`).
//!
//! Each socket receives into one reusable 64 KiB scratch buffer; a datagram is then copied into an
//! allocation of exactly its size. That copy is the one per-packet allocation that cannot be
//! avoided: the parsed message refers into its bytes and may live for 64*T1 in a transaction, and
//! slicing it out of a shared buffer would pin the whole buffer for that long.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use sip::{Framing, Message};
use sip_txn::Transport;
use socket2::{Domain, Protocol, Socket, Type};

use super::Shared;

/// Binds `count` UDP sockets on `addr` with SO_REUSEPORT. With port 0 the first socket chooses
/// the port and the others join it.
pub fn bind_group(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        s.set_reuse_address(true)?;
        // Bursts of registrations: a larger receive buffer rides them out instead of dropping.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&addr.into())?;
        let bound = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        addr = bound;
        let sock: UdpSocket = s.into();
        stamp::enable(&sock)?;
        // Lets the receive thread notice shutdown.
        sock.set_read_timeout(Some(Duration::from_millis(250)))?;
        sockets.push(sock);
    }
    Ok(sockets)
}

/// Starts the receive thread of socket `index` of `Shared::udp`.
pub fn spawn(shared: Arc<Shared>, index: usize) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sip-udp-{index}"))
        .spawn(move || receive_loop(shared, index))
}

fn receive_loop(shared: Arc<Shared>, index: usize) {
    let Some(sock) = shared.udp.get(index).cloned() else {
        return;
    };
    let mut scratch = vec![0u8; shared.limits.max_message_size.max(65_535) + 1];
    let stage = Arc::new(Stage::default());
    let (work, queue) = std::sync::mpsc::sync_channel(WORK_QUEUE);
    let worker = {
        let (shared, stage) = (shared.clone(), stage.clone());
        std::thread::Builder::new()
            .name(format!("sip-work-{index}"))
            .spawn(move || work_loop(&shared, index, queue, &stage))
    };
    let Ok(worker) = worker else {
        return;
    };
    while !shared.stopping.load(Ordering::Relaxed) {
        let (n, source, arrived) = match stamp::recv_from(&sock, &mut scratch) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let now = std::time::Instant::now();
        if shared.guard.admit(source.ip(), now) == crate::guard::Admit::Drop {
            continue;
        }
        if stage.shedding() {
            use crate::guard::shed::{Quick, quick};
            match quick(&scratch[..n], &shared.guard.agents, shared.guard.flood.retry_after) {
                Quick::Answer(response, method) => {
                    shared.shed_raw(response, &method, source, index as u64);
                    continue;
                }
                Quick::Drop => continue,
                Quick::Unsure => {}
            }
        }
        let data = Bytes::copy_from_slice(&scratch[..n]);
        if data.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0) {
            continue; // keep-alive
        }
        stage.pending.fetch_add(1, Ordering::Relaxed);
        if work.try_send((data, source, arrived)).is_err() {
            // The worker is that far behind: as good as a full socket buffer.
            stage.pending.fetch_sub(1, Ordering::Relaxed);
            shared.metrics.overload_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(work);
    let _ = worker.join();
}

/// Datagrams the worker may have queued; past it the receive thread drops (counted in
/// `switchboard_overload_dropped_total`).
const WORK_QUEUE: usize = 16_384;

/// Datagrams waiting for the worker past which, while it is overloaded, the receive thread turns
/// new requests away itself (about 25 ms of the worker's work): below it the worker's own
/// detector decides per datagram, as it always did.
const SHED_BACKLOG: usize = 1_000;

/// What the two stages of a socket's pipeline tell each other.
#[derive(Default)]
struct Stage {
    /// The worker's overload detector says the queue stands.
    overloaded: std::sync::atomic::AtomicBool,
    /// Datagrams queued for the worker.
    pending: std::sync::atomic::AtomicUsize,
}

impl Stage {
    /// Whether the receive thread should turn new requests away now.
    fn shedding(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed) && self.pending.load(Ordering::Relaxed) > SHED_BACKLOG
    }
}

/// The second stage of a socket's pipeline: parse, the engine, the answer.
fn work_loop(
    shared: &Shared,
    index: usize,
    queue: std::sync::mpsc::Receiver<(Bytes, SocketAddr, Option<Duration>)>,
    stage: &Stage,
) {
    let mut overload = shared.guard.flood.detector();
    while let Ok((data, source, arrived)) = queue.recv() {
        stage.pending.fetch_sub(1, Ordering::Relaxed);
        // The wait that counts is from the kernel's arrival stamp to now: the socket's queue
        // and the worker's together.
        let shed = overload.on_packet(std::time::Instant::now(), stamp::waited(arrived));
        stage.overloaded.store(overload.is_overloaded(), Ordering::Relaxed);
        let parsed = Message::parse_with(data.clone(), Framing::Datagram, &shared.limits);
        if shed
            && let Ok(m) = &parsed
            && crate::guard::flood::sheddable(m)
        {
            // A scanner stays unanswered, overloaded or not.
            if !shared.guard.agents.blocks(m) {
                shared.shed(m, &data, Transport::Udp, source, index as u64);
            }
            continue;
        }
        shared.on_received(parsed, &data, Transport::Udp, source, index as u64);
    }
}

/// Kernel receive timestamps (`SO_TIMESTAMPNS`): how long a datagram waited in the socket's
/// queue before the receive thread got to it, the server's overload signal.
mod stamp {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn enable(sock: &UdpSocket) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// How long ago the kernel received a datagram stamped `arrived` (zero when unknown).
    pub fn waited(arrived: Option<Duration>) -> Duration {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        arrived.map_or(Duration::ZERO, |a| now.saturating_sub(a))
    }

    /// `recv_from` that also returns the kernel's arrival time (since the Unix epoch).
    pub fn recv_from(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<Duration>)> {
        // SAFETY: zeroed sockaddr_storage and msghdr are valid initial values.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 8]; // 64 bytes, aligned for cmsghdr
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in msg refers to a live local buffer of the stated size.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let source = to_socket_addr(&addr).ok_or_else(|| io::Error::other("not an IP source"))?;
        let mut arrived = None;
        // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
        // msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    arrived = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }
        Ok((n as usize, source, arrived))
    }

    fn to_socket_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match libc::c_int::from(addr.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a: libc::sockaddr_in = unsafe { std::ptr::read((addr as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a: libc::sockaddr_in6 = unsafe { std::ptr::read((addr as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}
