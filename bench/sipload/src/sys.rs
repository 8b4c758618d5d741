//! The few C library calls std does not offer, declared here directly rather than pulling in a
//! crate for them: `poll(2)` (wait on several sockets), `getrusage(2)` (this process's CPU time,
//! all threads, finished ones included), `sendmmsg(2)`/`recvmmsg(2)` (many datagrams per system
//! call) and `SO_TIMESTAMPNS` (the kernel's arrival time of each datagram). 64-bit Linux only.

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("sipload supports 64-bit Linux only (poll/getrusage are declared by hand)");

use std::ffi::{c_int, c_long, c_short, c_uint, c_ulong, c_void};
use std::io;
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

/// `struct pollfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

const POLLIN: c_short = 0x001;

impl PollFd {
    /// Waits for input on `fd`.
    pub fn readable(fd: RawFd) -> PollFd {
        PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        }
    }
}

#[repr(C)]
struct Timeval {
    tv_sec: c_long,
    tv_usec: c_long,
}

/// `struct rusage` of 64-bit Linux: two timevals and 14 longs.
#[repr(C)]
struct RUsage {
    utime: Timeval,
    stime: Timeval,
    rest: [c_long; 14],
}

const RUSAGE_SELF: c_int = 0;

/// `struct iovec`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

/// `struct msghdr` (repr(C) puts the padding after `namelen` where C does).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MsgHdr {
    name: *mut c_void,
    namelen: c_uint,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

/// `struct mmsghdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MMsgHdr {
    hdr: MsgHdr,
    len: c_uint,
}

const _: () = assert!(size_of::<MsgHdr>() == 56 && size_of::<MMsgHdr>() == 64 && size_of::<IoVec>() == 16);

const EMPTY_HDR: MMsgHdr = MMsgHdr {
    hdr: MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: std::ptr::null_mut(),
        iovlen: 0,
        control: std::ptr::null_mut(),
        controllen: 0,
        flags: 0,
    },
    len: 0,
};
const EMPTY_IOV: IoVec = IoVec {
    base: std::ptr::null_mut(),
    len: 0,
};

const SOL_SOCKET: c_int = 1;
/// `SO_TIMESTAMPNS` (= `SCM_TIMESTAMPNS`) with the native 64-bit `struct timespec`.
const SO_TIMESTAMPNS: c_int = 35;
const MSG_DONTWAIT: c_int = 0x40;
const MSG_TRUNC: c_int = 0x20;
/// `CMSG_ALIGN(sizeof(struct cmsghdr))`: where a control message's data starts.
const CMSG_HDR: usize = 16;

unsafe extern "C" {
    #[link_name = "poll"]
    fn c_poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    #[link_name = "getrusage"]
    fn c_getrusage(who: c_int, usage: *mut RUsage) -> c_int;
    #[link_name = "setsockopt"]
    fn c_setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: c_uint) -> c_int;
    #[link_name = "sendmmsg"]
    fn c_sendmmsg(fd: c_int, msgs: *mut MMsgHdr, vlen: c_uint, flags: c_int) -> c_int;
    #[link_name = "recvmmsg"]
    fn c_recvmmsg(fd: c_int, msgs: *mut MMsgHdr, vlen: c_uint, flags: c_int, timeout: *mut c_void) -> c_int;
}

/// Asks the kernel to stamp every datagram received on `fd` with its arrival time.
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    let on: c_int = 1;
    // SAFETY: passes a pointer to a live c_int and its size, as SO_TIMESTAMPNS expects.
    let r = unsafe {
        c_setsockopt(
            fd,
            SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&raw const on).cast(),
            size_of::<c_int>() as c_uint,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends many datagrams with few system calls.
#[derive(Debug, Default)]
pub struct SendBatch {
    iovs: Vec<IoVec>,
    hdrs: Vec<MMsgHdr>,
    names: Vec<[u64; 4]>,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `struct sockaddr_in` / `sockaddr_in6` bytes for `addr`, and their length.
fn encode_addr(addr: &SocketAddr) -> ([u64; 4], usize) {
    let mut b = [0u8; 32];
    let len = match addr {
        SocketAddr::V4(a) => {
            b[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            16
        }
        SocketAddr::V6(a) => {
            b[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            28
        }
    };
    let mut words = [0u64; 4];
    for (w, chunk) in words.iter_mut().zip(b.chunks_exact(8)) {
        *w = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
    }
    (words, len)
}

/// The address in a `struct sockaddr_storage` of `len` bytes (IPv4 and IPv6 only).
fn decode_addr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::from((ip, port)))
        }
        AF_INET6 => {
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let flowinfo = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(ip.into(), port, flowinfo, scope)))
        }
        _ => None,
    }
}

