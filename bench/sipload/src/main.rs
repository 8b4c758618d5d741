//! # sipload: a SIP load generator for benchmarks
//!
//! `sipload register` runs the flow of SIPp's `reg_auth.xml` (see
//! `/work/shared/peers/kamailio/scenarios/`) at a fixed rate, several times cheaper than SIPp, so
//! that on a small machine the server under test is the bottleneck and not the generator
//! (measured on the 2-vCPU benchmark VM: ~8 % of a core at 2 000 flows/s, ~20 % at 20 000/s,
//! ~60 % at 60 000/s; SIPp needs ~9 % and ~64 % for the first two).
//!
//! One flow ("call"): REGISTER without credentials → 401 with `WWW-Authenticate: Digest`
//! (MD5 chosen when offered, else SHA-256; `qop=auth`; 407 is answered with
//! Proxy-Authorization) → REGISTER with `Authorization` (`nc=00000001`, a fresh cnonce, `uri` =
//! the Request-URI) → 200. Same Call-ID and From tag for both requests, CSeq 1 then 2, a new Via
//! branch each (`;rport`), `Contact: <sip:USER@LOCALIP:LOCALPORT>`, `Expires: 3600`. Users
//! `FIRST..=LAST` (default 1000-1999) in turn, password `pw<user>`, domain (From/To host) = the
//! server IP, Request-URI `sip:IP:PORT`: what `bench.sh` provisions on both servers.
//!
//! The load is open-loop like `sipp -r`: flow `n` starts at `n / rate` seconds whatever the
//! server does, `rate × duration` flows in all, spread round-robin over `--sockets` UDP sockets
//! (distinct source ports, so an `SO_REUSEPORT` server spreads them) owned by `--threads` OS
//! threads. Each thread wakes every `--tick-us` (1 ms), reads all responses with `recvmmsg`,
//! starts the flows that are due and sends all requests with `sendmmsg`. Outstanding flows sit
//! in a table keyed by the Call-ID. Requests are retransmitted like a UDP UAC (RFC 3261 Timer E:
//! 500 ms, doubling, at most 4 s; 4 s after a provisional response) until a final response or
//! until the flow times out (`--timeout-ms`, default 5000 → failed).
//!
//! ## Running it
//!
//! ```text
//! cargo build --release -p sipload
//!
//! # switchboard: users must exist first (bench.sh provisions 1000..1999 the same way)
//! D=$(mktemp -d); for u in $(seq 1000 1999); do
//!   target/release/switchboard user add $u --password pw$u --domain 127.0.0.1 --data-dir $D; done
//! target/release/switchboard serve --sip-listen 127.0.0.1:5090 --domain 127.0.0.1 --data-dir $D \
//!   --http-listen 127.0.0.1:18099 &
//! target/release/sipload register --server 127.0.0.1:5090 --rate 20000 --duration 10
//!
//! # Kamailio: start it as bench.sh does (kamailio.cfg, users 1000..1999 in db_text, UDP :5060;
//! # realm = From domain = the listen IP), then the same command against it. kamailio.cfg
//! # hard-codes port 5060; -A LISTEN_IP=127.0.0.2 (with the users' domain 127.0.0.2) gives a
//! # private instance that does not clash with another one on 127.0.0.1:5060.
//! target/release/sipload register --server 127.0.0.1:5060 --rate 20000 --duration 10
//!
//! # the generator alone, against its own minimal registrar (no server in the way):
//! target/release/sipload respond --listen 127.0.0.1:5099 --threads 2 --duration 15 &
//! target/release/sipload register --server 127.0.0.1:5099 --rate 60000 --duration 5 --sockets 8
//! ```
//!
//! An `SO_REUSEPORT` server hashes each source port to one of its sockets. With few sockets the
//! split can be lopsided (e.g. 3 of 4 on one server thread), so at high rates use more
//! `--sockets` (8 or 16): each socket costs nothing extra.
//!
//! Options: `--users FIRST-LAST`, `--sockets 4 --threads 2` (threads ≤ sockets),
//! `--timeout-ms 5000`, `--tick-us 1000` (0 = wake on every datagram: reacts at once, costs more
//! CPU), `--domain` (From/To host, default the server IP), `--password-prefix pw`.
//! `sipload respond` answers 401 (MD5 and SHA-256 challenges), checks the digest and answers
//! 200; `--drop-every N` ignores every Nth request once, to see retransmissions at work.
//!
//! ## Output
//!
//! The run's settings on stderr, then one `key=value` line per figure on stdout:
//!
//! ```text
//! offered_rate=20000          flows/s asked for; flows = rate × duration
//! flows_started=200000
//! start_rate=19999.9          achieved start pace (first to last start)
//! succeeded=200000
//! failed=0                    timeouts + unexpected finals + unusable challenges
//! failed_by=none              else e.g. timeout@req1:3,401@req2:1,503@req1:2,bad-challenge:1
//!                             (reqN: the 1st REGISTER or the 2nd, with credentials)
//! retransmissions=0
//! wall_s=10.002               first send to last completion (success, failure or timeout)
//! successful_per_s=19996.3    succeeded / wall_s
//! latency_p50_ms=1.150        whole flow: first REGISTER sent to its 200 received
//! latency_p90_ms=1.320
//! latency_p99_ms=1.700
//! server_p50_ms=0.330         the server's share: both request→response times added
//! server_p90_ms=0.500
//! server_p99_ms=0.900
//! cpu_pct=21.1                this process, user+sys (getrusage) over run_s, 100 = one core
//! cpu_user_s=...  cpu_sys_s=...  run_s=...
//! send_errors=0 recv_errors=0 stray_responses=0 stale_responses=0 unparsable=0 (one per line)
//! max_start_lag_ms=1.1        how late the latest-started flow was against its schedule
//! late_flows=0                flows started more than 100 ms late
//! ```
//!
//! Arrival times come from the kernel (`SO_TIMESTAMPNS`), so latencies are exact to the
//! microsecond, but the second REGISTER leaves on the tick after the 401 arrived: `latency_*`
//! includes up to one tick (1 ms) of the generator's own reaction, `server_*` does not. On this
//! VM the user/sys split of getrusage is tick-sampled and unreliable; their sum (`cpu_pct`) agrees
//! with `perf stat`. `WARNING: generator fell behind its schedule` (stderr) means flows started
//! more than 100 ms after their due time, so the offered rate was not really offered. The first
//! failed flow's response is shown on stderr (e.g. a 401 to the second REGISTER = the digest was
//! refused). The exit status is 0 even when flows failed; it is 1 only when the run could not
//! be made.

