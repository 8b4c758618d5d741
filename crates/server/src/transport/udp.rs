//! UDP: one socket per core on each listen address with SO_REUSEPORT, so the kernel spreads
//! phones over the sockets, and one OS thread per socket doing blocking receives (RFC 3261
//! §18.1/§18.2 over an unreliable transport). Blocking threads, as Kamailio's UDP workers do,
//! because an async task pays a wake-up and a context switch for nearly every datagram at the
//! rates a registrar sees; the engine work per datagram is short and never waits.
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
        .spawn(move || receive_loop(&shared, index))
}

fn receive_loop(shared: &Shared, index: usize) {
    let Some(sock) = shared.udp.get(index).cloned() else {
        return;
    };
    let mut scratch = vec![0u8; shared.limits.max_message_size.max(65_535) + 1];
    while !shared.stopping.load(Ordering::Relaxed) {
        let (n, source) = match sock.recv_from(&mut scratch) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        if shared.guard.admit(source.ip(), std::time::Instant::now()) == crate::guard::Admit::Drop {
            continue;
        }
        let data = Bytes::copy_from_slice(&scratch[..n]);
        if data.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0) {
            continue; // keep-alive
        }
        let parsed = Message::parse_with(data.clone(), Framing::Datagram, &shared.limits);
        shared.on_received(parsed, &data, Transport::Udp, source, index as u64);
    }
}
