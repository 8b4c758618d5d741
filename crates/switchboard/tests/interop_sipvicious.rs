//! Interop with SIPVicious (Debian package `sipvicious`: `svwar`, `svcrack`), the scanner every
//! public SIP server meets within minutes, against the real binary with users 1000-1009:
//!
//! - with the default settings its User-Agent (`friendly-scanner`) is blocked: `svwar` hears
//!   nothing at all;
//! - with `--blocked-user-agents ""` it is answered, and `svwar` still cannot tell existing
//!   extensions (1000-1009) from missing ones (990-999, 1010-1020), by REGISTER or INVITE, with or
//!   without `--force`: every extension gets the same challenge;
//! - `svcrack` with a 2,000-word list against 1001 (its password not in the list) is banned at its
//!   20th guess (`--ban-after-ip-failures` default) and finds nothing, while a SIPp phone of the
//!   same user registers from 127.0.0.2 throughout with no failure; the ban shows in `/api/bans`
//!   and in `switchboard ban list`, and `switchboard ban remove` lifts it;
//! - three `svcrack`s from three addresses, each under the per-address threshold, are banned by
//!   the per-user rule (`--ban-after-user-failures`), again without touching the phone.
//!
//! Loopback only (127.0.0.0/8 works on Linux without setup); the servers trust no network
//! (`--trusted-networks ""`, loopback is trusted by default). Without SIPVicious or SIPp the
//! tests print SKIP, except in CI (`CI=true`) where they fail.

mod support;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, TEST_DOMAIN, TempDir, bin, require_tool};

/// The attacked extension and its password (not in any word list here).
const TARGET: &str = "1001";

fn password(user: u32) -> String {
    format!("Real-{user}-pw!Q7")
}

/// A server with users 1000-1009 and the given extra flags.
fn server(tag: &str, extra: &[&str]) -> Server {
    let dir = TempDir::new(tag);
    let csv: String = (1000..1010).map(|u| format!("{u},{}\n", password(u))).collect();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, csv).expect("write users.csv");
    let out = Command::new(bin())
        .args(["user", "import"])
        .arg(&file)
        .args(["--domain", TEST_DOMAIN, "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("user import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Server::start_in(dir, extra)
}

/// Flags that let sipvicious be answered and loopback be banned.
const HOSTILE: &[&str] = &["--blocked-user-agents", "", "--trusted-networks", ""];

fn tools() -> bool {
    // svwar/svcrack exit 0 on --version; the Debian package names them svwar and svcrack.
    require_tool("svwar", "--version") && require_tool("svcrack", "--version")
}

/// A UDP port free a moment ago on `ip` (sipvicious binds 5060 and up otherwise, and would
/// collide with another test's run).
fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `svwar -e990-1020 -m METHOD -v` from 127.0.0.1 against the server: all it printed (`-v`: an
/// INFO line for each extension it believes exists).
fn svwar(server: &Server, method: &str, force: bool) -> String {
    let mut cmd = Command::new("svwar");
    cmd.args(["-e", "990-1020", "-m", method, "--domain", TEST_DOMAIN])
        .args(["-p", &server.udp.port().to_string()])
        .args(["-P", &free_port("127.0.0.1").to_string()])
        .args(["-b", "127.0.0.1", "-x", "127.0.0.1", "-t", "0.01", "-v"]);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.arg("127.0.0.1").stdin(Stdio::null()).output().expect("run svwar");
    output(&out)
}

/// Extensions svwar says exist (its log lines and its result table).
fn found(svwar_output: &str) -> Vec<String> {
    svwar_output
        .lines()
        .filter(|l| l.contains("exists") || l.contains("reqauth") || l.contains("noauth") || l.contains("weird"))
        .map(str::to_owned)
        .collect()
}

/// svcrack 0.3.3 ignores its `-b` (its `main()` does not pass the binding address on), so a
/// second source address needs this shim: it runs svcrack's own `main()` with unbound sockets
/// bound to the address given first.
const SVCRACK_FROM: &str = r#"
import socket, sys
sys.path.insert(0, "/usr/share/sipvicious")
import sipvicious.svcrack as svcrack
source = sys.argv.pop(1)
plain_bind = socket.socket.bind
def bind(self, addr):
    return plain_bind(self, (source, addr[1]) if addr[0] in ("", "0.0.0.0") else addr)
socket.socket.bind = bind
sys.argv[0] = "svcrack"
sys.exit(svcrack.main())
"#;

/// Starts `svcrack -u TARGET -d WORDS` at DEBUG level (one `trying` line per password it sends):
/// the Debian command from 127.0.0.1, or through [`SVCRACK_FROM`] from another `source`.
fn svcrack(server: &Server, words: &Path, source: &str) -> Child {
    let mut cmd = if source == "127.0.0.1" {
        Command::new("svcrack")
    } else {
        let mut c = Command::new("python3");
        c.args(["-c", SVCRACK_FROM, source]);
        c
    };
    cmd.args(["-u", TARGET, "-d"])
        .arg(words)
        .args(["--domain", TEST_DOMAIN, "-p", &server.udp.port().to_string()])
        .args(["-P", &free_port(source).to_string(), "-x", source])
        .args(["--maximumtime", "3", "-vvv"])
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run svcrack")
}

/// 2,000 distinct lower-case words, none of them a real password.
fn word_list(dir: &Path) -> std::path::PathBuf {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut words = std::collections::BTreeSet::new();
    while words.len() < 2_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 5 + (state % 6) as usize;
        let w: String = (0..len)
            .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[((state >> (i * 5)) % 36) as usize]))
            .collect();
        words.insert(w);
    }
    for u in 1000..1010 {
        assert!(!words.contains(&password(u)));
    }
    let path = dir.join("words.txt");
    std::fs::write(&path, words.into_iter().collect::<Vec<_>>().join("\n") + "\n").expect("write words");
    path
}

