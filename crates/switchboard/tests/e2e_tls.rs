//! TLS end to end: OPTIONS over TLS gets 200; SIGHUP reloads the certificate without dropping
//! the connections that are open; a hand-made TLS 1.0/1.1 ClientHello gets a fatal alert and
//! never a ServerHello (the same hello offering TLS 1.2 does get one); `switchboard cert
//! self-signed` output loads in `serve` and verifies with rustls; a `tls_only` user is refused
//! over UDP after authentication and registers over TLS; a `sips:` Contact over UDP is refused.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sip::Message;
use sip::{Frame, Limits, StreamFramer};
use support::{Server, TEST_DOMAIN, TempDir, options, udp_client, udp_transaction};

/// Writes a fresh self-signed certificate for 127.0.0.1 into `dir`; returns its DER.
fn write_cert(dir: &std::path::Path) -> CertificateDer<'static> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
    ck.cert.der().clone()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: std::net::SocketAddr, trusted: &CertificateDer<'static>) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name").to_owned();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    rustls::StreamOwned::new(conn, tcp)
}

fn options_roundtrip(tls: &mut Tls, target: std::net::SocketAddr, branch: &str) -> u16 {
    let local = tls.sock.local_addr().expect("local");
    tls.write_all(options("TLS", local, target, branch, "").as_bytes())
        .expect("write");
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = [0u8; 4096];
    loop {
        if let Some(Frame::Message(m)) = framer.next_frame().expect("framing") {
            return m.status_code().expect("a response");
        }
        let n = tls.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        framer.push(&buf[..n]);
    }
}

