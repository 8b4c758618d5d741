//! The traffic both acceptance tests of the operator surface look at (`e2e_admin.rs`,
//! `browser_console.rs`): a fresh server that knows users 1001 and 1002, both registered with SIPp
//! (digest auth), and one call 1001 → 1002 through the authenticating proxy (INVITE, 407, ACK,
//! INVITE with credentials, 100/180/200, ACK, BYE, 200), answered by a SIPp UAS registered as
//! 1002 and ended by the caller. Also helpers to read the admin API's JSON and Prometheus text.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::sipp::Uas;
use crate::support::{self, Server, TempDir};

pub const DOMAIN: &str = support::TEST_DOMAIN;
pub const CALLER: (&str, &str) = ("1001", "secret-1001");
pub const CALLEE: (&str, &str) = ("1002", "secret-1002");

/// The bounds every SIPp run gets.
const BOUNDS: [&str; 6] = ["-m", "1", "-timeout", "30s", "-recv_timeout", "5000"];

/// A server with both users registered and one finished call.
pub struct Flow {
    pub server: Server,
    /// The admin API.
    pub http: SocketAddr,
    /// The call's Call-ID, as the caller sent it.
    pub call_id: String,
    /// The contacts registered for 1001 and 1002 (`127.0.0.1:PORT`).
    pub caller_contact_port: u16,
    pub callee_contact_port: u16,
    /// SIPp's message log of the caller.
    pub caller_log: String,
    /// How long registering and calling took.
    pub took: Duration,
}

/// Starts the server with `extra` flags, registers 1001 and 1002, and plays the call.
pub fn registered_call(extra: &[&str]) -> Flow {
    let dir = TempDir::new("admin");
    support::add_user(dir.path(), CALLER.0, CALLER.1);
    support::add_user(dir.path(), CALLEE.0, CALLEE.1);
    let server = Server::start_in(dir, extra);
    let http = http_addr(&server);
    let started = Instant::now();

    let mut uas = Uas::start("call_uas", "30s");
    register(&server, CALLEE, uas.port);
    // 1001's contact is where its calls come from: the caller SIPp runs on that port.
    let caller_contact_port = support::free_port();
    register(&server, CALLER, caller_contact_port);

    // SIPp puts "sip:" + -auth_uri in the digest uri, which must be the Request-URI.
    let request_uri = format!("{}@{DOMAIN}", CALLEE.0);
    let caller_log = sipp(
        server.udp,
        "call_uac",
        Some(caller_contact_port),
        &[
            "-key",
            "caller",
            CALLER.0,
            "-key",
            "callee",
            CALLEE.0,
            "-au",
            CALLER.0,
            "-ap",
            CALLER.1,
            "-auth_uri",
            &request_uri,
        ],
    );
    uas.finish();
    let call_id = header(&caller_log, "Call-ID").expect("the caller's Call-ID");
    Flow {
        server,
        http,
        call_id,
        caller_contact_port,
        callee_contact_port: uas.port,
        caller_log,
        took: started.elapsed(),
    }
}

/// Registers `127.0.0.1:contact_port` for `user` (REGISTER, 401, REGISTER with credentials, 200).
fn register(server: &Server, (user, password): (&str, &str), contact_port: u16) {
    let port = contact_port.to_string();
    let log = sipp(
        server.udp,
        "call_register",
        None,
        &[
            "-key",
            "aor",
            user,
            "-key",
            "contact_port",
            &port,
            "-au",
            user,
            "-ap",
            password,
            "-auth_uri",
            DOMAIN,
        ],
    );
    let contact = format!("<sip:{user}@127.0.0.1:{port}>;expires=600");
    assert!(log.contains(&contact), "{contact} not in the 200:\n{log}");
}

/// Runs one call of `scenario` against `target` (from `port` when given), asserts SIPp exited 0,
/// and returns its message log. A SIPp that could not take its local port is started again on
/// another one, up to 3 times.
fn sipp(target: SocketAddr, scenario: &str, port: Option<u16>, args: &[&str]) -> String {
    let path = support::scenario_path(scenario);
    for attempt in 1..=3 {
        let work = TempDir::new("admin-sipp");
        let local = match (attempt, port) {
            (1, Some(p)) => p,
            _ => support::free_port(),
        };
        let out = Command::new("sipp")
            .current_dir(work.path())
            .arg(target.to_string())
            .args(["-sf", &path, "-t", "u1", "-i", "127.0.0.1"])
            .args(["-p", &local.to_string()])
            .args(["-key", "domain", DOMAIN])
            .args(args)
            .args(BOUNDS)
            .args(["-trace_err", "-trace_msg", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run sipp");
        let messages = support::sipp_log(work.path(), "messages");
        if out.status.success() {
            return messages;
        }
        let errors = format!(
            "{}\n{}",
            support::sipp_log(work.path(), "errors"),
            String::from_utf8_lossy(&out.stderr)
        );
        if attempt < 3 && errors.contains("Address already in use") {
            continue;
        }
        panic!(
            "sipp {scenario} failed ({}):\n{errors}\n--- messages ---\n{messages}",
            out.status
        );
    }
    unreachable!()
}

/// The first value of header `name` in a SIPp message log.
fn header(log: &str, name: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let (n, v) = l.trim().split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Where the admin API listens: the `http ADDR` line the server printed.
pub fn http_addr(server: &Server) -> SocketAddr {
    server
        .http
        .unwrap_or_else(|| panic!("no `http ADDR` line printed: {:?}", server.stdout))
}

/// An HTTP response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// `GET path` (support's blocking HTTP/1.1 client).
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let (status, body) = support::http_request(addr, "GET", path, None, None);
    Response { status, body }
}

/// `GET path`, asserting 200.
pub fn get_ok(addr: SocketAddr, path: &str) -> Response {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r
}

/// A path segment, percent-encoded (Call-IDs hold `@` and may hold other characters).
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The list in an API answer: the answer itself when it is an array, else its first array
/// member (`{"items": [...], "next_cursor": ...}` and the like).
pub fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => ["items", "registrations", "records", "calls", "data"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array))
            .or_else(|| o.values().find_map(Value::as_array))
            .cloned()
            .unwrap_or_else(|| panic!("no list in {v}")),
        _ => panic!("no list in {v}"),
    }
}

/// The value of one sample in Prometheus text (`name` with its labels, as printed).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.starts_with(' ').then(|| rest.trim().parse().ok())?
    })
}

/// Polls `f` every 100 ms until it returns `Some`, for up to `limit`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where test artifacts go: `target/test-artifacts/`, created.
pub fn artifacts_dir() -> std::path::PathBuf {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}
