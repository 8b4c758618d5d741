//! Serves N streams for the rtpblast generator (/work/shared/peers/rtpengine/rtpblast.c), the one
//! the rtpengine anchor was measured with: allocates the streams, sets each leg's remote to the
//! client port rtpblast will bind (A: a_base + 2i, B: b_base + 2i), writes the port-pair file
//! rtpblast plays (`A_PORT A_DEST B_PORT B_DEST` per line), then relays until the packets stop (or
//! --seconds pass) and prints the relay threads' CPU over the time packets flowed.
//!
//!   cargo run --release -p media --example rtpblast_pairs -- --calls 1000 --pairs /tmp/pairs &
//!   sleep 2; /tmp/rtpblast /tmp/pairs 10
//!
//! Flags: --calls N (500), --pairs FILE (/tmp/media-pairs), --seconds S (give up after, 60),
//! --threads T (0 = one per core), --lo/--hi relay ports (20000/29999), --a-base (10000),
//! --b-base (14000), --ip (127.0.0.1).

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media::{Leg, MediaConfig, MediaRelay};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = common::flag("--calls", 500);
    let pairs: String = common::flag("--pairs", "/tmp/media-pairs".to_string());
    let limit = Duration::from_secs_f64(common::flag("--seconds", 60.0f64));
    let threads: usize = common::flag("--threads", 0);
    let ip: IpAddr = common::flag("--ip", IpAddr::from([127, 0, 0, 1]));
    let (lo, hi) = (common::flag("--lo", 20000u16), common::flag("--hi", 29999u16));
    let (a_base, b_base) = (common::flag("--a-base", 10000u16), common::flag("--b-base", 14000u16));

    let relay = MediaRelay::start(MediaConfig {
        address: ip,
        ports: (lo, hi),
        media_timeout: Duration::from_secs(60),
        threads,
    })?;
    let mut streams = Vec::with_capacity(calls);
    let mut file = String::new();
    for i in 0..calls {
        let s = relay.allocate(&format!("blast-{i}"))?;
        let (pa, pb) = relay.ports(s).ok_or("stream vanished")?;
        let (ca, cb) = (a_base + 2 * i as u16, b_base + 2 * i as u16);
        relay.set_remote(s, Leg::A, SocketAddr::new(ip, ca), None)?;
        relay.set_remote(s, Leg::B, SocketAddr::new(ip, cb), None)?;
        writeln!(file, "{ca} {ip}:{pa} {cb} {ip}:{pb}")?;
        streams.push(s);
    }
    std::fs::write(&pairs, file)?;
    println!("{calls} streams on {ip} ports {lo}-{hi}; pairs in {pairs}; waiting for packets");

    let forwarded = || -> u64 {
        streams
            .iter()
            .filter_map(|s| relay.stats(*s))
            .map(|st| st.a.forwarded_packets + st.b.forwarded_packets)
            .sum()
    };
    let begin = Instant::now();
    let mut first: Option<(Instant, Duration)> = None;
    let mut last = (Instant::now(), common::thread_cpu("media-relay"), 0u64);
    while begin.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
        let (now, cpu, count) = (Instant::now(), common::thread_cpu("media-relay"), forwarded());
        if count > last.2 {
            first.get_or_insert((last.0, last.1));
            last = (now, cpu, count);
        } else if first.is_some() {
            break; // packets stopped
        }
    }
    let mut line = format!("relay forwarded={}", last.2);
    if let Some((t0, cpu0)) = first {
        let wall = last.0.duration_since(t0).as_secs_f64();
        let cpu = (last.1 - cpu0).as_secs_f64();
        let _ = write!(
            line,
            " over {wall:.1} s: {:.0} pps, relay_cpu_pct={:.1} ({:.2} us CPU per packet)",
            last.2 as f64 / wall,
            100.0 * cpu / wall,
            1e6 * cpu / last.2.max(1) as f64
        );
    }
    let (mut stolen, mut errors, mut unexpected) = (0, 0, 0);
    for s in &streams {
        if let Some(st) = relay.stats(*s) {
            stolen += st.a.stolen_dropped + st.b.stolen_dropped;
            errors += st.a.send_errors + st.b.send_errors;
            unexpected += st.a.unexpected_dropped + st.b.unexpected_dropped;
        }
    }
    println!("{line} stolen={stolen} unexpected={unexpected} send_errors={errors}");
    relay.shutdown();
    Ok(())
}
