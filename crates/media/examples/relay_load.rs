//! Load test of the relay on loopback, in one process: N calls, each a stream whose two legs are
//! played by two UDP sockets sending a 172-byte G.711-shaped RTP packet every 20 ms (50 pps per
//! direction), send times spread evenly over the period as rtpblast.c does (but sleeping precisely
//! between sends instead of spinning, so it needs far less than a core). The payload carries
//! the send time and the sending leg, so one-way latency through the relay is measured on one
//! clock and misrouted packets are caught. Prints packets/s, loss, latency p50/p99/max, and the CPU
//! the relay threads and the generator used.
//!
//!   cargo run --release -p media --example relay_load -- --calls 1000 --seconds 5 --threads 2
//!
//! Flags: --calls N (500), --seconds S (5, at most 10), --threads T (relay threads, 0 = one per
//! core), --gen-tick-us U (0: the generator wakes for every send and every arrival; U > 0: it
//! wakes every U µs, sends what fell due and reads what arrived, which costs it far less CPU but
//! adds up to U µs to the measured latency), --lo/--hi relay port range (20000/29999, below the
//! ephemeral ports the generator's sockets get), --ip (127.0.0.1).

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use media::{Leg, MediaConfig, MediaRelay};

const PKT: usize = 172;
const PERIOD_NS: u64 = 20_000_000;
const MAX_LAT_US: usize = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = common::flag("--calls", 500);
    let seconds: f64 = common::flag("--seconds", 5.0f64).min(10.0);
    let threads: usize = common::flag("--threads", 0);
    let gen_tick_us: u64 = common::flag("--gen-tick-us", 0);
    let ip: IpAddr = common::flag("--ip", IpAddr::from([127, 0, 0, 1]));
    let (lo, hi) = (common::flag("--lo", 20000u16), common::flag("--hi", 29999u16));

    let relay = MediaRelay::start(MediaConfig {
        address: ip,
        ports: (lo, hi),
        media_timeout: Duration::from_secs(60),
        threads,
    })?;
    // legs[2i] is call i's caller (sends to the relay's A port), legs[2i+1] its callee (B port).
    let mut legs = Vec::with_capacity(2 * calls);
    let mut streams = Vec::with_capacity(calls);
    for i in 0..calls {
        let s = relay.allocate(&format!("load-{i}"))?;
        let (pa, pb) = relay.ports(s).ok_or("stream vanished")?;
        let (a, b) = (UdpSocket::bind((ip, 0))?, UdpSocket::bind((ip, 0))?);
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        relay.set_remote(s, Leg::A, a.local_addr()?, None)?;
        relay.set_remote(s, Leg::B, b.local_addr()?, None)?;
        legs.push((a, SocketAddr::new(ip, pa)));
        legs.push((b, SocketAddr::new(ip, pb)));
        streams.push(s);
    }
    println!("{calls} calls set up on {ip} ports {lo}-{hi}; playing {seconds} s");

    let relay_cpu0 = common::thread_cpu("media-relay");
    let t0 = Instant::now();
    let generator = std::thread::Builder::new()
        .name("rtp-gen".into())
        .spawn(move || play(&legs, seconds, gen_tick_us * 1000))?;
    let r = generator.join().map_err(|_| "generator panicked")?;
    let wall = t0.elapsed().as_secs_f64();
    let relay_cpu = (common::thread_cpu("media-relay") - relay_cpu0).as_secs_f64();

    let (mut forwarded, mut stolen, mut errors) = (0, 0, 0);
    for s in &streams {
        if let Some(st) = relay.stats(*s) {
            forwarded += st.a.forwarded_packets + st.b.forwarded_packets;
            stolen += st.a.stolen_dropped + st.b.stolen_dropped;
            errors += st.a.send_errors + st.b.send_errors;
        }
    }
    let loss = if r.sent == 0 {
        0.0
    } else {
        100.0 * (r.sent - r.received.min(r.sent)) as f64 / r.sent as f64
    };
    println!(
        "calls={calls} seconds={seconds} pps={:.0} sent={} received={} loss_pct={loss:.4} p50_us={} p99_us={} \
         max_us={} late_sends={} stray={} relay_forwarded={forwarded} relay_stolen={stolen} relay_send_errors={errors} \
         relay_cpu_pct={:.1} generator_cpu_pct={:.1} relay_threads={} gen_tick_us={gen_tick_us}",
        r.sent as f64 / seconds,
        r.sent,
        r.received,
        r.p50,
        r.p99,
        r.max,
        r.late,
        r.stray,
        100.0 * relay_cpu / wall,
        100.0 * r.cpu / wall,
        if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        },
    );
    relay.shutdown();
    Ok(())
}

