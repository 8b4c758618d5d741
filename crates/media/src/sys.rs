//! The system calls of the relay path, wrapped: epoll (edge-triggered), an eventfd to wake a relay
//! thread, and the batch of preallocated buffers that `recvmmsg` fills and `sendmmsg`/`sendto`
//! empties. All buffers are allocated once per relay thread; nothing here allocates per packet.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// Datagrams one `recvmmsg` takes at most.
pub(crate) const BATCH: usize = 32;
/// Room per datagram: above any RTP packet that fits an Ethernet MTU. Longer ones are dropped.
pub(crate) const BUF_SIZE: usize = 2048;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// An epoll instance. `epoll_ctl` from any thread while another waits is safe (epoll(7)).
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is a new descriptor we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds `fd` edge-triggered: an event means data arrived, and the reader drains the socket.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event is ignored by EPOLL_CTL_DEL.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits for events; `timeout_ms` -1 waits indefinitely.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `max` events into `events`.
        let n = cvt(unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) })?;
        Ok(n as usize)
    }
}

/// A non-blocking eventfd used to wake a relay thread out of `epoll_wait`.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain system call; the result is a new descriptor we own.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by eventfd.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) already means "awake".
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut v).cast(), 8) };
    }
}

/// Received datagrams and the messages that send them on. The `iovec`s and headers point into the
/// boxed slices, which never move or grow after `new`, so the struct itself may move.
pub(crate) struct Batch {
    bufs: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Headers the last `recv` filled; their `msg_namelen` must be reset before the next.
    used: usize,
    out_iovs: Box<[libc::iovec]>,
    out_hdrs: Box<[libc::mmsghdr]>,
    out_len: usize,
    out_bytes: usize,
    dest: Box<libc::sockaddr_storage>,
}

