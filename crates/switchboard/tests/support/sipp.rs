//! A callee SIPp (server mode) in the background on a port of its own, for the tests that make
//! calls through switchboard.

use std::fs::File;
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// A callee SIPp running in the background on its own port; killed when dropped.
pub struct Uas {
    child: Option<Child>,
    pub work: TempDir,
    pub port: u16,
    pub scenario: String,
}

impl Uas {
    /// Starts `scenario` in server mode and waits until it holds its port. `timeout` is SIPp's
    /// global `-timeout`.
    pub fn start(scenario: &str, timeout: &str) -> Uas {
        let path = super::scenario_path(scenario);
        for _attempt in 0..3 {
            let port = super::free_port();
            let work = TempDir::new("sippcall-uas");
            let stderr = File::create(work.path().join("stderr.txt")).expect("stderr file");
            let child = Command::new("sipp")
                .current_dir(work.path())
                .args(["-sf", &path, "-t", "u1", "-i", "127.0.0.1"])
                .args(["-p", &port.to_string()])
                .args(["-m", "1", "-timeout", timeout, "-recv_timeout", "5000"])
                .args(["-trace_err", "-trace_msg", "-nostdin"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start sipp");
            let mut uas = Uas {
                child: Some(child),
                work,
                port,
                scenario: scenario.to_owned(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = uas.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
                    uas.child = None;
                    let errors = uas.errors();
                    if errors.contains("Address already in use") {
                        break;
                    }
                    panic!("{scenario} exited early ({status}):\n{errors}");
                }
                // Once SIPp holds the port our bind fails (std sets no SO_REUSEADDR/SO_REUSEPORT).
                if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                    return uas;
                }
                assert!(Instant::now() < deadline, "{scenario} did not bind 127.0.0.1:{port}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("{scenario}: no free port in 3 attempts");
    }

    pub fn errors(&self) -> String {
        let stderr = std::fs::read_to_string(self.work.path().join("stderr.txt")).unwrap_or_default();
        format!("{}\n{stderr}", super::sipp_log(self.work.path(), "errors"))
    }

    /// Waits (up to 15 s) for SIPp to end its call and exit; returns its status and message log.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} still running after 15 s:\n{}\n--- messages ---\n{}",
                    self.scenario,
                    self.errors(),
                    super::sipp_log(self.work.path(), "messages")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.child = None;
        (status, super::sipp_log(self.work.path(), "messages"))
    }

    /// Waits for SIPp to exit, asserts it succeeded, and returns its message log.
    pub fn finish(&mut self) -> String {
        let (status, messages) = self.wait();
        assert!(
            status.success(),
            "{} failed ({status}):\n{}\n--- messages ---\n{messages}",
            self.scenario,
            self.errors()
        );
        messages
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
