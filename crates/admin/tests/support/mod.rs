//! An in-process switchboard for the admin API tests: the SIP server (`server::serve`) and the
//! admin HTTP server on loopback ports chosen by the OS, in a runtime of their own; a blocking
//! HTTP/1.1 client; and a compact UDP phone that registers and calls with digest auth.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sip::digest::{Algorithm, ha1, ha2, response};
use sip::{HeaderName, Message};

pub const DOMAIN: &str = "test.invalid";
/// How long any one SIP message may take to arrive.
pub const WAIT: Duration = Duration::from_secs(5);

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("admin-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The SIP server and its admin API, stopped when dropped.
pub struct Rig {
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Rig {
    pub fn start(token: Option<&str>) -> Rig {
        Self::start_with(token, |_| {})
    }

    /// Starts with the test configuration, changed by `tweak`.
    pub fn start_with(token: Option<&str>, tweak: impl FnOnce(&mut server::ServerConfig)) -> Rig {
        let dir = TempDir::new("rig");
        let mut config = server::ServerConfig {
            sip_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            data_dir: Some(dir.path().to_owned()),
            domain: DOMAIN.into(),
            media: None,
            udp_sockets_per_address: 1,
            shutdown_grace: Duration::from_millis(200),
            ..Default::default()
        };
        tweak(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let settings = admin::AdminSettings {
            token: token.map(str::to_owned),
        };
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http");
            let http = listener.local_addr().expect("http addr");
            let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
            let mut admin_task = None;
            let result = server::serve(
                config,
                async {
                    let _ = stop_rx.await;
                },
                |listening, control| {
                    admin_task = Some(tokio::spawn(admin::serve(listener, control, settings, async {
                        let _ = admin_stop_rx.await;
                    })));
                    let _ = ready_tx.send((listening.udp[0], http));
                },
            )
            .await;
            let _ = admin_stop_tx.send(());
            if let Some(t) = admin_task {
                let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
            }
            result.expect("the server ran");
        });
        let (sip, http) = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server started");
        Rig {
            sip,
            http,
            dir,
            stop: Some(stop_tx),
            runtime: Some(runtime),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let (status, _, bytes) = http_request_full(self.http, method, path, body, None);
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// Adds a user through the API.
    pub fn add_user(&self, ext: &str, password: &str) {
        let body = serde_json::json!({ "ext": ext, "password": password }).to_string();
        let (status, v) = self.request("POST", "/api/users", Some(&body));
        assert_eq!(status, 201, "{v}");
    }

    pub fn store(&self) -> store::SqliteStore {
        store::SqliteStore::open_in(self.dir.path()).expect("open the store")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            // Let the server finish its shutdown (the store's writers) before the directory goes.
            std::thread::sleep(Duration::from_millis(300));
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// `GET path`: status and body as text.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = http_request(addr, "GET", path, None, None);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One HTTP/1.1 request on a fresh connection: status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_request_full(addr, method, path, body, token);
    (status, body)
}

/// [`http_request`] with the response headers (names lowercased).
pub fn http_request_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
    } else {
        req += "Content-Length: 0\r\n\r\n";
    }
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        rest = dechunk(&rest);
    }
    (status, headers, rest)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Polls `f` until it returns `Some`, for up to five seconds.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------------------------ SIP

/// A phone on a UDP socket of its own.
pub struct Phone {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    pub reg_call_id: String,
    cseq: u32,
}

impl Phone {
    pub fn new(server: SocketAddr, user: &str, password: &str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = sock.local_addr().expect("local").port();
        Phone {
            sock,
            server,
            user: user.into(),
            password: password.into(),
            reg_call_id: format!("reg-{user}-{port}@test"),
            cseq: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local")
    }

    pub fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.server).expect("send");
    }

    fn register_request(&mut self, auth: Option<&str>) -> String {
        self.cseq += 1;
        let (me, user, cseq, call_id) = (self.addr(), &self.user, self.cseq, &self.reg_call_id);
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-r{cseq}-{port};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=r{port}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
             Expires: 600\r\nUser-Agent: admin-test-phone\r\n{auth}Content-Length: 0\r\n\r\n",
            port = me.port()
        )
    }

    /// REGISTER, 401, REGISTER with the digest: the final status.
    pub fn register(&mut self) -> u16 {
        let first = self.register_request(None);
        self.send(&first);
        let challenge = self.recv("the 401", |m| is_final(m, "REGISTER"));
        assert_eq!(challenge.status_code(), Some(401), "{challenge:?}");
        let uri = format!("sip:{DOMAIN}");
        let auth = digest(
            &challenge,
            HeaderName::WwwAuthenticate,
            (&self.user, &self.password),
            "REGISTER",
            &uri,
        );
        let second = self.register_request(Some(&auth));
        self.send(&second);
        let answer = self.recv("the REGISTER's answer", |m| is_final(m, "REGISTER"));
        answer.status_code().unwrap_or(0)
    }

    /// The next message `wanted` accepts, skipping others; panics after [`WAIT`].
    pub fn recv(&self, what: &str, wanted: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 65_536];
        let mut skipped = Vec::new();
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else { continue };
            let m = Message::parse(buf[..n].to_vec()).expect("a parseable message");
            if wanted(&m) {
                return m;
            }
            skipped.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        panic!("{}: no {what} within {WAIT:?}; got:\n{}", self.user, skipped.join("\n"));
    }
}

pub fn is_final(m: &Message, method: &str) -> bool {
    m.status_code().is_some_and(|c| c >= 200) && m.cseq().is_ok_and(|c| c.method.as_str() == method)
}

pub fn is_request(m: &Message, method: &str) -> bool {
    m.method().is_some_and(|x| x.as_str() == method)
}

/// An MD5 digest answer to the challenge in `header`.
pub fn digest(
    challenge: &Message,
    header: HeaderName,
    (user, password): (&str, &str),
    method: &str,
    uri: &str,
) -> String {
    let chosen = challenge
        .challenges(header)
        .map(|c| c.expect("challenge"))
        .find(|c| c.params.get("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
        .expect("an MD5 challenge");
    let nonce = chosen.params.get("nonce").expect("nonce").into_owned();
    let h1 = ha1(Algorithm::Md5, user, DOMAIN, password);
    let r = response(
        Algorithm::Md5,
        &h1,
        &nonce,
        "00000001",
        "c0ffee",
        Some("auth"),
        &ha2(Algorithm::Md5, method, uri),
    );
    format!(
        "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
         algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

/// A response to `req` with an optional To tag and extra header lines.
pub fn reply(req: &Message, status: &str, to_tag: Option<&str>, extra: &str) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values("Via") {
        r += &format!("Via: {v}\r\n");
    }
    let to = req.header("To").expect("To");
    let to = match to_tag {
        Some(t) if !to.contains(";tag=") => format!("{to};tag={t}"),
        _ => to.to_owned(),
    };
    r + &format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        req.header("From").expect("From"),
        req.header("Call-ID").expect("Call-ID"),
        req.header("CSeq").expect("CSeq"),
    )
}