/// A SIPp phone registering `TARGET` with its real password from `ip`, `calls` times at 5 per
/// second (each a REGISTER, 401, REGISTER with the digest, 200).
fn phone(server: &Server, ip: &str, calls: u32, work: &Path) -> Child {
    Command::new("sipp")
        .current_dir(work)
        .arg(server.udp.to_string())
        .args(["-sf", &support::scenario_path("reg_loopback"), "-t", "u1", "-i", ip])
        .args(["-p", &free_port(ip).to_string()])
        .args(["-key", "domain", TEST_DOMAIN, "-key", "aor", TARGET])
        .args(["-au", TARGET, "-ap", &password(1001), "-auth_uri", TEST_DOMAIN])
        .args(["-r", "5", "-m", &calls.to_string(), "-l", "5"])
        .args(["-timeout", "60s", "-recv_timeout", "5000"])
        .args(["-trace_err", "-trace_msg", "-nostdin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sipp")
}

/// Waits for the phone; asserts every registration succeeded. Returns the 200s it got.
fn phone_result(phone: Child, work: &Path, calls: u32) -> usize {
    let out = phone.wait_with_output().expect("sipp");
    let messages = support::sipp_log(work, "messages");
    let statuses: Vec<&str> = messages
        .lines()
        .filter_map(|l| l.strip_prefix("SIP/2.0 "))
        .map(|l| &l[..3])
        .collect();
    assert!(
        out.status.success(),
        "the phone failed ({}): {}\n{}",
        out.status,
        support::sipp_log(work, "errors"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        statuses.iter().all(|s| *s == "401" || *s == "200"),
        "the phone saw {statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == "200").count();
    assert_eq!(ok, calls as usize, "every registration succeeded");
    ok
}

fn api(server: &Server, path: &str) -> Value {
    let (status, body) = support::http_get(server.http.expect("http"), path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = support::http_get(server.http.expect("http"), "/metrics");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn ban_command(server: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("ban")
        .args(args)
        .args(["--http", &server.http.expect("http").to_string()])
        .env_remove("SWITCHBOARD_HTTP_TOKEN")
        .output()
        .expect("switchboard ban")
}

#[test]
fn svwar_hears_nothing_from_a_default_server() {
    if !tools() {
        return;
    }
    let server = server("sv-default", &[]);
    for method in ["REGISTER", "INVITE"] {
        let out = svwar(&server, method, false);
        assert!(found(&out).is_empty(), "{method}: {out}");
        assert!(out.contains("found nothing"), "{method}: {out}");
        // Its first probe timed out: not even a challenge came back.
        assert!(out.contains("timed out"), "{method}: {out}");
        eprintln!("svwar -m {method} against the default server:\n{}", out.trim());
    }
    assert!(metric(&server, "switchboard_scanner_drops_total") >= 2.0);
    let (_, text) = support::http_get(server.http.expect("http"), "/metrics");
    for method in ["REGISTER", "INVITE"] {
        let line = format!("switchboard_sip_requests_received_total{{method=\"{method}\"}} 0");
        assert!(text.contains(&line), "dropped before counting: {line}");
    }
    assert!(!text.contains("switchboard_sip_responses_sent_total{status=\"401\"}"));
    assert!(!text.contains("switchboard_sip_responses_sent_total{status=\"407\"}"));
}

#[test]
fn svwar_cannot_tell_existing_extensions_from_missing_ones() {
    if !tools() {
        return;
    }
    let server = server("sv-war", HOSTILE);
    for method in ["REGISTER", "INVITE"] {
        // Its sanity check: a random extension gets a challenge, so the scan is pointless.
        let out = svwar(&server, method, false);
        assert!(found(&out).is_empty(), "{method}: {out}");
        assert!(
            out.contains("replied with an authentication request for an unknown extension"),
            "{method}: {out}"
        );
        assert!(out.contains("found nothing"), "{method}: {out}");
        eprintln!("svwar -m {method}:\n{}", out.trim());
        // Forced on, it learns the answer for a missing extension and finds every other answer
        // the same: it stops with nothing.
        let out = svwar(&server, method, true);
        assert!(found(&out).is_empty(), "{method} --force: {out}");
        assert!(out.contains("found nothing"), "{method} --force: {out}");
        let first = out.lines().next().unwrap_or_default();
        eprintln!("svwar -m {method} --force: {first} ... found nothing");
    }
    // Scanning without credentials is not password guessing.
    assert_eq!(api(&server, "/api/bans")["bans"], Value::Array(Vec::new()));
    assert_eq!(metric(&server, "switchboard_auth_failures_total"), 0.0);
}

#[test]
fn svcrack_is_banned_at_the_threshold_while_the_user_keeps_registering() {
    if !tools() || !require_tool("sipp", "-v") {
        return;
    }
    let server = server("sv-crack", HOSTILE);
    let work = TempDir::new("sv-crack-run");
    let words = word_list(work.path());
    let phone_dir = TempDir::new("sv-crack-phone");
    // 60 registrations at 5 per second: before, during and after the attack.
    let phone = phone(&server, "127.0.0.2", 60, phone_dir.path());
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    let out = svcrack(&server, &words, "127.0.0.1")
        .wait_with_output()
        .expect("svcrack");
    let took = started.elapsed();
    let text = output(&out);
    let tried = text.lines().filter(|l| l.contains(":trying ")).count();
    assert!(!text.contains("The password for"), "{text}");
    assert!(text.contains("found nothing"), "{text}");

    let bans = api(&server, "/api/bans");
    let list = bans["bans"].as_array().expect("a list");
    assert_eq!(list.len(), 1, "only the attacker: {bans}");
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[0]["reason"], "source-failures");
    assert_eq!(list[0]["failures"], 20, "banned at the 20th guess: {bans}");
    let failures = metric(&server, "switchboard_auth_failures_total");
    assert_eq!(failures, 20.0, "the server checked 20 guesses and no more");
    assert!(
        (20..=21).contains(&tried),
        "svcrack sent {tried} guesses (the 21st answers the last challenge before the ban)"
    );
    let dropped = metric(&server, "switchboard_banned_packets_total");
    assert!(dropped > 0.0);

    let ok = phone_result(phone, phone_dir.path(), 60);
    eprintln!(
        "svcrack: {tried} of 2000 passwords sent in {took:.1?}, {failures} refused, then banned; \
         {dropped} of its packets dropped; found nothing. The phone from 127.0.0.2: {ok} of 60 \
         registrations OK"
    );

    // The operator sees the ban and lifts it.
    let out = ban_command(&server, &["list"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", output(&out));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("127.0.0.1 ") && l.contains("source-failures")),
        "{table}"
    );
    eprintln!("switchboard ban list:\n{table}");
    let out = ban_command(&server, &["remove", "127.0.0.1"]);
    assert!(out.status.success(), "{}", output(&out));
    assert_eq!(api(&server, "/api/bans")["bans"], Value::Array(Vec::new()));
    assert_eq!(metric(&server, "switchboard_bans"), 0.0);
}

#[test]
fn svcracks_from_several_addresses_are_banned_by_the_per_user_rule() {
    if !tools() || !require_tool("sipp", "-v") {
        return;
    }
    // Each address stays far below its own threshold; together they pass the user's.
    let server = server(
        "sv-dist",
        &[
            "--blocked-user-agents",
            "",
            "--trusted-networks",
            "",
            "--ban-after-ip-failures",
            "1000",
            "--ban-after-user-failures",
            "30",
        ],
    );
    let work = TempDir::new("sv-dist-run");
    let words = word_list(work.path());
    let phone_dir = TempDir::new("sv-dist-phone");
    let phone = phone(&server, "127.0.0.2", 40, phone_dir.path());
    std::thread::sleep(Duration::from_secs(1));
    let sources = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    let crackers: Vec<Child> = sources.iter().map(|s| svcrack(&server, &words, s)).collect();
    let mut tried = Vec::new();
    for c in crackers {
        let text = output(&c.wait_with_output().expect("svcrack"));
        assert!(!text.contains("The password for"), "{text}");
        tried.push(text.lines().filter(|l| l.contains(":trying ")).count());
    }
    let bans = api(&server, "/api/bans");
    let list = bans["bans"].as_array().expect("a list");
    let mut banned: Vec<&str> = list.iter().filter_map(|b| b["ip"].as_str()).collect();
    banned.sort_unstable();
    assert_eq!(banned, sources, "{bans}");
    for b in list {
        assert_eq!(b["reason"], "user-failures", "{bans}");
        assert_eq!(b["user"], TARGET, "{bans}");
    }
    let failures = metric(&server, "switchboard_auth_failures_total");
    assert!(
        (30.0..=33.0).contains(&failures),
        "the 30th guess at {TARGET} and one more from each other address: {failures}"
    );
    let ok = phone_result(phone, phone_dir.path(), 40);
    eprintln!(
        "3 svcracks (guesses sent {tried:?}): {failures} refused in all, all 3 banned for guessing at \
         {TARGET}; the phone: {ok} of 40 registrations OK"
    );
}