struct Outcome {
    sent: u64,
    received: u64,
    stray: u64,
    late: u64,
    p50: usize,
    p99: usize,
    max: usize,
    cpu: f64,
}

fn play(legs: &[(UdpSocket, SocketAddr)], seconds: f64, tick: u64) -> Outcome {
    let n = legs.len() as u64;
    // SAFETY: plain system call.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    for (i, (s, _)) in legs.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid descriptors and event.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
    }
    let clock = Instant::now();
    let now = || clock.elapsed().as_nanos() as u64;
    let start = now() + 50_000_000;
    let end = start + (seconds * 1e9) as u64;
    let drain = end + 200_000_000;
    let slot = PERIOD_NS / n;
    let due = |idx: u64| start + (idx / n) * PERIOD_NS + (idx % n) * slot;
    let mut hist = vec![0u64; MAX_LAT_US + 1];
    let mut seqs = vec![0u16; legs.len()];
    let (mut next, mut sent, mut received, mut stray, mut late) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut pkt = [0xd5u8; PKT];
    let mut buf = [0u8; 2048];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut next_tick = 0u64;
    let cpu0 = common::thread_cpu("rtp-gen");
    // SAFETY: plain prctl on this thread: wake within 1 µs of the timeout, not the default 50 µs.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    loop {
        let mut t = now();
        if t >= drain {
            break;
        }
        while t < end && due(next) <= t {
            if t - due(next) > 2_000_000 {
                late += 1;
            }
            let i = (next % n) as usize;
            let (sock, dest) = &legs[i];
            pkt[0] = 0x80;
            pkt[1] = 0;
            pkt[2..4].copy_from_slice(&seqs[i].to_be_bytes());
            seqs[i] = seqs[i].wrapping_add(1);
            pkt[8..12].copy_from_slice(&(0x1000_0000u32 + i as u32).to_be_bytes());
            pkt[12..20].copy_from_slice(&now().to_ne_bytes());
            pkt[20..24].copy_from_slice(&(i as u32).to_ne_bytes());
            if sock.send_to(&pkt, dest).is_ok() {
                sent += 1;
            }
            next += 1;
            t = now();
        }
        let wake = if t < end { due(next) } else { drain };
        // Sleeps precisely until the next send is due (epoll_pwait2 takes nanoseconds), instead of
        // spinning as rtpblast does, so the generator leaves the relay its share of the cores. With
        // a tick, it sleeps a whole tick, then sends what fell due and reads what arrived.
        if tick > 0 {
            next_tick = (next_tick + tick).max(t);
            std::thread::sleep(Duration::from_nanos(next_tick.saturating_sub(now())));
        }
        let wait = if tick > 0 { 0 } else { wake.saturating_sub(t) };
        let timeout = libc::timespec {
            tv_sec: (wait / 1_000_000_000) as _,
            tv_nsec: (wait % 1_000_000_000) as _,
        };
        // SAFETY: `events` has room for 256 events; `timeout` is a valid timespec.
        let k = unsafe { libc::epoll_pwait2(ep, events.as_mut_ptr(), 256, &timeout, std::ptr::null()) };
        let rt = now();
        for ev in &events[..k.max(0) as usize] {
            let me = ev.u64 as usize;
            loop {
                match legs[me].0.recv_from(&mut buf) {
                    Ok((len, _)) => {
                        let from = u32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]) as usize;
                        if len != PKT || from ^ 1 != me {
                            stray += 1;
                            continue;
                        }
                        let mut stamp = [0u8; 8];
                        stamp.copy_from_slice(&buf[12..20]);
                        let us = (rt.saturating_sub(u64::from_ne_bytes(stamp)) / 1000) as usize;
                        hist[us.min(MAX_LAT_US)] += 1;
                        received += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
    }
    let cpu = (common::thread_cpu("rtp-gen") - cpu0).as_secs_f64();
    // SAFETY: `ep` is ours.
    unsafe { libc::close(ep) };
    let (mut acc, mut p50, mut p99, mut max) = (0u64, None, None, 0);
    for (us, &c) in hist.iter().enumerate() {
        if c == 0 {
            continue;
        }
        acc += c;
        max = us;
        if p50.is_none() && acc * 2 >= received {
            p50 = Some(us);
        }
        if p99.is_none() && acc * 100 >= received * 99 {
            p99 = Some(us);
        }
    }
    Outcome {
        sent,
        received,
        stray,
        late,
        p50: p50.unwrap_or(0),
        p99: p99.unwrap_or(0),
        max,
        cpu,
    }
}