mod proto;
mod responder;
mod sys;
mod worker;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::proto::Texts;
use crate::worker::{Endpoint, Plan, Stats, Worker};

#[derive(Parser, Debug)]
#[command(
    name = "sipload",
    version,
    about = "SIP load generator: REGISTER with digest auth, open-loop at a fixed rate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// REGISTER → 401 → REGISTER with Authorization → 200, like SIPp's reg_auth.xml.
    Register(RegisterArgs),
    /// A minimal stateless registrar (401, digest check, 200) to calibrate and test the generator.
    Respond(RespondArgs),
}

#[derive(Args, Debug)]
struct RespondArgs {
    /// UDP address to answer on.
    #[arg(long, default_value = "127.0.0.1:5099")]
    listen: SocketAddr,
    /// Threads, each with its own SO_REUSEPORT socket on the address.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// The realm: default the listen IP.
    #[arg(long)]
    domain: Option<String>,
    /// Password of user U is PREFIX followed by U.
    #[arg(long, default_value = "pw")]
    password_prefix: String,
    /// Challenges offered, in this order (MD5, SHA-256).
    #[arg(long, value_delimiter = ',', default_value = "MD5,SHA-256", value_parser = parse_algorithm)]
    algorithms: Vec<sip::digest::Algorithm>,
    /// Ignore every Nth request received (0 = none; each request at most once), to exercise
    /// retransmissions.
    #[arg(long, default_value_t = 0)]
    drop_every: u64,
}

