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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::baresip::{Phone, json_str};
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

/// A baresip phone (`support::baresip`) that also records what it decodes from the network
/// (the `sndfile` module) into a directory of its own.
struct Recording {
    phone: Phone,
    sound: TempDir,
}

impl std::ops::Deref for Recording {
    type Target = Phone;
    fn deref(&self) -> &Phone {
        &self.phone
    }
}

impl std::ops::DerefMut for Recording {
    fn deref_mut(&mut self) -> &mut Phone {
        &mut self.phone
    }
}

impl Recording {
    /// Starts baresip as `user`, playing `tone_hz` into calls and recording what it receives.
    fn start(user: &str, tone_hz: u32) -> Recording {
        let sound = TempDir::new(&format!("baresip-{user}-sound"));
        let extra = format!("module\t\t\tsndfile.so\nsnd_path\t\t{}\n", sound.path().display());
        Recording {
            phone: Phone::start(user, tone_hz, &extra),
            sound,
        }
    }

    /// Creates the account (via the outbound proxy `server`) and waits until it is registered.
    fn register(&mut self, password: &str, server: SocketAddr, extra: &str) {
        let account = format!(
            "<sip:{user}@{DOMAIN};transport=udp>;auth_pass={password};outbound=\"sip:{server};transport=udp\";regint=600{extra}",
            user = self.phone.name
        );
        if let Err(why) = self.phone.register(&account) {
            let hint = if why.contains("Function not implemented") {
                " (ENOSYS: libre before 3.12, which Debian 12's baresip uses, gives up on the whole \
                 401/407 when any of its digest challenges has an algorithm other than MD5)"
            } else {
                ""
            };
            self.phone
                .fail(&format!("{}'s REGISTER failed: {why}{hint}", self.phone.name), &[]);
        }
    }

    /// The file `sndfile` wrote of what this phone decoded from the network.
    fn received_audio(&self) -> PathBuf {
        std::fs::read_dir(self.sound.path())
            .expect("read the phone's sound directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
            })
            .unwrap_or_else(|| {
                self.phone.fail(
                    &format!("{} recorded nothing (no dump-*-dec.wav)", self.phone.name),
                    &[],
                )
            })
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

    let mut bob = Recording::start(BOB.0, CALLEE_TONE_HZ);
    bob.register(BOB.1, server.udp, ";answermode=auto");
    let mut alice = Recording::start(ALICE.0, CALLER_TONE_HZ);
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