/// The most messages one sendmmsg/recvmmsg call takes (UIO_MAXIOV).
const MAX_VLEN: usize = 1024;

impl SendBatch {
    /// Sends `arena[start..start + len]` for each span, in order, without blocking, to the
    /// connected peer or to `dests[i]` (one per span). A message the kernel refuses (e.g. a full
    /// send buffer) is skipped. Returns how many were refused.
    pub fn send(&mut self, fd: RawFd, arena: &[u8], spans: &[(u32, u32)], dests: Option<&[SocketAddr]>) -> u64 {
        let mut refused = 0;
        let mut offset = 0;
        while offset < spans.len() {
            let chunk = &spans[offset..spans.len().min(offset + MAX_VLEN)];
            self.iovs.clear();
            self.hdrs.clear();
            self.names.clear();
            let mut name_lens = [0usize; MAX_VLEN];
            if let Some(d) = dests {
                for (i, addr) in d[offset..offset + chunk.len()].iter().enumerate() {
                    let (words, len) = encode_addr(addr);
                    self.names.push(words);
                    name_lens[i] = len;
                }
            }
            for &(start, len) in chunk {
                let msg = &arena[start as usize..(start + len) as usize];
                self.iovs.push(IoVec {
                    // The kernel only reads through this pointer.
                    base: msg.as_ptr().cast_mut().cast(),
                    len: msg.len(),
                });
            }
            for (i, iov) in self.iovs.iter_mut().enumerate() {
                let (name, namelen) = match self.names.get_mut(i) {
                    Some(words) => (std::ptr::from_mut(words).cast(), name_lens[i] as c_uint),
                    None => (std::ptr::null_mut(), 0),
                };
                self.hdrs.push(MMsgHdr {
                    hdr: MsgHdr {
                        name,
                        namelen,
                        iov,
                        iovlen: 1,
                        ..EMPTY_HDR.hdr
                    },
                    len: 0,
                });
            }
            // SAFETY: `hdrs` holds `chunk.len()` valid mmsghdrs; each points at one iovec in
            // `iovs`, which points into `arena`, and at no address or one in `names`; all outlive
            // the call, nothing else aliases them.
            let r = unsafe { c_sendmmsg(fd, self.hdrs.as_mut_ptr(), self.hdrs.len() as c_uint, MSG_DONTWAIT) };
            let done = if r > 0 {
                r as usize
            } else {
                let e = io::Error::last_os_error();
                if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                refused += 1; // the first message failed: skip it, the retransmission timer covers it
                1
            };
            offset += done;
        }
        refused
    }
}

/// Receives many datagrams with their arrival times with few system calls.
#[derive(Debug, Default)]
pub struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    /// 8-byte words so that control messages are aligned.
    ctrl: Vec<u64>,
    /// A `struct sockaddr_storage` per datagram: where it came from.
    names: Vec<[u64; 16]>,
    iovs: Vec<IoVec>,
    hdrs: Vec<MMsgHdr>,
}

/// One datagram of a [`RecvBatch`].
#[derive(Debug)]
pub struct Datagram<'a> {
    pub data: &'a [u8],
    /// It was longer than the slot and is cut.
    pub truncated: bool,
    /// Kernel arrival time (CLOCK_REALTIME, since the epoch), when the socket stamps datagrams.
    pub stamp: Option<Duration>,
    pub from: Option<SocketAddr>,
}

/// Control buffer space per datagram: one timestamp message (16 + 16 bytes) with room to spare.
const CTRL_WORDS: usize = 8;

