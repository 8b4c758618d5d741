//! The config file and `user import` as an operator meets them, against the built binary: bad
//! values stop start-up naming the key, flags win over the file, the example file starts the
//! server, a CSV import reports bad rows by line and adds the rest.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::TempDir;

/// The example file at the repository root.
fn example_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../switchboard.example.toml")
}

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `switchboard serve ARGS` expected to refuse to start.
fn refused(args: &[&str], config: Option<&Path>) -> Output {
    let dir = TempDir::new("refused");
    let mut cmd = Command::new(support::bin());
    cmd.arg("serve").args(args).arg("--data-dir").arg(dir.path());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchboard");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("switchboard started with {args:?} {config:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A server started with `args`; it is killed when dropped.
struct Running {
    child: Child,
    /// What it printed on stdout before its SIP listeners were all reported.
    lines: Vec<String>,
    _dir: TempDir,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let dir = TempDir::new("config");
        let mut child = Command::new(support::bin())
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchboard");
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
        let mut lines: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = |lines: &[String]| {
            ["sip udp ", "sip tcp "]
                .iter()
                .all(|p| lines.iter().any(|l| l.starts_with(p)))
        };
        while !listening(&lines) {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("switchboard {args:?} did not report its listeners: {lines:?}");
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("switchboard {args:?} exited: {status}; stdout: {lines:?}");
                    }
                }
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Running {
            child,
            lines,
            _dir: dir,
        }
    }

    /// The addresses printed as `sip udp ADDR`.
    fn udp(&self) -> Vec<std::net::SocketAddr> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("sip udp "))
            .map(|a| a.trim().parse().expect("an address"))
            .collect()
    }

    fn printed(&self, text: &str) -> bool {
        self.lines.iter().any(|l| l.contains(text))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_bad_value_stops_start_up_naming_the_key() {
    let dir = TempDir::new("bad-config");
    for (text, key, why) in [
        (
            "[sip]\nlisten = [\"127.0.0.1:0\"]\nlisen = 5\n",
            "sip.lisen",
            "unknown key",
        ),
        ("[telemetry]\nenabled = true\n", "telemetry", "unknown key"),
        ("[media]\ntimeout = \"sixty\"\n", "media.timeout", "invalid type"),
        ("[registrar]\nmin_expires = -1\n", "registrar.min_expires", "-1"),
        (
            "[media]\nrtp_ports = \"100-200\"\n",
            "media.rtp_ports",
            "\"100-200\": the range must start at 1024 or above",
        ),
        (
            "[media]\nrtp_ports = \"20000-10000\"\n",
            "media.rtp_ports",
            "LO must be below HI",
        ),
        (
            "[sip]\nlisten = [\"localhost:5060\"]\n",
            "sip.listen",
            "invalid socket address",
        ),
        ("[media]\naddress = \"10.1.2\"\n", "media.address", "invalid IP address"),
        ("[proxy]\ntimer_c = 0\n", "proxy.timer_c", "0 is not in 1..=3600"),
        (
            "[registrar]\ndigest_algorithms = [\"SHA1\"]\n",
            "registrar.digest_algorithms",
            "MD5 or SHA-256",
        ),
        ("[log]\nformat = \"yaml\"\n", "log.format", "text or json"),
    ] {
        let config = write_config(&dir, text);
        let out = refused(&[], Some(&config));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        let expected = format!("switchboard: config {}: {key}: ", config.display());
        assert!(stderr.contains(&expected), "{text:?}: {stderr}");
        assert!(stderr.contains(why), "{text:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "nothing started: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let missing = refused(&[], Some(&dir.path().join("absent.toml")));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.toml: cannot read it"));
}

#[test]
fn settings_that_disagree_stop_start_up() {
    let dir = TempDir::new("disagree");
    let open = write_config(&dir, "[http]\nlisten = \"0.0.0.0:0\"\n");
    let out = refused(&["--sip-listen", "127.0.0.1:0"], Some(&open));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("http.token") && stderr.contains("--http-token"),
        "{stderr}"
    );

    let out = refused(&["--min-expires", "600", "--max-expires", "300"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("registrar.max_expires"), "{stderr}");
}

#[test]
fn a_flag_wins_over_the_file_and_the_file_over_the_defaults() {
    let dir = TempDir::new("precedence");
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: binding it fails, so the server
    // can only start if the command line's --sip-listen replaced the file's.
    let config = write_config(
        &dir,
        "domain = \"file.invalid\"\n\
         [sip]\nlisten = [\"192.0.2.1:5060\"]\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [media]\nrtp_ports = \"41000-41099\"\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let server = Running::start(&["--config", config, "--sip-listen", "127.0.0.1:0"]);
    let udp = server.udp();
    assert_eq!(udp.len(), 1, "{:?}", server.lines);
    assert_eq!(udp[0].ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(udp[0].port(), 0);
    assert!(
        server.printed("serving domain file.invalid"),
        "file over default: {:?}",
        server.lines
    );
    drop(server);

    let config = write_config(
        &dir,
        "domain = \"file.invalid\"\n\
         [sip]\nlisten = [\"127.0.0.1:0\"]\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [media]\nrtp_ports = \"41100-41199\"\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let server = Running::start(&["--config", config, "--domain", "flag.invalid"]);
    let udp = server.udp();
    assert_eq!(udp.len(), 1, "{:?}", server.lines);
    assert_eq!(
        udp[0].ip(),
        std::net::Ipv4Addr::LOCALHOST,
        "file over the 0.0.0.0 default"
    );
    assert!(
        server.printed("serving domain flag.invalid"),
        "flag over file: {:?}",
        server.lines
    );
}

#[test]
fn the_example_file_starts_the_server() {
    let example = example_file();
    let example = example.to_str().expect("utf-8 path");
    let server = Running::start(&[
        "--config",
        example,
        "--sip-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--rtp-ports",
        "41200-41299",
    ]);
    assert_eq!(server.udp().len(), 1, "{:?}", server.lines);
    assert!(server.printed("serving domain"), "{:?}", server.lines);
}

fn user(dir: &Path, args: &[&str]) -> Output {
    Command::new(support::bin())
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--domain", "example.com"])
        .output()
        .expect("run")
}

#[test]
fn user_import_adds_users_and_reports_bad_rows_by_line() {
    let dir = TempDir::new("import");
    assert!(
        user(dir.path(), &["add", "1001", "--password", "old-pw"])
            .status
            .success()
    );
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "ext,password\n\
         # staff\n\
         1000,pw-1000-secret\n\
         1001,new-pw-1001\n\
         \n\
         not an ext,pw-bad-row\n\
         1002,pw-1002-secret,extra\n\
         1003,pw-1003-secret\n",
    )
    .expect("write csv");
    let out = user(dir.path(), &["import", csv.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a bad row fails the import: {stderr}");
    assert!(
        stderr.contains("line 6:") && stderr.contains("not a valid extension"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 7:") && stderr.contains("expected 2 fields"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("imported 3 users (2 added, 1 updated, 0 unchanged, 2 skipped) in "),
        "{stdout}"
    );
    for password in ["pw-1000-secret", "pw-bad-row", "pw-1002-secret", "new-pw-1001"] {
        assert!(
            !stderr.contains(password) && !stdout.contains(password),
            "{password} shown"
        );
    }
    let list = user(dir.path(), &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().collect::<Vec<_>>(),
        ["1000@example.com", "1001@example.com", "1003@example.com"]
    );

    // Again: nothing changes, nothing fails.
    std::fs::write(&csv, "1000,pw-1000-secret\n1003,pw-1003-secret\n").expect("write csv");
    let again = user(dir.path(), &["import", csv.to_str().expect("utf-8 path")]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 added, 0 updated, 2 unchanged, 0 skipped)"));
}
