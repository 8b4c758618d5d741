//! The registrar end to end: digest challenge and answer (SHA-256 and MD5), bindings with
//! expiry, 423, 403, wrong passwords, removal with `Expires: 0` and `Contact: *`, and bindings
//! surviving `kill -9`.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use sip::digest::{Algorithm, ha1, ha2, response};
use sip::{HeaderName, Message};
use support::{Server, TempDir, udp_client, udp_transaction};

const DOMAIN: &str = "test.invalid";

struct Phone {
    sock: UdpSocket,
    server: SocketAddr,
    user: String,
    password: String,
    call_id: String,
    cseq: u32,
    alg: Algorithm,
}

impl Phone {
    fn new(server: SocketAddr, user: &str, password: &str, alg: Algorithm) -> Phone {
        let sock = udp_client();
        let call_id = format!("reg-{user}-{}@test", sock.local_addr().expect("local").port());
        Phone {
            sock,
            server,
            user: user.into(),
            password: password.into(),
            call_id,
            cseq: 0,
            alg,
        }
    }

    fn request(&mut self, to_user: &str, contacts: &[String], expires: Option<u32>, auth: Option<String>) -> String {
        self.cseq += 1;
        let local = self.sock.local_addr().expect("local");
        let mut r = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{to_user}@{DOMAIN}>;tag=ph{}\r\nTo: <sip:{to_user}@{DOMAIN}>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\nUser-Agent: e2e-phone\r\n",
            self.call_id, self.cseq, self.cseq, self.call_id, self.cseq
        );
        for c in contacts {
            r += &format!("Contact: {c}\r\n");
        }
        if let Some(e) = expires {
            r += &format!("Expires: {e}\r\n");
        }
        if let Some(a) = auth {
            r += &format!("Authorization: {a}\r\n");
        }
        r + "Content-Length: 0\r\n\r\n"
    }

    /// REGISTER with the digest dance: unauthenticated first, then answering the challenge of
    /// our algorithm.
    fn register_as(&mut self, to_user: &str, contacts: &[String], expires: Option<u32>) -> Message {
        let first = self.request(to_user, contacts, expires, None);
        let challenge = udp_transaction(&self.sock, self.server, &first);
        assert_eq!(challenge.status_code(), Some(401));
        let chosen = challenge
            .challenges(HeaderName::WwwAuthenticate)
            .map(|c| c.expect("challenge"))
            .find(|c| c.params.get("algorithm").as_deref() == Some(self.alg.as_str()))
            .expect("our algorithm is offered");
        let nonce = chosen.params.get("nonce").expect("nonce").into_owned();
        let uri = format!("sip:{DOMAIN}");
        let h1 = ha1(self.alg, &self.user, DOMAIN, &self.password);
        let resp = response(
            self.alg,
            &h1,
            &nonce,
            "00000001",
            "abcdef",
            Some("auth"),
            &ha2(self.alg, "REGISTER", &uri),
        );
        let auth = format!(
            "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", \
             algorithm={}, cnonce=\"abcdef\", qop=auth, nc=00000001",
            self.user,
            self.alg.as_str()
        );
        let second = self.request(to_user, contacts, expires, Some(auth));
        udp_transaction(&self.sock, self.server, &second)
    }

    fn register(&mut self, contacts: &[String], expires: Option<u32>) -> Message {
        let user = self.user.clone();
        self.register_as(&user, contacts, expires)
    }
}

fn contacts_of(m: &Message) -> Vec<(String, u32)> {
    m.contacts()
        .map(|c| {
            let c = c.expect("contact");
            let a = c.addr().expect("not *");
            (
                a.uri.as_str().to_owned(),
                c.expires().expect("expires").expect("number"),
            )
        })
        .collect()
}