impl RecvBatch {
    /// Room for `slots` datagrams of at most `slot` bytes each (longer ones are truncated).
    pub fn new(slots: usize, slot: usize) -> RecvBatch {
        let slots = slots.clamp(1, MAX_VLEN);
        RecvBatch {
            slot,
            bufs: vec![0; slots * slot],
            ctrl: vec![0; slots * CTRL_WORDS],
            names: vec![[0; 16]; slots],
            iovs: vec![EMPTY_IOV; slots],
            hdrs: vec![EMPTY_HDR; slots],
        }
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives what is queued on `fd` (up to the capacity) without blocking; 0 when nothing is.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.hdrs.len();
        let bufs = self.bufs.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        for i in 0..n {
            // In bounds: `bufs` has n * slot bytes and `ctrl` n * CTRL_WORDS words.
            self.iovs[i] = IoVec {
                base: bufs.wrapping_add(i * self.slot).cast(),
                len: self.slot,
            };
            let iov: *mut IoVec = &mut self.iovs[i];
            self.hdrs[i] = MMsgHdr {
                hdr: MsgHdr {
                    name: std::ptr::from_mut(&mut self.names[i]).cast(),
                    namelen: 128,
                    iov,
                    iovlen: 1,
                    control: ctrl.wrapping_add(i * CTRL_WORDS).cast(),
                    controllen: CTRL_WORDS * 8,
                    ..EMPTY_HDR.hdr
                },
                len: 0,
            };
        }
        loop {
            // SAFETY: every header points at its own address, iovec and control area, which point
            // into `names`/`bufs`/`ctrl` with the lengths given; all are owned by `self` and
            // outlive the call.
            let r = unsafe {
                c_recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    n as c_uint,
                    MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
    }

    /// Datagram `i` of the last [`RecvBatch::recv`].
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let h = &self.hdrs[i];
        let len = (h.len as usize).min(self.slot);
        let data = &self.bufs[i * self.slot..i * self.slot + len];
        let truncated = h.hdr.flags & MSG_TRUNC != 0;
        let words = &self.ctrl[i * CTRL_WORDS..(i + 1) * CTRL_WORDS];
        let mut bytes = [0u8; CTRL_WORDS * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        let ctrl = &bytes[..h.hdr.controllen.min(bytes.len())];
        let mut name = [0u8; 32];
        for (chunk, w) in name.chunks_exact_mut(8).zip(&self.names[i]) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        let name_len = (h.hdr.namelen as usize).min(name.len());
        Datagram {
            data,
            truncated,
            stamp: timestamp(ctrl),
            from: decode_addr(&name[..name_len]),
        }
    }
}

/// Finds SCM_TIMESTAMPNS among the control messages.
fn timestamp(mut ctrl: &[u8]) -> Option<Duration> {
    let word = |b: &[u8], at: usize| -> Option<u64> { Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?)) };
    let int = |b: &[u8], at: usize| -> Option<i32> { Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?)) };
    while ctrl.len() >= CMSG_HDR {
        let len = usize::try_from(word(ctrl, 0)?).ok()?;
        let (level, ty) = (int(ctrl, 8)?, int(ctrl, 12)?);
        if len < CMSG_HDR {
            return None;
        }
        if level == SOL_SOCKET && ty == SO_TIMESTAMPNS && len >= CMSG_HDR + 16 {
            let (sec, nsec) = (word(ctrl, CMSG_HDR)?, word(ctrl, CMSG_HDR + 8)?);
            return Some(Duration::new(sec, u32::try_from(nsec).ok()?));
        }
        ctrl = ctrl.get(len.next_multiple_of(8)..)?;
    }
    None
}

/// Waits until one of `fds` is ready or `timeout_ms` passes; returns how many are ready.
/// An interrupted wait counts as a timeout.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    for f in fds.iter_mut() {
        f.revents = 0;
    }
    // SAFETY: `fds` is an exclusively borrowed slice of `struct pollfd`-compatible values and its
    // length is passed with it; the kernel writes only `revents` inside it.
    let r = unsafe { c_poll(fds.as_mut_ptr(), fds.len() as c_ulong, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(r as usize)
}

/// User and system CPU time of the whole process so far.
pub fn cpu_times() -> io::Result<(Duration, Duration)> {
    let mut u = RUsage {
        utime: Timeval { tv_sec: 0, tv_usec: 0 },
        stime: Timeval { tv_sec: 0, tv_usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: `u` is a valid, writable `struct rusage` for 64-bit Linux (checked by the
    // compile_error above), which is all getrusage writes.
    if unsafe { c_getrusage(RUSAGE_SELF, &mut u) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let d = |t: &Timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok((d(&u.utime), d(&u.stime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[fe80::1%3]:7"] {
            let addr: SocketAddr = a.parse().expect("address");
            let (words, len) = encode_addr(&addr);
            let mut b = [0u8; 32];
            for (chunk, w) in b.chunks_exact_mut(8).zip(&words) {
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            assert_eq!(decode_addr(&b[..len]), Some(addr));
        }
    }

    /// Batches through a real socket pair: addresses, contents, order and kernel timestamps.
    #[test]
    fn batches_over_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        enable_timestamps(std::os::fd::AsRawFd::as_raw_fd(&b)).expect("timestamps");
        let to = b.local_addr().expect("address");
        let arena = b"onetwothree";
        let spans = [(0, 3), (3, 3), (6, 5)];
        let mut tx = SendBatch::default();
        assert_eq!(
            tx.send(std::os::fd::AsRawFd::as_raw_fd(&a), arena, &spans, Some(&[to; 3])),
            0
        );
        let mut rx = RecvBatch::new(8, 16);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = rx.recv(fd).expect("recv");
            for i in 0..n {
                let d = rx.get(i);
                assert_eq!(d.from, Some(a.local_addr().expect("address")));
                assert!(d.stamp.is_some() && !d.truncated);
                got.push(d.data.to_vec());
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    }
}
