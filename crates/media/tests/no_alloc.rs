//! The relay path allocates nothing per packet: with a counting global allocator, relaying
//! thousands of RTP and RTCP packets both ways (latched, with a stranger's packets dropped) moves
//! the count by zero. Alone in its binary so no other test allocates meanwhile; the phones' own
//! `send_to`/`recv_from` do not allocate either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use media::{Leg, MediaConfig, MediaRelay};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn relaying_allocates_nothing() {
    let relay = MediaRelay::start(MediaConfig {
        address: "127.0.0.1".parse().expect("ip"),
        ports: (21500, 21519),
        media_timeout: Duration::from_secs(60),
        threads: 2,
    })
    .expect("start");
    let s = relay.allocate("no-alloc").expect("allocate");
    let (pa, pb) = relay.ports(s).expect("ports");
    let bind = || {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
        u.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        u
    };
    let (a, b, a_rtcp, b_rtcp, stranger) = (bind(), bind(), bind(), bind(), bind());
    let addr = |u: &UdpSocket| u.local_addr().expect("addr");
    relay
        .set_remote(s, Leg::A, addr(&a), Some(addr(&a_rtcp)))
        .expect("remote");
    relay
        .set_remote(s, Leg::B, addr(&b), Some(addr(&b_rtcp)))
        .expect("remote");
    let (ra, rb): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], pa).into(), ([127, 0, 0, 1], pb).into());
    let (ra_rtcp, rb_rtcp): (SocketAddr, SocketAddr) =
        (([127, 0, 0, 1], pa + 1).into(), ([127, 0, 0, 1], pb + 1).into());
    let mut rtp = [0u8; 172];
    rtp[0] = 0x80;
    let mut rr = [0u8; 32];
    rr[..4].copy_from_slice(&[0x81, 201, 0, 7]);
    let mut buf = [0u8; 2048];
    let mut round = |count: u16| {
        for seq in 0..count {
            rtp[2..4].copy_from_slice(&seq.to_be_bytes());
            a.send_to(&rtp, ra).expect("send");
            b.recv_from(&mut buf).expect("A→B");
            b.send_to(&rtp, rb).expect("send");
            a.recv_from(&mut buf).expect("B→A");
            stranger.send_to(&rtp, ra).expect("send"); // dropped and counted
            if seq % 50 == 0 {
                a_rtcp.send_to(&rr, ra_rtcp).expect("send");
                b_rtcp.recv_from(&mut buf).expect("RTCP A→B");
                b_rtcp.send_to(&rr, rb_rtcp).expect("send");
                a_rtcp.recv_from(&mut buf).expect("RTCP B→A");
            }
        }
    };
    round(100); // latching, first-use paths, threads settled
    std::thread::sleep(Duration::from_millis(50));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    round(3000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "allocations while relaying 6,120 datagrams and dropping 3,000"
    );
    // The stranger's last datagram may still be on its way through the relay thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while relay.stats(s).is_some_and(|st| st.a.stolen_dropped < 3100) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = relay.stats(s).expect("stats");
    assert_eq!(st.a.forwarded_packets, 3100 + 62);
    assert_eq!(st.a.stolen_dropped, 3100);
    assert_eq!((st.a.rtcp_packets, st.a.reports), (62, 62));
}