#[test]
fn options_over_tls_and_certificate_reload_on_sighup() {
    let dir = TempDir::new("tls");
    let first = write_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let (cert, key) = (
        cert.to_str().expect("utf8").to_owned(),
        key.to_str().expect("utf8").to_owned(),
    );
    let server = Server::start_in(
        dir,
        &["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key],
    );
    let target = server.tls.expect("a TLS listener");

    let mut old = connect(target, &first);
    assert_eq!(options_roundtrip(&mut old, target, "z9hG4bKtls1"), 200);

    // New certificate on disk, then SIGHUP.
    let second = write_cert(server.dir.path());
    server.signal("HUP");
    let mut reloaded = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let mut fresh = connect(target, &second);
        if fresh.conn.complete_io(&mut fresh.sock).is_ok() && !fresh.conn.is_handshaking() {
            assert_eq!(options_roundtrip(&mut fresh, target, "z9hG4bKtls2"), 200);
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "new handshakes use the reloaded certificate");
    let mut stale = connect(target, &first);
    assert!(
        stale.conn.complete_io(&mut stale.sock).is_err(),
        "the old certificate is no longer served"
    );
    // The connection opened before the reload still works.
    assert_eq!(options_roundtrip(&mut old, target, "z9hG4bKtls3"), 200);
}

/// A ClientHello record made by hand: `version` as the record and client version, `suites`,
/// no session id, null compression, and the extensions a client of that version would send
/// (supported_groups and ec_point_formats always; signature_algorithms, a TLS 1.2 extension,
/// when `signature_algorithms`). Never a supported_versions extension, so `version` is all
/// the client offers.
fn client_hello(version: u16, suites: &[u16], signature_algorithms: bool) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    ext(&mut exts, 10, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // x25519, secp256r1
    ext(&mut exts, 11, &[1, 0]); // uncompressed points
    if signature_algorithms {
        ext(&mut exts, 13, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend((0u8..32).map(|i| i.wrapping_mul(37))); // random
    body.push(0); // session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22]; // handshake
    record.extend_from_slice(&version.to_be_bytes());
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// TLS 1.0 cipher suites: RSA and ECDHE with AES-CBC-SHA.
const TLS10_SUITES: [u16; 4] = [0x002f, 0x0035, 0xc009, 0xc013];
/// TLS 1.2 suites rustls serves with an ECDSA certificate: ECDHE-ECDSA with AES-GCM.
const TLS12_SUITES: [u16; 2] = [0xc02b, 0xc02c];

/// Sends `hello` on a fresh connection to `addr`; returns the content type and first bytes of
/// the first record the server answers with, or `None` when it closes without a word.
fn first_record(addr: std::net::SocketAddr, hello: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    tcp.write_all(hello).expect("send the ClientHello");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 7 {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => break,
            Err(e) => panic!("no answer to the ClientHello: {e}"),
        }
    }
    if got.is_empty() {
        return None;
    }
    assert!(got.len() >= 7, "a short record: {got:?}");
    Some((got[0], got[5..].to_vec()))
}

/// Starts a server with a certificate from `switchboard cert self-signed`; returns it and the
/// certificate.
fn tls_server(tag: &str, extra: &[&str]) -> (Server, CertificateDer<'static>) {
    let dir = TempDir::new(tag);
    let (cert, key, _) = support::cert_self_signed(&dir.path().join("tls"), &[]);
    let der = CertificateDer::from_pem_file(&cert).expect("the certificate is PEM");
    let (cert, key) = (
        cert.to_str().expect("utf8").to_owned(),
        key.to_str().expect("utf8").to_owned(),
    );
    let mut args = vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    (Server::start_in(dir, &args), der)
}

#[test]
fn a_tls_1_0_or_1_1_client_gets_an_alert_and_never_a_server_hello() {
    let (server, _) = tls_server("tls10", &[]);
    let target = server.tls.expect("a TLS listener");
    for (what, hello) in [
        ("TLS 1.0", client_hello(0x0301, &TLS10_SUITES, false)),
        ("TLS 1.1", client_hello(0x0302, &TLS10_SUITES, false)),
        // A newer stack held to TLS 1.0 sends signature_algorithms: refused for its version.
        (
            "TLS 1.0 + signature_algorithms",
            client_hello(0x0301, &TLS12_SUITES, true),
        ),
    ] {
        match first_record(target, &hello) {
            None => eprintln!("{what}: closed without a word"),
            Some((content_type, body)) => {
                assert_ne!(
                    content_type, 22,
                    "{what}: the server must not answer with a handshake (ServerHello)"
                );
                assert_eq!(content_type, 21, "{what}: an alert record: {body:?}");
                assert_eq!(body[0], 2, "{what}: a fatal alert: {body:?}");
                assert!(
                    matches!(body[1], 40 | 70),
                    "{what}: handshake_failure or protocol_version, got alert {}",
                    body[1]
                );
                if what.contains("signature_algorithms") {
                    assert_eq!(body[1], 70, "{what}: refused for its version (protocol_version)");
                }
                eprintln!("{what}: fatal alert {}", body[1]);
            }
        }
    }
    // The same hand-made hello offering TLS 1.2 gets a ServerHello: the refusals above are for
    // the version, not for a malformed hello.
    let (content_type, body) =
        first_record(target, &client_hello(0x0303, &TLS12_SUITES, true)).expect("an answer to TLS 1.2");
    assert_eq!((content_type, body[0]), (22, 2), "a ServerHello: {body:?}");
}

#[test]
fn cert_self_signed_output_loads_in_serve_and_verifies() {
    use std::os::unix::fs::PermissionsExt;
    let (server, der) = tls_server("tls-selfsigned", &[]);
    let tls_dir = server.dir.path().join("tls");
    let mode = |f: &str| {
        std::fs::metadata(tls_dir.join(f))
            .expect("written")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("key.pem"), 0o600, "the key is for its owner only");
    assert_eq!(mode("cert.pem") & 0o600, 0o600);
    // rustls verifies the server against the certificate, for the loopback address it names.
    let target = server.tls.expect("a TLS listener");
    let mut tls = connect(target, &der);
    assert_eq!(options_roundtrip(&mut tls, target, "z9hG4bKself1"), 200);
    // A second run keeps the files unless told otherwise.
    let again = std::process::Command::new(support::bin())
        .args(["cert", "self-signed", "--out-dir"])
        .arg(&tls_dir)
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        CertificateDer::from_pem_file(tls_dir.join("cert.pem")).expect("pem"),
        der
    );
    let (_, _, text) = support::cert_self_signed(&tls_dir, &["--force", "--name", "sip.example.com"]);
    assert!(text.contains("self-signed for sip.example.com;"), "{text}");
    assert_ne!(
        CertificateDer::from_pem_file(tls_dir.join("cert.pem")).expect("pem"),
        der,
        "--force replaced it"
    );
    assert_eq!(mode("key.pem"), 0o600);
}

/// A REGISTER for `user` from `local` over `transport`, with `auth` when answering a challenge.
fn register(transport: &str, local: std::net::SocketAddr, user: &str, contact: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{TEST_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKreg{transport}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{TEST_DOMAIN}>;tag=t{cseq}\r\nTo: <sip:{user}@{TEST_DOMAIN}>\r\n\
         Call-ID: reg-{transport}-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// The Authorization header answering the MD5 challenge of a 401.
fn authorization(challenge: &Message, user: &str, password: &str) -> String {
    use sip::digest::{Algorithm, ha1, ha2, response};
    let c = challenge
        .challenges(sip::HeaderName::WwwAuthenticate)
        .map(|c| c.expect("challenge"))
        .find(|c| c.params.get("algorithm").as_deref() == Some("MD5"))
        .expect("an MD5 challenge");
    let nonce = c.params.get("nonce").expect("nonce").into_owned();
    let uri = format!("sip:{TEST_DOMAIN}");
    let h1 = ha1(Algorithm::Md5, user, TEST_DOMAIN, password);
    let r = response(
        Algorithm::Md5,
        &h1,
        &nonce,
        "00000001",
        "c0ffee",
        Some("auth"),
        &ha2(Algorithm::Md5, "REGISTER", &uri),
    );
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{TEST_DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{r}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    )
}

/// Sends `request` over `tls` and returns the first final response.
fn tls_transaction(tls: &mut Tls, request: &str) -> Message {
    tls.write_all(request.as_bytes()).expect("write");
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = [0u8; 4096];
    loop {
        while let Some(frame) = framer.next_frame().expect("framing") {
            if let Frame::Message(m) = frame
                && m.status_code().is_some_and(|c| c >= 200)
            {
                return m;
            }
        }
        let n = tls.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        framer.push(&buf[..n]);
    }
}

#[test]
fn a_tls_only_user_is_refused_over_udp_after_authentication_and_registers_over_tls() {
    let (server, der) = tls_server("tls-only", &[]);
    let status = std::process::Command::new(support::bin())
        .args([
            "user",
            "add",
            "1000",
            "--password",
            "pw-1000",
            "--tls-only",
            "--domain",
            TEST_DOMAIN,
        ])
        .arg("--data-dir")
        .arg(server.dir.path())
        .status()
        .expect("user add");
    assert!(status.success());

    // UDP: challenged like anyone, then refused once the password is right.
    let udp = udp_client();
    let local = udp.local_addr().expect("local");
    let contact = format!("sip:1000@{local}");
    let first = udp_transaction(&udp, server.udp, &register("UDP", local, "1000", &contact, 1, ""));
    assert_eq!(first.status_code(), Some(401));
    let auth = authorization(&first, "1000", "pw-1000");
    let refused = udp_transaction(&udp, server.udp, &register("UDP", local, "1000", &contact, 2, &auth));
    assert_eq!(refused.status_code(), Some(403));
    assert_eq!(refused.reason_phrase(), Some("Forbidden (TLS required)"));
    // A sips: Contact over UDP is refused before any challenge, whoever asks.
    let sips = udp_transaction(
        &udp,
        server.udp,
        &register("UDP", local, "nobody", &format!("sips:nobody@{local}"), 3, ""),
    );
    assert_eq!(sips.status_code(), Some(403));
    assert_eq!(sips.reason_phrase(), Some("Forbidden (sips: needs TLS)"));

    // TLS: registered, with a sips: Contact even.
    let target = server.tls.expect("a TLS listener");
    let mut tls = connect(target, &der);
    let local = tls.sock.local_addr().expect("local");
    let contact = format!("sips:1000@{local}");
    let first = tls_transaction(&mut tls, &register("TLS", local, "1000", &contact, 1, ""));
    assert_eq!(first.status_code(), Some(401));
    let auth = authorization(&first, "1000", "pw-1000");
    let ok = tls_transaction(&mut tls, &register("TLS", local, "1000", &contact, 2, &auth));
    assert_eq!(ok.status_code(), Some(200), "{ok:?}");
    assert!(
        ok.header("Contact").is_some_and(|c| c.contains(&contact)),
        "{:?}",
        ok.header("Contact")
    );
}
