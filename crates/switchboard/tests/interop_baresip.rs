//! Interop with baresip (Debian package `baresip-core`): two baresip phones register with
//! switchboard over UDP on loopback, alice calls bob (who answers automatically), and each phone
//! plays a generated tone as its microphone (the `aufile` module): 1 kHz from alice, 440 Hz from
//! bob. The `sndfile` module records what each phone decoded; after alice hangs up the test finds
//! the 1 kHz tone in bob's recording and the 440 Hz tone in alice's, and reads the call record,
//! which must show RTP in both directions through the relay.
//!
//! Each phone runs from its own config directory with no sound device, and is driven over its
//! `ctrl_tcp` socket (JSON in netstrings): the account is created with `uanew` after the test has
//! connected, so the test sees the REGISTER_OK/REGISTER_FAIL and call events itself. Every
//! phone's log (with `-s`, the SIP trace) is part of any failure message. Without baresip the test
//! prints SKIP, except in CI (`CI=true`) where it fails.

mod support;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");
/// The codec rate: both phones load only `g711` (PCMU, PCMA), and `aufile` wants its WAV at the
/// codec's rate and channel count.
const RATE: u32 = 8_000;
/// What each phone plays.
const CALLER_TONE_HZ: u32 = 1_000;
const CALLEE_TONE_HZ: u32 = 440;
/// How long the call stays up before alice hangs up.
const TALK: Duration = Duration::from_secs(3);
/// Where baresip's own modules live in Debian.
const MODULE_PATH: &str = "/usr/lib/baresip/modules";