fn parse_algorithm(s: &str) -> Result<sip::digest::Algorithm, String> {
    match sip::digest::Algorithm::parse(s) {
        Some(a @ (sip::digest::Algorithm::Md5 | sip::digest::Algorithm::Sha256)) => Ok(a),
        _ => Err(format!("{s}: MD5 or SHA-256")),
    }
}

#[derive(Args, Debug)]
struct RegisterArgs {
    /// The server's UDP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// New flows per second.
    #[arg(long)]
    rate: f64,
    /// Seconds of load: rate × duration flows are started.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Users FIRST-LAST, used in turn.
    #[arg(long, default_value = "1000-1999", value_parser = parse_users)]
    users: (u64, u64),
    /// Password of user U is PREFIX followed by U.
    #[arg(long, default_value = "pw")]
    password_prefix: String,
    /// Host of From/To (the digest realm): default the server IP.
    #[arg(long)]
    domain: Option<String>,
    /// UDP sockets (distinct source ports), spread over the threads.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// OS threads, each owning some of the sockets (at most --sockets).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A flow without its final 200 after this long has failed.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Wake every this many microseconds and read in batches; 0 = wake on every datagram.
    #[arg(long, default_value_t = 1000)]
    tick_us: u64,
}

fn parse_users(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').ok_or("expected FIRST-LAST, e.g. 1000-1999")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("FIRST: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("LAST: {e}"))?;
    if b < a {
        return Err("LAST is below FIRST".into());
    }
    if b - a >= u64::from(u32::MAX) {
        return Err("too many users".into());
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Register(args) => run_register(&args).map(|outcome| report(&args, &outcome)),
        Command::Respond(args) => respond(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A non-blocking UDP socket with large buffers, connected to the server.
fn open_socket(server: SocketAddr) -> Result<Endpoint, String> {
    let (domain, any) = match server {
        SocketAddr::V4(_) => (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        SocketAddr::V6(_) => (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| format!("socket: {e}"))?;
    // As large as the system allows (net.core.[rw]mem_max): bursts must not overflow.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SockAddr::from(SocketAddr::new(any, 0)))
        .map_err(|e| format!("bind: {e}"))?;
    s.connect(&SockAddr::from(server))
        .map_err(|e| format!("connect to {server}: {e}"))?;
    s.set_nonblocking(true).map_err(|e| format!("nonblocking: {e}"))?;
    let udp: UdpSocket = s.into();
    sys::enable_timestamps(udp.as_raw_fd()).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    let local = udp.local_addr().map_err(|e| format!("local address: {e}"))?.to_string();
    Ok(Endpoint { udp, local })
}

/// Everything a run measured.
#[derive(Debug)]
struct Outcome {
    stats: Stats,
    /// Flows planned (rate × duration).
    count: u64,
    /// From the planned start to the end of the last thread.
    run: Duration,
    cpu_user: Duration,
    cpu_sys: Duration,
}

fn run_register(a: &RegisterArgs) -> Result<Outcome, String> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        return Err("--rate must be positive".into());
    }
    if !(a.duration.is_finite() && a.duration > 0.0) {
        return Err("--duration must be positive".into());
    }
    let count = (a.rate * a.duration).round() as u64;
    if count == 0 {
        return Err("rate × duration is below one flow".into());
    }
    let sockets = a.sockets.max(1);
    let threads = a.threads.clamp(1, sockets);
    if threads != a.threads {
        eprintln!("# using {threads} threads (at most one per socket)");
    }
    let domain = a.domain.clone().unwrap_or_else(|| match a.server.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    });
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let run_id = format!(
        "{:08x}",
        (stamp.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    );
    let texts = Texts {
        ruri: format!("sip:{}", a.server),
        domain,
        run_id,
    };
    let (first, last) = a.users;
    let credentials = (first..=last)
        .map(|u| (u.to_string(), format!("{}{u}", a.password_prefix)))
        .collect();

    let mut per_thread: Vec<Vec<Endpoint>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..sockets {
        per_thread[i % threads].push(open_socket(a.server)?);
    }
    let locals: Vec<&str> = per_thread.iter().flatten().map(|e| e.local.as_str()).collect();
    eprintln!(
        "# sipload register: server={} rate={}/s duration={}s flows={count} users={first}-{last} sockets={sockets} \
         threads={threads} timeout_ms={} tick_us={} run_id={} local={}",
        a.server,
        a.rate,
        a.duration,
        a.timeout_ms,
        a.tick_us,
        texts.run_id,
        locals.join(",")
    );

    let plan = Plan {
        call_id_prefix: texts.call_id_prefix(),
        texts,
        users_first: first,
        users_count: last - first + 1,
        credentials,
        rate: a.rate,
        count,
        threads: threads as u64,
        timeout: Duration::from_millis(a.timeout_ms),
        tick: Duration::from_micros(a.tick_us),
        t0: Instant::now() + Duration::from_millis(20),
    };
    let cpu0 = sys::cpu_times().map_err(|e| format!("getrusage: {e}"))?;
    let mut total = Stats::default();
    let results: Vec<std::io::Result<Stats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .enumerate()
            .map(|(k, socks)| {
                let plan = &plan;
                std::thread::Builder::new()
                    .name(format!("sipload-{k}"))
                    .spawn_scoped(scope, move || Worker::new(plan, k as u64, socks).run())
                    .expect("spawning a load thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a load thread panicked")))
            })
            .collect()
    });
    let end = Instant::now();
    let cpu1 = sys::cpu_times().map_err(|e| format!("getrusage: {e}"))?;
    for r in results {
        total.merge(r.map_err(|e| format!("load thread: {e}"))?);
    }
    Ok(Outcome {
        stats: total,
        count: plan.count,
        run: end.saturating_duration_since(plan.t0),
        cpu_user: cpu1.0.saturating_sub(cpu0.0),
        cpu_sys: cpu1.1.saturating_sub(cpu0.1),
    })
}

