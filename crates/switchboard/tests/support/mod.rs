//! Helpers for end-to-end tests: start the real `switchboard` binary on loopback ports chosen by
//! the OS, learn the ports from what it prints, talk SIP to it, stop it.

#![allow(dead_code)]

pub mod baresip;
pub mod sipp;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sip::Message;

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: Option<SocketAddr>,
    /// The admin API, metrics and console (the `http ADDR` line).
    pub http: Option<SocketAddr>,
    pub dir: TempDir,
    pub stdout: Vec<String>,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut p = std::env::temp_dir();
        p.push(format!("switchboard-test-{tag}-{}-{n}", std::process::id()));
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

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_in(TempDir::new("srv"), extra)
    }

    pub fn start_in(dir: TempDir, extra: &[&str]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--domain",
            "test.invalid",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let (mut udp, mut tcp, mut tls, mut http) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && (udp.is_none() || tcp.is_none() || http.is_none() || (extra.contains(&"--tls-listen") && tls.is_none()))
        {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("switchboard exited early: {status}; output: {lines:?}");
                }
                continue;
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("sip"), Some("udp"), Some(a)) => udp = a.parse().ok(),
                (Some("sip"), Some("tcp"), Some(a)) => tcp = a.parse().ok(),
                (Some("sip"), Some("tls"), Some(a)) => tls = a.parse().ok(),
                (Some("http"), Some(a), None) => http = a.parse().ok(),
                _ => {}
            }
            lines.push(line);
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server {
            child,
            udp: udp.unwrap_or_else(|| panic!("no udp listener printed: {lines:?}")),
            tcp: tcp.unwrap_or_else(|| panic!("no tcp listener printed: {lines:?}")),
            tls,
            http,
            dir,
            stdout: lines,
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1: the status and the body as text.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = http_request(addr, "GET", path, None, None);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One blocking HTTP/1.1 request on a fresh connection (`Connection: close`), with an optional
/// JSON body and bearer token: the status and the body (chunked bodies decoded).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    match body {
        Some(b) => {
            req += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        }
        None => req += "Content-Length: 0\r\n\r\n",
    }
    s.write_all(req.as_bytes()).expect("send the HTTP request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the HTTP response");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let mut body = raw.split_off(end + 4);
    if chunked {
        let mut out = Vec::new();
        let mut rest = body.as_slice();
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = rest.get(eol + 4 + size..).unwrap_or_default();
        }
        body = out;
    }
    (status, body)
}

/// An OPTIONS request from `local` (Via sent-by) with the given branch.
pub fn options(transport: &str, local: SocketAddr, target: SocketAddr, branch: &str, extra: &str) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={branch}f\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// A UDP client socket on loopback.
pub fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s
}

/// Receives one datagram and parses it.
pub fn recv_message(s: &UdpSocket) -> (Message, Vec<u8>) {
    let mut buf = vec![0u8; 65_536];
    let n = s.recv(&mut buf).expect("a response");
    buf.truncate(n);
    (Message::parse(buf.clone()).expect("a parseable response"), buf)
}

/// Sends `request` over UDP and returns the first final response (retransmitting like a UAC
/// over UDP would, T1 = 500 ms, for up to 4 s).
pub fn udp_transaction(s: &UdpSocket, server: SocketAddr, request: &str) -> Message {
    s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        s.send_to(request.as_bytes(), server).expect("send");
        while let Ok(n) = s.recv(&mut buf) {
            let m = Message::parse(buf[..n].to_vec()).expect("parseable");
            if m.status_code().is_some_and(|c| c >= 200) {
                return m;
            }
        }
    }
    panic!("no final response from {server}");
}

/// Whether an outside program can be run; in CI (`CI=true`) a missing one is a failure,
/// elsewhere it prints a visible SKIP line and the test returns early.
pub fn require_tool(name: &str, probe_arg: &str) -> bool {
    let found = Command::new(name)
        .arg(probe_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is required in CI (apt-get install it in .ci/run)");
    }
    eprintln!("SKIP: {name} not installed; install it to run this test");
    false
}

/// The domain every end-to-end server serves.
pub const TEST_DOMAIN: &str = "test.invalid";

/// Adds a subscriber of [`TEST_DOMAIN`] with the CLI, as an operator would.
pub fn add_user(dir: &Path, user: &str, password: &str) {
    let out = Command::new(bin())
        .args(["user", "add", user, "--password", password, "--domain", TEST_DOMAIN])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("user add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A SIPp scenario of this crate's `tests/scenarios/`.
pub fn scenario_path(scenario: &str) -> String {
    format!("{}/tests/scenarios/{scenario}.xml", env!("CARGO_MANIFEST_DIR"))
}

/// A UDP port on 127.0.0.1 that was free a moment ago (for SIPp's `-p`).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// SIPp's `*_KIND.log` files in `dir` (`messages`, `errors`, ...), concatenated.
pub fn sipp_log(dir: &Path, kind: &str) -> String {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(&format!("_{kind}.log")))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `switchboard cert self-signed --out-dir DIR` (with `extra` flags) as an operator would;
/// returns the certificate and key paths taken from the `serve with:` line it prints, and all it
/// printed.
pub fn cert_self_signed(out_dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf, String) {
    let out = Command::new(bin())
        .args(["cert", "self-signed", "--out-dir"])
        .arg(out_dir)
        .args(extra)
        .output()
        .expect("run cert self-signed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cert self-signed failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve_line = text
        .lines()
        .find_map(|l| l.strip_prefix("serve with:"))
        .unwrap_or_else(|| panic!("no 'serve with:' line in {text:?}"));
    let words: Vec<&str> = serve_line.split_whitespace().collect();
    let after = |flag: &str| {
        let i = words
            .iter()
            .position(|w| *w == flag)
            .unwrap_or_else(|| panic!("no {flag} in {serve_line:?}"));
        PathBuf::from(words.get(i + 1).unwrap_or_else(|| panic!("nothing after {flag}")))
    };
    (after("--tls-cert"), after("--tls-key"), text)
}
