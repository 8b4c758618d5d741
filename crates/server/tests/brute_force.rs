//! Enumeration and password guessing on the sans-IO engine (no sockets): unknown users are
//! answered exactly like known users with a wrong password (same 401/407, same headers, about
//! the same time), 404 and 480 reach authenticated callers only, and each password guess comes
//! out of the engine with its source for the brute-force defence (`guard::bans`), which bans at
//! its threshold.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use server::GuardSettings;
use server::auth::DigestAuth;
use server::dispatch::AuthRefusal;
use server::engine::Engine;
use server::guard::bans::{BanReason, Bans};
use server::proxy::{LocalAddrs, Proxy, ProxyConfig};
use server::registrar::{Intervals, Location, Registrar};
use sip::Message;
use sip::digest::{Algorithm, ha1, ha2, response};
use sip_txn::{Peer, TimerConfig, Transmit, Transport};
use store::{SqliteStore, Subscriber, SubscriberCache, SubscriberStore};

const DOMAIN: &str = "example.com";
/// 1000-1009 exist; 1000 is registered.
const PASSWORD: &str = "correct horse";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().expect("addr"),
        conn: 0,
    }
}

struct Rig {
    engine: Engine,
    now: Instant,
    seq: u32,
    dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig() -> Rig {
    let dir = std::env::temp_dir().join(format!(
        "sb-brute-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let store = SqliteStore::open_in(&dir).expect("store");
    for u in 1000..1010 {
        store
            .add(&Subscriber::new(&u.to_string(), DOMAIN, PASSWORD).expect("subscriber"))
            .expect("add");
    }
    let registered = store::Binding {
        aor: format!("1000@{DOMAIN}"),
        contact: "sip:1000@192.0.2.50:5060".into(),
        expires_at: unix_now() + 3600,
        q: 1000,
        call_id: "reg-1000".into(),
        cseq: 1,
        source: "udp:192.0.2.50:5060".into(),
        conn: 0,
        user_agent: None,
        behind_nat: false,
        node: String::new(),
    };
    let registrar = Registrar {
        domain: DOMAIN.into(),
        intervals: Intervals::default(),
        auth: DigestAuth::new([5u8; 32], 300),
        subscribers: SubscriberCache::new(std::sync::Arc::new(store) as server::Subscribers),
        auth_failures: 0,
        node: String::new(),
        location: Location::from_bindings(vec![registered]),
    };
    let local = LocalAddrs {
        udp: Some("192.0.2.1:5060".parse().expect("addr")),
        tcp: Some("192.0.2.1:5060".parse().expect("addr")),
        tls: None,
        domain: DOMAIN.into(),
    };
    let now = Instant::now();
    let proxy = Proxy::new(ProxyConfig::default(), local, now, 1_700_000_000_000, 7);
    Rig {
        engine: Engine::new(TimerConfig::default(), Some(registrar), Some(proxy)),
        now,
        seq: 0,
        dir,
    }
}

/// What a phone sends back for `nonce` (MD5, qop=auth).
fn digest(user: &str, password: &str, nonce: &str, method: &str, uri: &str, nc: u32) -> String {
    let h1 = ha1(Algorithm::Md5, user, DOMAIN, password);
    let nc = format!("{nc:08x}");
    let r = response(
        Algorithm::Md5,
        &h1,
        nonce,
        &nc,
        "abc123",
        Some("auth"),
        &ha2(Algorithm::Md5, method, uri),
    );
    format!(
        "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
         algorithm=MD5, qop=auth, nc={nc}, cnonce=\"abc123\""
    )
}

fn nonce_of(m: &Message) -> String {
    let h = m
        .header("WWW-Authenticate")
        .or_else(|| m.header("Proxy-Authenticate"))
        .expect("a challenge");
    h.split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce")
        .to_owned()
}

/// The response text with what differs by design blanked: nonces, the To tag, the user, and
/// what echoes the request (Via, From tag, Call-ID).
fn masked(m: &Message, user: &str) -> String {
    let text = String::from_utf8_lossy(&m.to_bytes()).into_owned();
    text.lines()
        .filter(|l| !l.starts_with("Via:") && !l.starts_with("Call-ID:"))
        .map(|l| {
            let mut l = l.replace(user, "USER");
            if let Some(i) = l.find("nonce=\"") {
                let end = l[i + 7..].find('"').map_or(l.len(), |e| i + 7 + e);
                l.replace_range(i + 7..end, "NONCE");
            }
            if (l.starts_with("To:") || l.starts_with("From:"))
                && let Some(i) = l.find(";tag=")
            {
                l.truncate(i + 5);
                l.push_str("TAG");
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Rig {
    fn deliver(&mut self, raw: String, from: &Peer) -> Vec<Transmit> {
        let mut out = Vec::new();
        let msg = Message::parse(raw.into_bytes()).expect("valid request");
        self.engine.on_message(self.now, msg, from.clone(), &mut out);
        out
    }

    /// The final response to a request; a REGISTER's 200 waits for its write, done at once here.
    fn final_response(&mut self, raw: String, from: &Peer) -> Message {
        let mut out = self.deliver(raw, from);
        for w in self.engine.take_pending() {
            self.engine.respond(self.now, w.tx, w.response, &mut out);
        }
        out.into_iter()
            .map(|t| t.message)
            .find(|m| m.status_code().is_some_and(|c| c >= 200))
            .expect("a final response")
    }

    fn register(&mut self, user: &str, auth: Option<&str>, from: &Peer) -> Message {
        self.seq += 1;
        let n = self.seq;
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let raw = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKreg{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=f{n}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: reg-{n}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{addr}>\r\nExpires: 600\r\n\
             User-Agent: test\r\n{auth}Content-Length: 0\r\n\r\n",
            addr = from.addr
        );
        self.final_response(raw, from)
    }

    fn invite(&mut self, caller: &str, callee: &str, auth: Option<&str>, from: &Peer) -> Message {
        self.seq += 1;
        let n = self.seq;
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "INVITE sip:{callee}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKinv{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{caller}@{DOMAIN}>;tag=f{n}\r\nTo: <sip:{callee}@{DOMAIN}>\r\n\
             Call-ID: inv-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@{addr}>\r\n\
             User-Agent: test\r\n{auth}Content-Length: 0\r\n\r\n",
            addr = from.addr
        );
        self.final_response(raw, from)
    }

    /// A fresh registrar nonce.
    fn nonce(&mut self, from: &Peer) -> String {
        nonce_of(&self.register("1009", None, from))
    }

    fn refusals(&mut self) -> Vec<AuthRefusal> {
        self.engine.take_auth_refusals()
    }
}

fn refusal(source: &str, user: &str) -> AuthRefusal {
    AuthRefusal {
        source: source.parse().expect("ip"),
        user: user.into(),
    }
}

#[test]
fn register_unknown_users_get_the_challenge_a_wrong_password_gets() {
    let mut r = rig();
    let from = peer("198.51.100.7:5070");
    // No credentials: the same 401 for an extension that exists and one that does not.
    let known = r.register("1001", None, &from);
    let unknown = r.register("9001", None, &from);
    assert_eq!(known.status_code(), Some(401));
    assert_eq!(masked(&known, "1001"), masked(&unknown, "9001"));
    assert_eq!(known.header_values("WWW-Authenticate").count(), 2, "MD5 and SHA-256");

    // Credentials: a wrong password and an unknown user get the same 401 (stale absent).
    let nonce = r.nonce(&from);
    let uri = format!("sip:{DOMAIN}");
    let wrong = r.register(
        "1001",
        Some(&digest("1001", "guess", &nonce, "REGISTER", &uri, 1)),
        &from,
    );
    let nobody = r.register(
        "9001",
        Some(&digest("9001", "guess", &nonce, "REGISTER", &uri, 2)),
        &from,
    );
    assert_eq!(wrong.status_code(), Some(401));
    assert_eq!(masked(&wrong, "1001"), masked(&nobody, "9001"));
    assert!(!masked(&wrong, "1001").contains("stale"));
    // And the right password works, so the 401s above were refusals, not a broken rig.
    let right = r.register(
        "1001",
        Some(&digest("1001", PASSWORD, &nonce, "REGISTER", &uri, 3)),
        &from,
    );
    assert_eq!(right.status_code(), Some(200));
}

#[test]
fn proxy_unknown_callers_and_callees_look_like_known_ones_until_authenticated() {
    let mut r = rig();
    let from = peer("198.51.100.7:5070");
    // Without credentials every INVITE gets the same 407, whoever calls and whoever is called:
    // a known registered callee, a known unregistered one, an unknown one.
    let base = r.invite("1001", "1000", None, &from);
    assert_eq!(base.status_code(), Some(407));
    for (caller, callee) in [("1001", "1002"), ("1001", "9002"), ("9001", "1000"), ("9001", "9002")] {
        let resp = r.invite(caller, callee, None, &from);
        assert_eq!(
            masked(&resp, caller).replace(callee, "CALLEE"),
            masked(&base, "1001").replace("1000", "CALLEE"),
            "{caller} -> {callee}"
        );
    }
    // A wrong password and an unknown caller: the same 407 again.
    let nonce = nonce_of(&base);
    let uri = format!("sip:9002@{DOMAIN}");
    let wrong = r.invite(
        "1001",
        "9002",
        Some(&digest("1001", "guess", &nonce, "INVITE", &uri, 1)),
        &from,
    );
    let nobody = r.invite(
        "9001",
        "9002",
        Some(&digest("9001", "guess", &nonce, "INVITE", &uri, 2)),
        &from,
    );
    assert_eq!(wrong.status_code(), Some(407));
    assert_eq!(masked(&wrong, "1001"), masked(&nobody, "9001"));

    // Authenticated, a caller learns 404 (no such user) and 480 (not registered).
    let missing = r.invite(
        "1001",
        "9002",
        Some(&digest("1001", PASSWORD, &nonce, "INVITE", &uri, 3)),
        &from,
    );
    assert_eq!(missing.status_code(), Some(404));
    let uri = format!("sip:1002@{DOMAIN}");
    let offline = r.invite(
        "1001",
        "1002",
        Some(&digest("1001", PASSWORD, &nonce, "INVITE", &uri, 4)),
        &from,
    );
    assert_eq!(offline.status_code(), Some(480));
}

#[test]
fn each_password_guess_comes_out_with_its_source() {
    let mut r = rig();
    let from = peer("198.51.100.7:5070");
    let uri = format!("sip:{DOMAIN}");
    let nonce = r.nonce(&from);
    assert!(r.refusals().is_empty(), "no credentials: no guess");

    r.register(
        "1001",
        Some(&digest("1001", "guess", &nonce, "REGISTER", &uri, 1)),
        &from,
    );
    assert_eq!(r.refusals(), [refusal("198.51.100.7", "1001")]);
    r.register(
        "9001",
        Some(&digest("9001", "guess", &nonce, "REGISTER", &uri, 2)),
        &from,
    );
    assert_eq!(r.refusals(), [refusal("198.51.100.7", "9001")], "unknown users too");

    // Not guesses: the right password, a replay of it, a nonce that is not ours, a 403 for
    // right credentials on another user's address-of-record.
    let ok = digest("1002", PASSWORD, &nonce, "REGISTER", &uri, 3);
    assert_eq!(r.register("1002", Some(&ok), &from).status_code(), Some(200));
    assert_eq!(
        r.register("1002", Some(&ok), &from).status_code(),
        Some(401),
        "replayed nc"
    );
    let foreign = DigestAuth::new([1u8; 32], 300).nonce(DOMAIN, unix_now(), from.addr.ip());
    r.register(
        "1002",
        Some(&digest("1002", "guess", &foreign, "REGISTER", &uri, 1)),
        &from,
    );
    let other_aor = digest("1002", PASSWORD, &nonce, "REGISTER", &uri, 4);
    assert_eq!(r.register("1003", Some(&other_aor), &from).status_code(), Some(403));
    assert!(r.refusals().is_empty());

    // The proxy's Proxy-Authorization counts the same way (with a nonce issued to its sender).
    let other = peer("203.0.113.5:5060");
    let other_nonce = r.nonce(&other);
    let invite_uri = format!("sip:1000@{DOMAIN}");
    r.invite(
        "1004",
        "1000",
        Some(&digest("1004", "guess", &other_nonce, "INVITE", &invite_uri, 5)),
        &other,
    );
    assert_eq!(r.refusals(), [refusal("203.0.113.5", "1004")]);
}

#[test]
fn guesses_through_the_engine_ban_the_source_at_the_threshold() {
    let mut r = rig();
    let bans = Bans::new(&GuardSettings {
        trusted_networks: Vec::new(),
        ..GuardSettings::default()
    });
    let attacker = peer("198.51.100.66:5060");
    let phone = peer("192.0.2.30:5060");
    let uri = format!("sip:{DOMAIN}");
    let nonce = r.nonce(&attacker);
    let mut banned_at = None;
    for i in 1..=2_000u32 {
        let source = attacker.addr.ip();
        if bans.is_banned(source, r.now) {
            // Dropped before the engine, as the transports do.
            continue;
        }
        let resp = r.register(
            "1001",
            Some(&digest("1001", &format!("pw{i}"), &nonce, "REGISTER", &uri, i)),
            &attacker,
        );
        assert_eq!(resp.status_code(), Some(401));
        for f in r.refusals() {
            if let Some(ban) = bans.failure(f.source, &f.user, r.now) {
                assert_eq!(ban.reason, BanReason::SourceFailures);
                banned_at.get_or_insert(i);
            }
        }
        // The real user keeps registering meanwhile, from its own address.
        if i % 100 == 0 {
            let n = r.nonce(&phone);
            let ok = r.register("1001", Some(&digest("1001", PASSWORD, &n, "REGISTER", &uri, 1)), &phone);
            assert_eq!(ok.status_code(), Some(200));
            assert!(!bans.is_banned(phone.addr.ip(), r.now));
        }
        r.now += Duration::from_millis(5);
    }
    let threshold = GuardSettings::default().ban_after_ip_failures;
    assert_eq!(banned_at, Some(threshold), "banned at guess {threshold}");
    assert!(bans.is_banned(attacker.addr.ip(), r.now));
    assert_eq!(bans.list(r.now).len(), 1);
    assert!(!bans.is_banned("192.0.2.30".parse::<IpAddr>().expect("ip"), r.now));
}

/// The attack nonce binding stops: an attacker fetches a nonce from its own address A, then
/// sends wrong-password REGISTERs over UDP with the victim's address B as the source. B never
/// received that nonce, so none of them is a guess, and B is never banned (nor is A, which sent
/// nothing wrong in its own name); B's phone keeps registering.
#[test]
fn guesses_with_a_nonce_of_another_address_get_nobody_banned() {
    let mut r = rig();
    let bans = Bans::new(&GuardSettings {
        trusted_networks: Vec::new(),
        ..GuardSettings::default()
    });
    let attacker = peer("198.51.100.66:5060");
    let victim = peer("192.0.2.30:5060");
    let uri = format!("sip:{DOMAIN}");
    let nonce = r.nonce(&attacker);
    let threshold = GuardSettings::default().ban_after_ip_failures;
    for i in 1..=threshold * 3 {
        let resp = r.register(
            "1001",
            Some(&digest("1001", &format!("pw{i}"), &nonce, "REGISTER", &uri, i)),
            &victim,
        );
        assert_eq!(resp.status_code(), Some(401));
        let challenge = resp.header("WWW-Authenticate").expect("a challenge");
        assert!(
            challenge.contains("stale=true"),
            "a fresh nonce, no verdict: {challenge}"
        );
        assert_ne!(nonce_of(&resp), nonce);
        // What the transport would report to the ban list: nothing.
        let refusals = r.refusals();
        assert!(refusals.is_empty(), "a spoofed guess was counted: {refusals:?}");
        for f in refusals {
            bans.failure(f.source, &f.user, r.now);
        }
        r.now += Duration::from_millis(5);
    }
    assert!(!bans.is_banned(victim.addr.ip(), r.now));
    assert!(bans.list(r.now).is_empty());
    // Even the right password with A's nonce is only told to fetch a fresh one...
    let right = digest("1001", PASSWORD, &nonce, "REGISTER", &uri, 9_999);
    let resp = r.register("1001", Some(&right), &victim);
    assert_eq!(resp.status_code(), Some(401));
    // ...which works from B at once.
    let fresh = nonce_of(&resp);
    let ok = r.register(
        "1001",
        Some(&digest("1001", PASSWORD, &fresh, "REGISTER", &uri, 1)),
        &victim,
    );
    assert_eq!(ok.status_code(), Some(200));
    // A wrong password from A with A's own nonce still counts, against A.
    r.register(
        "1001",
        Some(&digest("1001", "guess", &nonce, "REGISTER", &uri, 10_000)),
        &attacker,
    );
    assert_eq!(r.refusals(), [refusal("198.51.100.66", "1001")]);
}

/// Mean time of the engine's answer to `n` REGISTERs with credentials that `make` builds.
#[test]
fn unknown_users_take_about_as_long_as_wrong_passwords() {
    let mut r = rig();
    let from = peer("198.51.100.7:5070");
    let uri = format!("sip:{DOMAIN}");
    let nonce = r.nonce(&from);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..600u32 {
        // Interleaved, so drift in machine load hits both alike.
        for (user, times) in [("1001", &mut known), ("9001", &mut unknown)] {
            let auth = digest(user, "guess", &nonce, "REGISTER", &uri, i + 1);
            let t = Instant::now();
            let resp = r.register(user, Some(&auth), &from);
            times.push(t.elapsed());
            assert_eq!(resp.status_code(), Some(401));
        }
        r.refusals();
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known), median(&mut unknown));
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    eprintln!("median answer: wrong password {k:?}, unknown user {u:?} (ratio {ratio:.2})");
    assert!((0.5..2.0).contains(&ratio), "wrong password {k:?}, unknown user {u:?}");
}