fn respond(a: &RespondArgs) -> Result<(), String> {
    if !(a.duration.is_finite() && a.duration > 0.0) {
        return Err("--duration must be positive".into());
    }
    let cfg = responder::ResponderConfig {
        realm: a.domain.clone().unwrap_or_else(|| a.listen.ip().to_string()),
        password_prefix: a.password_prefix.clone(),
        algorithms: a.algorithms.clone(),
        drop_every: a.drop_every,
    };
    let sockets = (0..a.threads.max(1))
        .map(|_| responder::bind(a.listen))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bind {}: {e}", a.listen))?;
    eprintln!(
        "# sipload respond: listen={} realm={} threads={} duration={}s algorithms={:?} drop_every={}",
        a.listen,
        cfg.realm,
        sockets.len(),
        a.duration,
        cfg.algorithms,
        a.drop_every
    );
    let counters = responder::ResponderCounters::default();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for udp in &sockets {
            scope.spawn(|| responder::serve(udp, &cfg, &counters, &stop));
        }
        std::thread::sleep(Duration::from_secs_f64(a.duration));
        stop.store(true, Ordering::Relaxed);
    });
    println!("{}", counters.line());
    Ok(())
}

/// The value at quantile `q` of sorted `v`, in ms.
fn quantile_ms(v: &[u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    f64::from(v[i]) / 1000.0
}

fn report(a: &RegisterArgs, o: &Outcome) {
    let s = &o.stats;
    let wall = match (s.first_send, s.last_done) {
        (Some(f), Some(l)) => l.saturating_duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let start_span = match (s.first_send, s.last_start) {
        (Some(f), Some(l)) => l.saturating_duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    // n starts span (n-1) intervals.
    let start_rate = if start_span > 0.0 {
        (s.started - 1) as f64 / start_span
    } else {
        0.0
    };
    let mut latencies = s.latencies_us.clone();
    latencies.sort_unstable();
    let mut server = s.server_us.clone();
    server.sort_unstable();
    let failed_by = if s.failures.is_empty() {
        "none".to_string()
    } else {
        s.failures
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let user = o.cpu_user.as_secs_f64();
    let sys = o.cpu_sys.as_secs_f64();
    let run_s = o.run.as_secs_f64().max(1e-9);
    let per_s = |x: u64| if wall > 0.0 { x as f64 / wall } else { 0.0 };
    println!("offered_rate={}", a.rate);
    println!("flows_started={}", s.started);
    println!("start_rate={start_rate:.1}");
    println!("succeeded={}", s.succeeded);
    println!("failed={}", s.failed());
    println!("failed_by={failed_by}");
    println!("retransmissions={}", s.retransmissions);
    println!("wall_s={wall:.3}");
    println!("successful_per_s={:.1}", per_s(s.succeeded));
    println!("latency_p50_ms={:.3}", quantile_ms(&latencies, 0.50));
    println!("latency_p90_ms={:.3}", quantile_ms(&latencies, 0.90));
    println!("latency_p99_ms={:.3}", quantile_ms(&latencies, 0.99));
    println!("server_p50_ms={:.3}", quantile_ms(&server, 0.50));
    println!("server_p90_ms={:.3}", quantile_ms(&server, 0.90));
    println!("server_p99_ms={:.3}", quantile_ms(&server, 0.99));
    println!("cpu_pct={:.1}", 100.0 * (user + sys) / run_s);
    println!("cpu_user_s={user:.3}");
    println!("cpu_sys_s={sys:.3}");
    println!("run_s={run_s:.3}");
    println!("send_errors={}", s.send_errors);
    println!("recv_errors={}", s.recv_errors);
    println!("stray_responses={}", s.stray);
    println!("stale_responses={}", s.stale);
    println!("unparsable={}", s.unparsable);
    println!("max_start_lag_ms={:.1}", s.max_lag.as_secs_f64() * 1000.0);
    println!("late_flows={}", s.late_flows);
    if s.max_lag > worker::LATE {
        eprintln!(
            "WARNING: generator fell behind its schedule: {} of {} flows started more than {} ms late \
             (max {:.0} ms, mean {:.1} ms); the offered rate was not fully offered",
            s.late_flows,
            s.started,
            worker::LATE.as_millis(),
            s.max_lag.as_secs_f64() * 1000.0,
            s.total_lag.as_secs_f64() * 1000.0 / s.started.max(1) as f64
        );
    }
    if s.started < o.count {
        eprintln!("WARNING: only {} of {} flows were started", s.started, o.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responder::{ResponderConfig, ResponderCounters};
    use crate::worker::Failure;
    use sip::digest::Algorithm;

    /// Runs the generator with `args` against a responder with `cfg` on an ephemeral port.
    fn run_against(cfg: ResponderConfig, args: &[&str]) -> (Outcome, ResponderCounters) {
        let udp = responder::bind("127.0.0.1:0".parse().expect("address")).expect("bind the responder");
        let server = udp.local_addr().expect("local address").to_string();
        let counters = ResponderCounters::default();
        let stop = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| responder::serve(&udp, &cfg, &counters, &stop));
            let mut argv = vec!["sipload", "register", "--server", &server];
            argv.extend_from_slice(args);
            let cli = Cli::try_parse_from(argv).expect("valid arguments");
            let Command::Register(a) = cli.command else {
                panic!("register expected")
            };
            let outcome = run_register(&a);
            stop.store(true, Ordering::Relaxed);
            outcome.expect("the run completes")
        });
        (outcome, counters)
    }

    fn responder(algorithms: &[Algorithm], drop_every: u64) -> ResponderConfig {
        ResponderConfig {
            realm: "127.0.0.1".into(),
            password_prefix: "pw".into(),
            algorithms: algorithms.to_vec(),
            drop_every,
        }
    }

    const SMALL: [&str; 8] = [
        "--rate",
        "400",
        "--duration",
        "0.25",
        "--users",
        "1000-1009",
        "--sockets",
        "2",
    ];

    #[test]
    fn every_flow_succeeds_with_md5_or_sha256() {
        for algs in [&[Algorithm::Sha256, Algorithm::Md5][..], &[Algorithm::Sha256]] {
            let (o, c) = run_against(responder(algs, 0), &SMALL);
            let s = &o.stats;
            assert_eq!((s.started, s.succeeded, s.failed()), (100, 100, 0), "{algs:?}: {s:?}");
            assert_eq!(s.retransmissions, 0);
            assert_eq!(s.latencies_us.len(), 100);
            assert_eq!(c.accepted.load(Ordering::Relaxed), 100);
            assert_eq!(c.refused.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn lost_datagrams_are_retransmitted() {
        let (o, c) = run_against(responder(&[Algorithm::Md5], 5), &SMALL);
        let s = &o.stats;
        assert_eq!((s.succeeded, s.failed()), (100, 0), "{s:?}");
        // Each request is dropped at most once, so one retransmission (after T1 = 500 ms) recovers it.
        let dropped = c.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 30, "{dropped} of 200 requests dropped");
        assert_eq!(s.retransmissions, dropped, "{s:?}");
        let t1s: u64 = s.latencies_us.iter().map(|&us| u64::from(us / 500_000)).sum();
        assert_eq!(t1s, dropped, "each lost request delays its flow by one T1");
    }

    #[test]
    fn a_wrong_password_fails_on_the_second_request() {
        let mut args = SMALL.to_vec();
        args.extend(["--password-prefix", "nope"]);
        let (o, c) = run_against(responder(&[Algorithm::Md5], 0), &args);
        let s = &o.stats;
        assert_eq!(s.succeeded, 0);
        assert_eq!(
            s.failures.get(&Failure::Status { step: 2, code: 401 }),
            Some(&100),
            "{s:?}"
        );
        assert_eq!(c.refused.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn silence_means_retransmissions_then_timeouts() {
        let mute = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let server = mute.local_addr().expect("local address").to_string();
        let argv = [
            "sipload",
            "register",
            "--server",
            &server,
            "--rate",
            "100",
            "--duration",
            "0.2",
            "--timeout-ms",
            "1200",
        ];
        let Command::Register(a) = Cli::try_parse_from(argv).expect("valid").command else {
            panic!("register expected")
        };
        let o = run_register(&a).expect("the run completes");
        let s = &o.stats;
        assert_eq!(s.failures.get(&Failure::Timeout { step: 1 }), Some(&20), "{s:?}");
        // Timer E: sent at 0, retransmitted at 0.5 s and 1.5 s; only the first fits in 1.2 s.
        assert_eq!(s.retransmissions, 20);
        let mut buf = [0u8; 2048];
        mute.set_nonblocking(true).expect("nonblocking");
        let mut got = 0;
        while mute.recv(&mut buf).is_ok() {
            got += 1;
        }
        assert_eq!(got, 40, "20 REGISTERs, each sent twice");
    }

    #[test]
    fn users_range() {
        assert_eq!(parse_users("1000-1999"), Ok((1000, 1999)));
        assert!(parse_users("2000-1000").is_err());
        assert!(parse_users("1000").is_err());
        assert_eq!(quantile_ms(&[1000, 2000, 3000, 4000], 0.5), 2.0);
        assert_eq!(quantile_ms(&[1000, 2000, 3000, 4000], 0.99), 4.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