#[test]
fn register_with_digest_lists_bindings_and_removes_them() {
    let dir = TempDir::new("reg");
    support::add_user(dir.path(), "1000", "pw1000");
    support::add_user(dir.path(), "1001", "pw1001");
    let server = Server::start_in(dir, &[]);

    // The challenge offers MD5 first (what SIPp and older phones read), then SHA-256.
    let mut phone = Phone::new(server.udp, "1000", "pw1000", Algorithm::Sha256);
    let bare = phone.request("1000", &["<sip:1000@192.0.2.10:5060>".into()], None, None);
    let challenge = udp_transaction(&phone.sock, server.udp, &bare);
    assert_eq!(challenge.status_code(), Some(401));
    let algs: Vec<_> = challenge
        .challenges(HeaderName::WwwAuthenticate)
        .map(|c| c.expect("challenge").params.get("algorithm").expect("alg").into_owned())
        .collect();
    assert_eq!(algs, ["MD5", "SHA-256"]);

    let ok = phone.register(&["<sip:1000@192.0.2.10:5060>".into()], None);
    assert_eq!(ok.status_code(), Some(200), "{ok:?}");
    assert_eq!(contacts_of(&ok), [("sip:1000@192.0.2.10:5060".to_owned(), 3600)]);
    assert!(ok.header("Date").is_some_and(|d| d.ends_with("GMT")));

    // A second device of the same user (MD5 this time).
    let mut desk = Phone::new(server.udp, "1000", "pw1000", Algorithm::Md5);
    let ok = desk.register(&["<sip:1000@192.0.2.20:5062>;expires=120".into()], None);
    assert_eq!(ok.status_code(), Some(200));
    let listed = contacts_of(&ok);
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&("sip:1000@192.0.2.20:5062".to_owned(), 120)));

    // Below the minimum: 423 with Min-Expires.
    let brief = phone.register(&["<sip:1000@192.0.2.10:5060>".into()], Some(30));
    assert_eq!(brief.status_code(), Some(423));
    assert_eq!(brief.header("Min-Expires"), Some("60"));

    // Wrong password: challenged again. Authenticated as someone else: 403.
    let mut thief = Phone::new(server.udp, "1000", "guess", Algorithm::Md5);
    assert_eq!(
        thief.register(&["<sip:1000@203.0.113.1>".into()], None).status_code(),
        Some(401)
    );
    let mut other = Phone::new(server.udp, "1001", "pw1001", Algorithm::Md5);
    assert_eq!(
        other
            .register_as("1000", &["<sip:1000@203.0.113.1>".into()], None)
            .status_code(),
        Some(403)
    );

    // Expires 0 on one contact removes it; Contact: * with Expires: 0 removes all.
    let ok = desk.register(&["<sip:1000@192.0.2.20:5062>".into()], Some(0));
    assert_eq!(contacts_of(&ok).len(), 1);
    assert_eq!(
        phone.register(&["*".into()], None).status_code(),
        Some(400),
        "* needs Expires: 0"
    );
    let ok = phone.register(&["*".into()], Some(0));
    assert_eq!(ok.status_code(), Some(200));
    assert!(contacts_of(&ok).is_empty());
}

#[test]
fn acknowledged_bindings_survive_kill_9() {
    let dir = TempDir::new("crash");
    support::add_user(dir.path(), "1000", "pw1000");
    let mut server = Server::start_in(dir, &[]);
    let mut phone = Phone::new(server.udp, "1000", "pw1000", Algorithm::Sha256);
    let ok = phone.register(&["<sip:1000@192.0.2.10:5060>".into()], None);
    assert_eq!(ok.status_code(), Some(200));

    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
    let dir = std::mem::replace(&mut server.dir, TempDir::new("unused"));
    drop(server);
    let server = Server::start_in(dir, &[]);
    let mut again = Phone::new(server.udp, "1000", "pw1000", Algorithm::Sha256);
    let listed = again.register(&[], None);
    assert_eq!(listed.status_code(), Some(200));
    let contacts = contacts_of(&listed);
    assert_eq!(contacts.len(), 1, "the binding acknowledged before the crash is back");
    assert_eq!(contacts[0].0, "sip:1000@192.0.2.10:5060");
    assert!(contacts[0].1 > 3500 && contacts[0].1 <= 3600);
}

#[test]
fn sha256_can_be_offered_first() {
    let server = Server::start(&["--digest-sha256-first"]);
    let mut phone = Phone::new(server.udp, "1000", "pw1000", Algorithm::Sha256);
    let bare = phone.request("1000", &[], None, None);
    let challenge = udp_transaction(&phone.sock, server.udp, &bare);
    let first = challenge
        .challenges(HeaderName::WwwAuthenticate)
        .next()
        .expect("a challenge")
        .expect("valid");
    assert_eq!(first.params.get("algorithm").as_deref(), Some("SHA-256"));
}

#[test]
fn a_running_server_sees_user_changes_without_restart() {
    let server = Server::start(&[]);
    let dir = server.dir.path();
    let mut phone = Phone::new(server.udp, "2000", "first", Algorithm::Md5);
    assert_eq!(
        phone.register(&["<sip:2000@192.0.2.30>".into()], None).status_code(),
        Some(401),
        "unknown yet"
    );
    support::add_user(dir, "2000", "first");
    assert_eq!(
        phone.register(&["<sip:2000@192.0.2.30>".into()], None).status_code(),
        Some(200),
        "added while running"
    );
    let out = Command::new(support::bin())
        .args(["user", "passwd", "2000", "--password", "second", "--domain", DOMAIN])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("passwd");
    assert!(out.status.success());
    // The server checks for subscriber changes once a second on the success path (and at once
    // when credentials fail, which the other assertions rely on).
    let refused = (0..30).any(|_| {
        let refused = phone.register(&["<sip:2000@192.0.2.30>".into()], None).status_code() == Some(401);
        if !refused {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        refused
    });
    assert!(refused, "old password refused within a second or so");
    let mut updated = Phone::new(server.udp, "2000", "second", Algorithm::Md5);
    assert_eq!(
        updated.register(&["<sip:2000@192.0.2.30>".into()], None).status_code(),
        Some(200)
    );
}
