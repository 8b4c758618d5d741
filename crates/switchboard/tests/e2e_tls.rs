//! TLS end to end: OPTIONS over TLS gets 200; SIGHUP reloads the certificate without dropping
//! the connections that are open.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use sip::{Frame, Limits, StreamFramer};
use support::{Server, TempDir, options};

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