/// A mono 16-bit PCM WAV file of a sine at `hz`, `secs` long.
fn sine_wav(hz: u32, secs: u32) -> Vec<u8> {
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

/// The sample rate and samples of a mono 16-bit PCM WAV file. A file whose writer was stopped
/// before it finished the header (data length 0 or past the end) is read to its end.
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut rate = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let (id, len) = (&bytes[at..at + 4], u32_at(at + 4) as usize);
        let body = at + 8;
        if id == b"fmt " {
            assert!(body + 16 <= bytes.len(), "short fmt chunk in {}", path.display());
            let (format, channels, bits) = (u16_at(body), u16_at(body + 2), u16_at(body + 14));
            assert!(
                format == 1 && channels == 1 && bits == 16,
                "{}: format {format}, {channels} channels, {bits} bits; expected 16-bit mono PCM",
                path.display()
            );
            rate = Some(u32_at(body + 4));
        } else if id == b"data" {
            let end = if len == 0 || body + len > bytes.len() {
                bytes.len()
            } else {
                body + len
            };
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            let rate = rate.unwrap_or_else(|| panic!("no fmt chunk before data in {}", path.display()));
            return (rate, samples);
        }
        at = body + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// How much of the energy of `window` is a sine at `hz`: about 1 for a pure tone at `hz` (when
/// the window holds a whole number of its periods), about 0 for silence or another frequency.
/// Goertzel's algorithm for the one frequency, against the window's total energy.
fn tone_share(window: &[i16], rate: u32, hz: u32) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for &x in window {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if energy == 0.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (window.len() as f64 * energy)
}

/// The 100 ms windows of `samples` that are loud (RMS above ~-30 dBFS) and mostly a sine at `hz`,
/// and a per-window summary for failure messages.
fn tone_windows(samples: &[i16], rate: u32, hz: u32) -> (usize, String) {
    let len = (rate / 10) as usize;
    let mut found = 0;
    let mut summary = String::new();
    for (i, w) in samples.chunks_exact(len).enumerate() {
        let rms = (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / len as f64).sqrt();
        let share = tone_share(w, rate, hz);
        if rms > 1_000.0 && share > 0.8 {
            found += 1;
        }
        let _ = write!(summary, "[{i}: rms {rms:.0} share {share:.2}] ");
    }
    (found, summary)
}

/// A loopback TCP port that was free a moment ago, for `ctrl_tcp_listen`.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The string value of `key` in a flat JSON object as `ctrl_tcp` writes it (no spaces).
fn json_str(msg: &str, key: &str) -> Option<String> {
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
struct Ctrl {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events read while waiting for something else, oldest first.
    pending: VecDeque<String>,
    /// Every message received, for failure messages.
    seen: Vec<String>,
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

    /// The next message, or `None` when none arrives before `deadline` (or the phone is gone); what
    /// has already arrived is read even when `deadline` has passed.
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
    fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
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
    fn event(&mut self, types: &[&str], limit: Duration) -> Option<(String, String)> {
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
struct Phone {
    user: &'static str,
    child: Child,
    dir: TempDir,
    ctrl: Ctrl,
}

impl Phone {
    /// Starts baresip as `user`, playing `tone_hz` into calls and recording what it receives,
    /// and connects to its control socket. The account is not created yet (see
    /// [`Phone::register`]).
    fn start(user: &'static str, tone_hz: u32) -> Phone {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = TempDir::new(&format!("baresip-{user}"));
            let wav = dir.path().join(format!("tone-{tone_hz}.wav"));
            std::fs::write(&wav, sine_wav(tone_hz, 20)).expect("write the tone");
            let ctrl_port = free_tcp_port();
            // No audio player at all: baresip then decodes into the filters (sndfile) only.
            let config = format!(
                "poll_method\t\tepoll\n\
                 sip_listen\t\t127.0.0.1:0\n\
                 net_interface\t\t127.0.0.1\n\
                 audio_source\t\taufile,{wav}\n\
                 rtp_ports\t\t40000-49999\n\
                 module_path\t\t{MODULE_PATH}\n\
                 module\t\t\tg711.so\n\
                 module\t\t\taufile.so\n\
                 module\t\t\tsndfile.so\n\
                 snd_path\t\t{dir}\n\
                 module_app\t\tmenu.so\n\
                 module_app\t\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
                wav = wav.display(),
                dir = dir.path().display(),
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
                        user,
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
        panic!("baresip ({user}) never opened its control socket; its log:\n{last_log}");
    }

    /// The baresip log so far (its last 12,000 characters), with the control messages.
    fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default();
        let tail = log
            .char_indices()
            .rev()
            .nth(12_000)
            .map_or(&log[..], |(i, _)| &log[i..]);
        format!(
            "--- {} ctrl_tcp messages ---\n{}\n--- {} baresip log (tail) ---\n{tail}",
            self.user,
            self.ctrl.seen.join("\n"),
            self.user
        )
    }

    fn fail(&self, what: &str, others: &[&Phone]) -> ! {
        let mut text = format!("{what}\n{}", self.diagnostics());
        for o in others {
            text.push('\n');
            text.push_str(&o.diagnostics());
        }
        panic!("{text}");
    }

    /// Creates the account (via the outbound proxy `server`) and waits until it is registered.
    fn register(&mut self, password: &str, server: SocketAddr, extra: &str) {
        let account = format!(
            "<sip:{user}@{DOMAIN};transport=udp>;auth_pass={password};outbound=\"sip:{server};transport=udp\";regint=600{extra}",
            user = self.user
        );
        if let Err(e) = self.ctrl.command("uanew", &account) {
            self.fail(&format!("uanew for {} failed: {e}", self.user), &[]);
        }
        match self
            .ctrl
            .event(&["REGISTER_OK", "REGISTER_FAIL"], Duration::from_secs(10))
        {
            Some((t, _)) if t == "REGISTER_OK" => {}
            Some((_, msg)) => {
                let why = json_str(&msg, "param").unwrap_or_default();
                let hint = if why.contains("Function not implemented") {
                    " (ENOSYS: libre before 3.12, which Debian 12's baresip uses, gives up on the whole \
                     401/407 when any of its digest challenges has an algorithm other than MD5)"
                } else {
                    ""
                };
                self.fail(&format!("{}'s REGISTER failed: {why}{hint}", self.user), &[]);
            }
            None => self.fail(&format!("{} did not register within 10 s", self.user), &[]),
        }
    }

    /// Waits for one of `types` (call events), failing with both phones' logs otherwise.
    fn call_event(&mut self, types: &[&str], limit: Duration, other: &Phone) -> (String, String) {
        match self.ctrl.event(types, limit) {
            Some(e) => e,
            None => self.fail(&format!("{}: none of {types:?} within {limit:?}", self.user), &[other]),
        }
    }

    /// The file `sndfile` wrote of what this phone decoded from the network.
    fn received_audio(&self) -> PathBuf {
        std::fs::read_dir(self.dir.path())
            .expect("read the phone's directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
            })
            .unwrap_or_else(|| self.fail(&format!("{} recorded nothing (no dump-*-dec.wav)", self.user), &[]))
    }

    /// Asks baresip to quit (SIGTERM, as `-t` would: it closes its files and unregisters) and
    /// waits up to 5 s before killing it.
    fn stop(&mut self) {
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

/// The one call record the server wrote (waiting up to 3 s for the writer).
fn the_record(server: &Server) -> CallRecord {
    let store = store::SqliteStore::open_in(server.dir.path()).expect("open the store");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut records = RecordStore::list_records(&store, 0, u64::MAX, 100).expect("list records");
        if !records.is_empty() || Instant::now() > deadline {
            assert_eq!(records.len(), 1, "{records:#?}");
            return records.remove(0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn baresip_call_carries_a_tone_both_ways_through_the_relay() {
    if !require_tool("baresip", "-h") {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("baresip-srv");
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    support::add_user(dir.path(), BOB.0, BOB.1);
    // Debian 12's baresip (libre 1.1.0) abandons a 401 that also offers SHA-256.
    let server = Server::start_in(dir, &["--rtp-ports", "7600-7699", "--digest-algorithms", "MD5"]);

    let mut bob = Phone::start(BOB.0, CALLEE_TONE_HZ);
    bob.register(BOB.1, server.udp, ";answermode=auto");
    let mut alice = Phone::start(ALICE.0, CALLER_TONE_HZ);
    alice.register(ALICE.1, server.udp, "");

    if let Err(e) = alice.ctrl.command("dial", &format!("sip:{}@{DOMAIN}", BOB.0)) {
        alice.fail(&format!("dial failed: {e}"), &[&bob]);
    }
    let (event, msg) = alice.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(10), &bob);
    if event != "CALL_ESTABLISHED" {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the call was not answered: {why}"), &[&bob]);
    }
    let (event, _) = bob.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(5), &alice);
    assert_eq!(event, "CALL_ESTABLISHED", "{}", bob.diagnostics());

    std::thread::sleep(TALK);
    // Either side closing the call early (aufile at its end, an RTP timeout) shows up here.
    if let Some((_, msg)) = alice.ctrl.event(&["CALL_CLOSED"], Duration::ZERO) {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the call ended before alice hung up: {why}"), &[&bob]);
    }
    if let Err(e) = alice.ctrl.command("hangup", "") {
        alice.fail(&format!("hangup failed: {e}"), &[&bob]);
    }
    alice.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &bob);
    bob.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &alice);
    alice.stop();
    bob.stop();

    // What bob heard: alice's 1 kHz tone, for at least a second of the ~3 s call.
    let (rate, heard_by_bob) = read_wav(&bob.received_audio());
    assert_eq!(rate, RATE);
    let (windows, summary) = tone_windows(&heard_by_bob, rate, CALLER_TONE_HZ);
    assert!(
        windows >= 10,
        "bob's recording ({} samples) has {windows} windows of {CALLER_TONE_HZ} Hz: {summary}\n{}\n{}",
        heard_by_bob.len(),
        bob.diagnostics(),
        alice.diagnostics()
    );
    // And alice heard bob's 440 Hz.
    let (rate, heard_by_alice) = read_wav(&alice.received_audio());
    assert_eq!(rate, RATE);
    let (windows, summary) = tone_windows(&heard_by_alice, rate, CALLEE_TONE_HZ);
    assert!(
        windows >= 10,
        "alice's recording ({} samples) has {windows} windows of {CALLEE_TONE_HZ} Hz: {summary}\n{}",
        heard_by_alice.len(),
        alice.diagnostics()
    );

    let record = the_record(&server);
    eprintln!("{record:#?}");
    assert_eq!(record.caller, ALICE.0, "{record:#?}");
    assert_eq!(record.callee, BOB.0, "{record:#?}");
    assert_eq!(record.disposition, Disposition::Answered, "{record:#?}");
    assert_eq!(record.status, 200, "{record:#?}");
    assert_eq!(record.hangup.as_deref(), Some("caller"), "{record:#?}");
    for (leg, media) in [("caller", &record.caller_media), ("callee", &record.callee_media)] {
        assert_eq!(media.codec.as_deref(), Some("PCMU"), "{leg}: {record:#?}");
        // 50 packets a second (20 ms PCMU); at least a second's worth each way.
        assert!(media.packets >= 50, "{leg} sent {} packets: {record:#?}", media.packets);
        assert!(media.bytes >= media.packets * 160, "{leg}: {record:#?}");
    }
    eprintln!("baresip interop call took {:?}", started.elapsed());
}
