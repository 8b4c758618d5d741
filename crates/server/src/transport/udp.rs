//! UDP: one socket per core on each listen address with SO_REUSEPORT, so the kernel spreads
//! phones over the sockets and each socket has its own receive task (RFC 3261 §18.1/§18.2 over
//! an unreliable transport).
//!
//! The receive buffer is one `BytesMut` per socket: each datagram is split off and frozen, and the
//! allocation is reused once the message that referenced it is dropped, so the steady state does
//! no per-packet allocation for the buffer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use sip::{Framing, Message};
use sip_txn::Transport;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

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
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let bound = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        addr = bound;
        sockets.push(UdpSocket::from_std(s.into())?);
    }
    Ok(sockets)
}

/// The receive loop of one socket; `index` identifies it in `Shared::udp` for replies.
pub async fn run(shared: Arc<Shared>, index: usize) {
    let Some(sock) = shared.udp.get(index).cloned() else {
        return;
    };
    let max = shared.limits.max_message_size;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.clear();
        buf.reserve(max.max(65_536) + 1);
        let (n, source) = match sock.recv_buf_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let data = buf.split_to(n).freeze();
        if data.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0) {
            continue; // keep-alive
        }
        let parsed = Message::parse_with(data.clone(), Framing::Datagram, &shared.limits);
        shared.on_received(parsed, &data, Transport::Udp, source, index as u64);
    }
}
