//! Bans end to end with the real binary: a source that keeps guessing a password is banned at
//! `--ban-after-ip-failures` and hears nothing more, while other addresses are still answered;
//! `switchboard ban list` shows it, `switchboard ban remove` lets it in again; the `ban`
//! commands pass the admin token and say what went wrong.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};
use std::time::Duration;

use sip::Message;
use sip::digest::{Algorithm, ha1, ha2, response};
use support::{Server, TEST_DOMAIN, TempDir, bin};

/// `switchboard ban ARGS... --http ADDR`.
fn ban(http: SocketAddr, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("ban")
        .args(args)
        .args(["--http", &http.to_string()])
        .env_remove("SWITCHBOARD_HTTP_TOKEN")
        .output()
        .expect("run switchboard ban")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A REGISTER for `user` from `sock`, with an Authorization for `nonce` when given.
fn register(sock: &UdpSocket, n: u32, user: &str, auth: Option<(&str, &str)>) -> String {
    let me = sock.local_addr().expect("local");
    let auth = auth
        .map(|(nonce, password)| {
            let uri = format!("sip:{TEST_DOMAIN}");
            let h1 = ha1(Algorithm::Md5, user, TEST_DOMAIN, password);
            let r = response(
                Algorithm::Md5,
                &h1,
                nonce,
                "00000001",
                "c0ffee",
                Some("auth"),
                &ha2(Algorithm::Md5, "REGISTER", &uri),
            );
            format!(
                "Authorization: Digest username=\"{user}\", realm=\"{TEST_DOMAIN}\", nonce=\"{nonce}\", \
                 uri=\"{uri}\", response=\"{r}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
            )
        })
        .unwrap_or_default();
    format!(
        "REGISTER sip:{TEST_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ban{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{TEST_DOMAIN}>;tag=b{n}\r\nTo: <sip:{user}@{TEST_DOMAIN}>\r\n\
         Call-ID: ban-{n}-{port}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 600\r\n\
         {auth}Content-Length: 0\r\n\r\n",
        port = me.port()
    )
}

/// The first final response within `wait`, if any.
fn answer(sock: &UdpSocket, server: SocketAddr, request: &str, wait: Duration) -> Option<Message> {
    sock.set_read_timeout(Some(wait)).expect("timeout");
    sock.send_to(request.as_bytes(), server).expect("send");
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        let m = Message::parse(buf[..n].to_vec()).expect("parseable");
        if m.status_code().is_some_and(|c| c >= 200) {
            return Some(m);
        }
    }
    None
}

fn nonce(m: &Message) -> String {
    let h = m.header("WWW-Authenticate").expect("a challenge");
    h.split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce")
        .to_owned()
}

/// One wrong guess: REGISTER, 401, REGISTER with a wrong password, 401.
fn guess(sock: &UdpSocket, server: SocketAddr, n: u32) {
    let wait = Duration::from_secs(3);
    let challenge = answer(sock, server, &register(sock, n * 2, "1000", None), wait).expect("a 401");
    assert_eq!(challenge.status_code(), Some(401));
    let n1 = nonce(&challenge);
    let refused = answer(
        sock,
        server,
        &register(sock, n * 2 + 1, "1000", Some((&n1, "guess"))),
        wait,
    );
    assert_eq!(refused.and_then(|m| m.status_code()), Some(401));
}

#[test]
fn a_guessing_source_is_banned_listed_and_let_in_again() {
    let dir = TempDir::new("bans");
    support::add_user(dir.path(), "1000", "right-secret");
    let server = Server::start_in(
        dir,
        &[
            "--trusted-networks",
            "",
            "--ban-after-ip-failures",
            "3",
            "--ban-time",
            "600",
        ],
    );
    let http = server.http.expect("http");
    let out = ban(http, &["list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no bans\n");

    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for n in 0..3 {
        guess(&attacker, server.udp, n);
    }
    let silence = answer(
        &attacker,
        server.udp,
        &register(&attacker, 100, "1000", None),
        Duration::from_secs(1),
    );
    assert!(silence.is_none(), "a banned source hears nothing: {silence:?}");
    // Another address is not affected.
    let neighbour = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let ok = answer(
        &neighbour,
        server.udp,
        &register(&neighbour, 1, "1000", None),
        Duration::from_secs(3),
    );
    assert_eq!(ok.and_then(|m| m.status_code()), Some(401));

    let out = ban(http, &["list"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("ADDRESS") && lines[0].contains("REASON"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("127.0.0.1 ") && lines[1].contains("source-failures") && lines[1].contains(" 3 "),
        "{table}"
    );
    assert!(lines[1].contains("left)"), "{table}");
    let out = ban(http, &["list", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["bans"][0]["ip"], "127.0.0.1");
    assert_eq!(doc["bans"][0]["failures"], 3);

    let out = ban(http, &["remove", "127.0.0.1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("lifted"), "{}", text(&out));
    let out = ban(http, &["remove", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no ban on 127.0.0.1"), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&ban(http, &["list"]).stdout), "no bans\n");

    // Answered again, and the right password works.
    let challenge = answer(
        &attacker,
        server.udp,
        &register(&attacker, 200, "1000", None),
        Duration::from_secs(3),
    )
    .expect("answered again");
    let ok = answer(
        &attacker,
        server.udp,
        &register(&attacker, 201, "1000", Some((&nonce(&challenge), "right-secret"))),
        Duration::from_secs(3),
    );
    assert_eq!(ok.and_then(|m| m.status_code()), Some(200));
}

#[test]
fn ban_commands_pass_the_token_and_say_what_went_wrong() {
    let server = Server::start(&["--http-token", "t0ken-t0ken"]);
    let http = server.http.expect("http");
    let out = ban(http, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("wants a token"), "{}", text(&out));
    let out = ban(http, &["list", "--token", "wrong-token"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("token was refused"), "{}", text(&out));
    let out = ban(http, &["list", "--token", "t0ken-t0ken"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(bin())
        .args(["ban", "list", "--http", &http.to_string()])
        .env("SWITCHBOARD_HTTP_TOKEN", "t0ken-t0ken")
        .output()
        .expect("run");
    assert!(out.status.success(), "the token from the environment: {}", text(&out));

    // Nothing listening there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port");
    let out = ban(closed, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot reach the admin API"), "{}", text(&out));
    let out = ban(http, &["remove", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses it: {}", text(&out));
}
