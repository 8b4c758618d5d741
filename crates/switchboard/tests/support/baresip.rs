//! baresip phones for end-to-end tests (Debian package `baresip-core`): each runs from its own
//! config directory with no sound device, plays a generated tone as its microphone (`aufile`),
//! and is driven over its `ctrl_tcp` socket (JSON in netstrings). Accounts are created with
//! `uanew` after the test has connected, so the test sees the REGISTER_OK/REGISTER_FAIL and call
//! events itself. A phone's log (with `-s`, the SIP trace) is part of every failure message.
//!
//! The same way of driving baresip as `interop_baresip.rs`, with the transport and the extra
//! config lines (a CA file for TLS, ...) left to the test.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Where baresip's own modules live in Debian.
pub const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// The codec rate: the phones load only `g711`, and `aufile` wants its WAV at that rate.
pub const RATE: u32 = 8_000;

/// A mono 16-bit PCM WAV file of a sine at `hz`, `secs` long, at [`RATE`].
pub fn sine_wav(hz: u32, secs: u32) -> Vec<u8> {
    let samples = RATE * secs;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&RATE.to_le_bytes());
    w.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let phase = 2.0 * std::f64::consts::PI * f64::from(hz) * f64::from(n) / f64::from(RATE);
        let s = (12_000.0 * phase.sin()).round() as i16;
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// A loopback TCP port that was free a moment ago, for `ctrl_tcp_listen`.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The string value of `key` in a flat JSON object as `ctrl_tcp` writes it (no spaces).
pub fn json_str(msg: &str, key: &str) -> Option<String> {
    let start = msg.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = msg[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A connection to a phone's `ctrl_tcp` socket: commands out, responses and events in, each a
/// netstring (`LEN:JSON,`).
pub struct Ctrl {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events read while waiting for something else, oldest first.
    pending: VecDeque<String>,
    /// Every message received, for failure messages.
    pub seen: Vec<String>,
    token: u32,
}

impl Ctrl {
    fn new(stream: TcpStream) -> Ctrl {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Ctrl {
            stream,
            buf: Vec::new(),
            pending: VecDeque::new(),
            seen: Vec::new(),
            token: 0,
        }
    }

    /// The next message, or `None` when none arrives before `deadline` (or the phone is gone).
    fn next(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad netstring from ctrl_tcp: {:?}", String::from_utf8_lossy(&self.buf)));
                if self.buf.len() > colon + len + 1 {
                    let msg = String::from_utf8_lossy(&self.buf[colon + 1..colon + 1 + len]).into_owned();
                    self.buf.drain(..colon + len + 2);
                    self.seen.push(msg.clone());
                    return Some(msg);
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Runs a command (as the `menu` module knows it) and returns the response's `data`, or the
    /// response itself as the error when baresip says it failed.
    pub fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
        self.token += 1;
        let token = format!("t{}", self.token);
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"{token}\"}}",
            json_escape(command),
            json_escape(params)
        );
        self.stream
            .write_all(format!("{}:{json},", json.len()).as_bytes())
            .map_err(|e| format!("sending {command}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(msg) = self.next(deadline) {
            if msg.contains("\"response\":true") && json_str(&msg, "token").as_deref() == Some(&token) {
                return if msg.contains("\"ok\":true") {
                    Ok(json_str(&msg, "data").unwrap_or_default())
                } else {
                    Err(msg)
                };
            }
            if msg.contains("\"event\":true") {
                self.pending.push_back(msg);
            }
        }
        Err(format!("no response to {command}"))
    }

    /// The first event whose type is one of `types` (earlier events of other types are
    /// dropped), as (type, message); `None` after `limit`.
    pub fn event(&mut self, types: &[&str], limit: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + limit;
        loop {
            let msg = match self.pending.pop_front() {
                Some(m) => m,
                None => self.next(deadline)?,
            };
            if !msg.contains("\"event\":true") {
                continue;
            }
            if let Some(t) = json_str(&msg, "type").filter(|t| types.contains(&t.as_str())) {
                return Some((t, msg));
            }
        }
    }
}

/// One baresip process with its config directory; killed when dropped.
pub struct Phone {
    pub name: String,
    pub child: Child,
    pub dir: TempDir,
    pub ctrl: Ctrl,
}

impl Phone {
    /// Starts baresip as `name`, playing `tone_hz` into calls, with `extra_config` appended to
    /// its config file (lines such as `sip_cafile\t/path/cert.pem`), and connects to its control
    /// socket. No account yet (see [`Phone::register`]).
    pub fn start(name: &str, tone_hz: u32, extra_config: &str) -> Phone {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = TempDir::new(&format!("baresip-{name}"));
            let wav = dir.path().join(format!("tone-{tone_hz}.wav"));
            std::fs::write(&wav, sine_wav(tone_hz, 20)).expect("write the tone");
            let ctrl_port = free_tcp_port();
            let config = format!(
                "poll_method\t\tepoll\n\
                 sip_listen\t\t127.0.0.1:0\n\
                 net_interface\t\t127.0.0.1\n\
                 audio_source\t\taufile,{wav}\n\
                 rtp_ports\t\t40000-49999\n\
                 module_path\t\t{MODULE_PATH}\n\
                 module\t\t\tg711.so\n\
                 module\t\t\taufile.so\n\
                 module_app\t\tmenu.so\n\
                 module_app\t\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n\
                 {extra_config}",
                wav = wav.display(),
            );
            std::fs::write(dir.path().join("config"), config).expect("write config");
            let log = std::fs::File::create(dir.path().join("baresip.log")).expect("log file");
            // `-s`: SIP trace in the log; `-t`: a stray phone still quits on its own.
            let mut child = Command::new("baresip")
                .arg("-f")
                .arg(dir.path())
                .args(["-s", "-t", "60"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start baresip");
            let deadline = Instant::now() + Duration::from_secs(10);
            let stream = loop {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", ctrl_port)) {
                    break Some(s);
                }
                if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            match stream {
                Some(stream) => {
                    return Phone {
                        name: name.to_owned(),
                        child,
                        dir,
                        ctrl: Ctrl::new(stream),
                    };
                }
                None => {
                    // Most likely someone took the control port first; try another.
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
                }
            }
        }
        panic!("baresip ({name}) never opened its control socket; its log:\n{last_log}");
    }

    /// The baresip log so far (its last 12,000 characters), with the control messages.
    pub fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default();
        let tail = log
            .char_indices()
            .rev()
            .nth(12_000)
            .map_or(&log[..], |(i, _)| &log[i..]);
        format!(
            "--- {} ctrl_tcp messages ---\n{}\n--- {} baresip log (tail) ---\n{tail}",
            self.name,
            self.ctrl.seen.join("\n"),
            self.name
        )
    }

    pub fn fail(&self, what: &str, others: &[&Phone]) -> ! {
        let mut text = format!("{what}\n{}", self.diagnostics());
        for o in others {
            text.push('\n');
            text.push_str(&o.diagnostics());
        }
        panic!("{text}");
    }

    /// Creates the account `account` (baresip's account syntax, e.g.
    /// `<sip:alice@example.com;transport=tls>;auth_pass=...;outbound="sip:..."`) and waits up to
    /// 10 s for the outcome of its first REGISTER: `Ok(())` for REGISTER_OK, `Err(param)` for
    /// REGISTER_FAIL (the status line, e.g. `403 Forbidden`).
    pub fn register(&mut self, account: &str) -> Result<(), String> {
        if let Err(e) = self.ctrl.command("uanew", account) {
            self.fail(&format!("uanew for {} failed: {e}", self.name), &[]);
        }
        match self
            .ctrl
            .event(&["REGISTER_OK", "REGISTER_FAIL"], Duration::from_secs(10))
        {
            Some((t, _)) if t == "REGISTER_OK" => Ok(()),
            Some((_, msg)) => Err(json_str(&msg, "param").unwrap_or_default()),
            None => self.fail(&format!("{} did not register within 10 s", self.name), &[]),
        }
    }

    /// Waits for one of `types` (call events), failing with both phones' logs otherwise.
    pub fn call_event(&mut self, types: &[&str], limit: Duration, other: &Phone) -> (String, String) {
        match self.ctrl.event(types, limit) {
            Some(e) => e,
            None => self.fail(&format!("{}: none of {types:?} within {limit:?}", self.name), &[other]),
        }
    }

    /// Asks baresip to quit (SIGTERM: it unregisters) and waits up to 5 s before killing it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
