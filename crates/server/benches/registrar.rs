//! What the engine spends on one REGISTER with digest auth, under its lock: the unauthenticated
//! REGISTER and its 401, then the REGISTER with credentials and its 200 (transaction layer,
//! registrar, digest check, binding update, response building and serialization). Requests are
//! parsed beforehand, as the receive threads do outside the lock; the durable write happens on
//! the committer thread and is not counted.
//!
//! Run: `cargo bench -p server --bench registrar`; prints ns per flow and flows/s for one core.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc; // as in the binary

use std::net::SocketAddr;
use std::time::Instant;

use server::auth::DigestAuth;
use server::engine::Engine;
use server::registrar::{Intervals, Location, Registrar};
use sip::Message;
use sip::digest::{Algorithm, ha1, ha2, response};
use sip_txn::{Peer, TimerConfig, Transport};
use store::{SqliteStore, Subscriber, SubscriberCache, SubscriberStore};

const DOMAIN: &str = "127.0.0.1";
const USERS: u32 = 1000;

fn register(user: u32, flow: u64, cseq: u32, auth: Option<&str>) -> Message {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let raw = format!(
        "REGISTER sip:{DOMAIN}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{flow}-{cseq};rport=5061;received=127.0.0.1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag={flow}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: {flow}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:5061>\r\n\
         Expires: 3600\r\nUser-Agent: bench\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    Message::parse(raw.into_bytes()).expect("valid")
}

fn main() {
    let dir = std::env::temp_dir().join(format!("sb-bench-registrar-{}", std::process::id()));
    let store = SqliteStore::open_in(&dir).expect("store");
    for u in 0..USERS {
        let user = 1000 + u;
        store
            .add(&Subscriber::new(&user.to_string(), DOMAIN, &format!("pw{user}")).expect("subscriber"))
            .expect("add");
    }
    let registrar = Registrar {
        domain: DOMAIN.into(),
        intervals: Intervals::default(),
        auth: DigestAuth::new([7u8; 32], 300),
        subscribers: SubscriberCache::new(std::sync::Arc::new(store) as server::Subscribers),
        auth_failures: 0,
        node: String::new(),
        location: Location::default(),
    };
    let mut engine = Engine::new(TimerConfig::default(), Some(registrar), None);
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5061)),
        conn: 0,
    };
    let flows: u64 = 100_000;
    // First requests and the credentials are prepared outside the timed loop where possible;
    // the second request depends on the nonce in the 401, so it is parsed inside (and that
    // parse, about 0.5 µs, is counted).
    let firsts: Vec<Message> = (0..flows)
        .map(|f| register(1000 + (f % u64::from(USERS)) as u32, f, 1, None))
        .collect();
    let mut out = Vec::new();
    let mut lock_ns = 0u128;
    let start = Instant::now();
    for (f, first) in firsts.into_iter().enumerate() {
        let user = 1000 + (f as u64 % u64::from(USERS)) as u32;
        let t = Instant::now();
        engine.on_message(t, first, peer.clone(), &mut out);
        lock_ns += t.elapsed().as_nanos();
        let challenge = out
            .drain(..)
            .find_map(|t| t.message.header("WWW-Authenticate").map(str::to_owned));
        let challenge = challenge.expect("401");
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("nonce");
        let uri = format!("sip:{DOMAIN}:5060");
        let h1 = ha1(Algorithm::Md5, &user.to_string(), DOMAIN, &format!("pw{user}"));
        let r = response(
            Algorithm::Md5,
            &h1,
            nonce,
            "00000001",
            "abc",
            Some("auth"),
            &ha2(Algorithm::Md5, "REGISTER", &uri),
        );
        let auth = format!(
            "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
             algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\""
        );
        let second = register(user, f as u64, 2, Some(&auth));
        let t = Instant::now();
        engine.on_message(t, second, peer.clone(), &mut out);
        let pending = engine.take_pending();
        for w in pending {
            engine.respond(t, w.tx, w.response, &mut out);
        }
        lock_ns += t.elapsed().as_nanos();
        assert!(out.drain(..).any(|t| t.message.status_code() == Some(200)), "200");
    }
    let wall = start.elapsed();
    let per_flow = lock_ns as f64 / flows as f64;
    println!(
        "registrar: {flows} REGISTER+auth flows; engine time {per_flow:.0} ns per flow ({:.0} flows/s on one core); \
         wall {:.2} s including the client side",
        1e9 / per_flow,
        wall.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