impl Batch {
    pub fn new() -> Batch {
        // SAFETY (all `zeroed` here): these are plain C structs for which all-zero is valid.
        let zero_storage = || unsafe { mem::zeroed::<libc::sockaddr_storage>() };
        let zero_iov = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        let mut b = Batch {
            bufs: vec![0u8; BATCH * BUF_SIZE].into_boxed_slice(),
            names: (0..BATCH).map(|_| zero_storage()).collect(),
            iovs: vec![zero_iov; BATCH].into_boxed_slice(),
            hdrs: (0..BATCH).map(|_| unsafe { mem::zeroed::<libc::mmsghdr>() }).collect(),
            used: BATCH,
            out_iovs: vec![zero_iov; BATCH].into_boxed_slice(),
            out_hdrs: (0..BATCH).map(|_| unsafe { mem::zeroed::<libc::mmsghdr>() }).collect(),
            out_len: 0,
            out_bytes: 0,
            dest: Box::new(zero_storage()),
        };
        let base = b.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i * BUF_SIZE is within `bufs` (BATCH * BUF_SIZE bytes).
            b.iovs[i] = libc::iovec {
                iov_base: unsafe { base.add(i * BUF_SIZE) }.cast(),
                iov_len: BUF_SIZE,
            };
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut b.names[i]).cast();
            h.msg_iov = &raw mut b.iovs[i];
            h.msg_iovlen = 1;
            let o = &mut b.out_hdrs[i].msg_hdr;
            o.msg_name = (&raw mut *b.dest).cast();
            o.msg_iov = &raw mut b.out_iovs[i];
            o.msg_iovlen = 1;
        }
        b
    }

    /// Drains up to [`BATCH`] datagrams from non-blocking `fd`; returns how many arrived.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in &mut self.hdrs[..self.used] {
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        self.out_len = 0;
        self.out_bytes = 0;
        // SAFETY: every header points at live buffers owned by `self` (see `new`), of the sizes
        // given; the kernel writes at most BATCH messages.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        match cvt(r) {
            Ok(n) => {
                self.used = n as usize;
                Ok(n as usize)
            }
            Err(e) => {
                self.used = 0;
                Err(e)
            }
        }
    }

    /// Datagram `i` of the last `recv`: its bytes and source. `None` for a truncated datagram or an
    /// unknown address family.
    #[inline]
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let h = &self.hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(BUF_SIZE);
        let src = read_sockaddr(&self.names[i], h.msg_hdr.msg_namelen)?;
        Some((&self.bufs[i * BUF_SIZE..i * BUF_SIZE + len], src))
    }

    /// Queues datagram `i` of the last `recv` to be sent on.
    #[inline]
    pub fn forward(&mut self, i: usize) {
        let len = (self.hdrs[i].msg_len as usize).min(BUF_SIZE);
        self.out_iovs[self.out_len] = libc::iovec {
            iov_base: self.iovs[i].iov_base,
            iov_len: len,
        };
        self.out_len += 1;
        self.out_bytes += len;
    }

    /// Datagrams queued by `forward` since the last `recv`.
    #[inline]
    pub fn queued(&self) -> usize {
        self.out_len
    }

    /// Sends the queued datagrams from `fd` to `dest`: returns (datagrams, bytes) sent. A datagram
    /// the socket cannot take right now is dropped, never waited for.
    pub fn send(&mut self, fd: RawFd, dest: SocketAddr) -> (usize, usize) {
        let n = self.out_len;
        if n == 0 {
            return (0, 0);
        }
        let namelen = write_sockaddr(dest, &mut self.dest);
        if n == 1 {
            let iov = self.out_iovs[0];
            // SAFETY: `iov` points into `bufs`, `dest` is initialized for `namelen` bytes.
            let r = unsafe {
                libc::sendto(
                    fd,
                    iov.iov_base,
                    iov.iov_len,
                    libc::MSG_DONTWAIT,
                    (&raw const *self.dest).cast(),
                    namelen,
                )
            };
            return if r < 0 { (0, 0) } else { (1, iov.iov_len) };
        }
        for h in &mut self.out_hdrs[..n] {
            h.msg_hdr.msg_namelen = namelen;
        }
        // SAFETY: the first `n` out headers point at `dest` and at iovecs into `bufs`.
        let r = unsafe { libc::sendmmsg(fd, self.out_hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if r <= 0 {
            return (0, 0);
        }
        let sent = r as usize;
        let bytes = if sent == n {
            self.out_bytes
        } else {
            self.out_iovs[..sent].iter().map(|v| v.iov_len).sum()
        };
        (sent, bytes)
    }
}

fn read_sockaddr(st: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(st.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and storage is aligned for it.
            let sin = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn write_sockaddr(addr: SocketAddr, st: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            unsafe { ptr::write((st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(), sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { ptr::write((st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(), sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for s in ["192.0.2.1:4000", "[2001:db8::1]:5004", "[::ffff:192.0.2.1]:9"] {
            let a: SocketAddr = s.parse().expect("addr");
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut st = unsafe { mem::zeroed::<libc::sockaddr_storage>() };
            let len = write_sockaddr(a, &mut st);
            assert_eq!(read_sockaddr(&st, len), Some(a));
        }
    }

    #[test]
    fn batch_receives_and_forwards() {
        use std::net::UdpSocket;
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("nonblocking");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sink.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let mut b = Batch::new();
        assert_eq!(
            b.recv(rx.as_raw_fd()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        for i in 0..3u8 {
            tx.send_to(&[i; 100], rx.local_addr().expect("addr")).expect("send");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(b.recv(rx.as_raw_fd()).expect("recv"), 3);
        for i in 0..3 {
            let (d, src) = b.datagram(i).expect("datagram");
            assert_eq!(d, &[i as u8; 100][..]);
            assert_eq!(src, tx.local_addr().expect("addr"));
            b.forward(i);
        }
        assert_eq!(b.send(rx.as_raw_fd(), sink.local_addr().expect("addr")), (3, 300));
        let mut buf = [0u8; 200];
        for i in 0..3u8 {
            let (n, from) = sink.recv_from(&mut buf).expect("recv");
            assert_eq!(&buf[..n], &[i; 100][..]);
            assert_eq!(from, rx.local_addr().expect("addr"));
        }
    }
}
