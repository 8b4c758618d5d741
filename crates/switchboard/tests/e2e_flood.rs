//! A flood from one source does not hurt anyone else (issue #10): 127.0.0.2 sends 50,000
//! REGISTERs as fast as it can while 50 users on 127.0.0.3 register once a second; every one of
//! their registrations succeeds, the flood is cut down to the per-source rate, and the server's
//! memory stays bounded.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sip::digest::{Algorithm, ha1, ha2, response};
use sip::{HeaderName, Message};
use support::{Server, TempDir, http_get, udp_transaction};

const DOMAIN: &str = "test.invalid";
const USERS: usize = 50;
const FLOOD: usize = 50_000;
const ROUNDS: usize = 5;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One REGISTER with the digest dance from `sock`; true on 200.
fn register(sock: &UdpSocket, server: SocketAddr, user: &str, round: usize) -> bool {
    let local = sock.local_addr().expect("local");
    let call_id = format!("legit-{user}@127.0.0.3");
    let request = |cseq: usize, auth: Option<&str>| {
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{user}-{round}-{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=f{user}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 600\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    let cseq = round * 2 + 1;
    let challenge = udp_transaction(sock, server, &request(cseq, None));
    if challenge.status_code() != Some(401) {
        return false;
    }
    let Some(nonce) = challenge
        .challenges(HeaderName::WwwAuthenticate)
        .filter_map(Result::ok)
        .find(|c| c.params.get("algorithm").as_deref() == Some("MD5"))
        .and_then(|c| c.params.get("nonce").map(|n| n.into_owned()))
    else {
        return false;
    };
    let uri = format!("sip:{DOMAIN}");
    let h1 = ha1(Algorithm::Md5, user, DOMAIN, &format!("pw{user}"));
    let r = response(
        Algorithm::Md5,
        &h1,
        &nonce,
        "00000001",
        "cafe",
        Some("auth"),
        &ha2(Algorithm::Md5, "REGISTER", &uri),
    );
    let auth = format!(
        "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
         algorithm=MD5, cnonce=\"cafe\", qop=auth, nc=00000001"
    );
    let ok: Message = udp_transaction(sock, server, &request(cseq + 1, Some(&auth)));
    ok.status_code() == Some(200)
}

#[test]
fn one_flooding_source_does_not_hurt_fifty_users() {
    let dir = TempDir::new("flood");
    let csv = dir.path().join("users.csv");
    let rows: String = (0..USERS).map(|i| format!("{},pw{}\n", 2000 + i, 2000 + i)).collect();
    std::fs::write(&csv, rows).expect("csv");
    let status = std::process::Command::new(support::bin())
        .args(["user", "import"])
        .arg(&csv)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--domain", DOMAIN])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("user import");
    assert!(status.success());
    let config = dir.path().join("flood.toml");
    // Loopback is trusted by default; here it plays the internet.
    std::fs::write(&config, "[guard]\ntrusted_networks = []\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let server = Server::start_in(
        dir,
        &[
            "--config",
            &config,
            "--no-media",
            "--source-rate",
            "200",
            "--source-burst",
            "400",
        ],
    );
    let target = server.udp;
    let http = server.http.expect("http listener");
    let pid = server.child.id();
    let rss_before = rss_kb(pid);

    // The flood: distinct transactions, as fast as the socket takes them.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
            let local = sock.local_addr().expect("local");
            let answers = sock.try_clone().expect("clone");
            answers.set_nonblocking(true).expect("nonblocking");
            let mut buf = vec![0u8; 65_536];
            for i in 0..FLOOD {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let m = format!(
                    "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-flood-{i};rport\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:{i}@{DOMAIN}>;tag=x{i}\r\nTo: <sip:{i}@{DOMAIN}>\r\n\
                     Call-ID: flood-{i}@127.0.0.2\r\nCSeq: 1 REGISTER\r\nContact: <sip:{i}@{local}>\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                if sock.send_to(m.as_bytes(), target).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                while answers.recv(&mut buf).is_ok() {} // keep our own buffer from filling
            }
        })
    };

    // Fifty users, once a second each, from another address.
    let started = Instant::now();
    let mut failures = Vec::new();
    let phones: Vec<UdpSocket> = (0..USERS)
        .map(|_| UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3"))
        .collect();
    for round in 0..ROUNDS {
        let round_start = Instant::now();
        for (i, sock) in phones.iter().enumerate() {
            let user = (2000 + i).to_string();
            if !register(sock, target, &user, round) {
                failures.push((round, user));
            }
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(round_start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().expect("flooder");
    let flood_sent = sent.load(Ordering::Relaxed);
    let rss_after = rss_kb(pid);
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let received = metric(&metrics, "switchboard_sip_requests_received_total{method=\"REGISTER\"}");
    println!(
        "flood: sent {flood_sent} REGISTERs; {USERS} users x {ROUNDS} rounds in {:.1} s, {} failed; \
         server received {received} REGISTERs in all; RSS {} -> {} MB",
        started.elapsed().as_secs_f64(),
        failures.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(failures.is_empty(), "legitimate registrations failed: {failures:?}");
    assert!(flood_sent >= FLOOD as u64 / 2, "the flood ran ({flood_sent} sent)");
    // The flood was cut to its bucket: 400 at once and 200/s after, a few seconds' worth.
    let legit = (USERS * ROUNDS * 2) as f64;
    let flood_admitted = received - legit;
    assert!(
        flood_admitted < 400.0 + 200.0 * (ROUNDS as f64 + 3.0),
        "{flood_admitted} flood REGISTERs got through"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} kB to {rss_after} kB"
    );
    let (_, regs) = http_get(http, "/api/registrations");
    assert_eq!(regs.matches("\"user\":\"20").count(), USERS, "{regs}");
}
