//! The port pool: the even ports of the configured range whose odd neighbour is also in range
//! (RTP on `p`, RTCP on `p + 1`, RFC 3550 §11), handed out first-in first-out so a port just
//! released rests as long as possible before the next call gets it (late packets of the old call
//! then find nobody), and binding of a leg's two sockets. A pair another program holds is skipped
//! and put back at the end of the queue.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

use crate::MediaError;

/// DSCP EF (RFC 3246) for voice, as the TOS byte.
const TOS_EF: u32 = 46 << 2;

pub(crate) struct PortPool {
    free: Mutex<VecDeque<u16>>,
    size: usize,
}

/// A leg's bound sockets.
pub(crate) struct BoundPair {
    pub port: u16,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl PortPool {
    pub fn new(lo: u16, hi: u16) -> PortPool {
        let first = u32::from(lo.max(1)).next_multiple_of(2);
        let free: VecDeque<u16> = (first..u32::from(hi))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        PortPool {
            size: free.len(),
            free: Mutex::new(free),
        }
    }

    /// Pairs in the pool.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Pairs not in use.
    pub fn free(&self) -> usize {
        self.free.lock().len()
    }

    pub fn put(&self, port: u16) {
        self.free.lock().push_back(port);
    }

    /// Takes a pair and binds it on `ip`, skipping pairs that fail with "address in use".
    pub fn bind(&self, ip: IpAddr) -> Result<BoundPair, MediaError> {
        let tries = self.free();
        for _ in 0..tries {
            let Some(port) = self.free.lock().pop_front() else {
                break;
            };
            match bind_pair(ip, port) {
                Ok((rtp, rtcp)) => return Ok(BoundPair { port, rtp, rtcp }),
                Err(e) if matches!(e.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) => {
                    tracing::debug!(port, error = %e, "media port busy, skipped");
                    self.put(port);
                }
                Err(e) => {
                    self.put(port);
                    return Err(MediaError::Io(e));
                }
            }
        }
        Err(MediaError::PortsExhausted)
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = bind_one(SocketAddr::new(ip, port))?;
    let rtcp = bind_one(SocketAddr::new(ip, port + 1))?;
    Ok((rtp, rtcp))
}

fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        let _ = s.set_tclass_v6(TOS_EF);
    } else {
        let _ = s.set_tos_v4(TOS_EF);
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_with_odd_neighbour_in_range() {
        let p = PortPool::new(40001, 40010);
        assert_eq!(p.size(), 4); // 40002, 40004, 40006, 40008 (40010 has no 40011)
        let p = PortPool::new(40000, 40001);
        assert_eq!(p.size(), 1);
        let p = PortPool::new(65534, 65535);
        assert_eq!(p.size(), 1);
        let p = PortPool::new(0, 3);
        assert_eq!(p.size(), 1); // port 0 is never handed out
        assert_eq!(PortPool::new(10, 5).size(), 0);
    }

    #[test]
    fn busy_pair_is_skipped_and_kept() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let pool = PortPool::new(21900, 21903);
        let squatter = UdpSocket::bind((ip, 21901)).expect("bind squatter");
        let pair = pool.bind(ip).expect("second pair binds");
        assert_eq!(pair.port, 21902);
        assert_eq!(pool.free(), 1);
        assert!(matches!(pool.bind(ip), Err(MediaError::PortsExhausted)));
        assert_eq!(pool.free(), 1, "the busy pair stays in the pool");
        drop(squatter);
        pool.put(pair.port);
        assert_eq!(pool.free(), pool.size());
    }
}
