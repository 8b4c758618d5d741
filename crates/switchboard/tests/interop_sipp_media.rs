//! Interop with SIPp for the media relay: one call between two SIPps through switchboard over UDP
//! on loopback, with RTP both ways. The caller (`scenarios/media_uac.xml`) and the callee
//! (`scenarios/media_uas.xml`, registered for bob with `scenarios/call_register.xml`) each play
//! 50 PCMU packets with SIPp's `rtp_stream` (from a raw file the test writes) and each echoes
//! the other's packets in turn (`-rtp_echo`, switched on and off by the scenarios so that the
//! two echoes never run at once). The test checks that the SDP each side got names the relay
//! (the media address and a port of the configured range), that each SIPp's echo counter saw
//! every packet the other played, and that the call record counts the RTP each phone sent.
//! Without SIPp the test prints SKIP, except in CI (`CI=true`) where it fails. Relay ports:
//! 7400-7499, apart from the ephemeral ports, the server's default range (10000-20000) that
//! other tests use, the media crate's tests and benchmarks (20000-39999) and SIPp's media ports
//! (6000+).

mod support;

use std::fs::File;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");
/// The relay's port range in this test (inclusive).
const RTP_PORTS: (u16, u16) = (7400, 7499);
/// The file both sides play: raw PCMU, 160 bytes (20 ms) a packet.
const AUDIO_FILE: &str = "media_pcmu.raw";
/// Packets in [`AUDIO_FILE`], played once by each side.
const PACKETS: u64 = 50;
/// An RTP packet of it on the wire: 12 bytes of header and 160 of payload.
const PACKET_BYTES: u64 = 172;

/// A working directory for one SIPp, holding the audio file: 1 s of a 500 Hz square wave in
/// G.711 µ-law (two levels, 8 samples each), 8000 bytes.
fn sipp_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let audio: Vec<u8> = (0..PACKETS as usize * 160)
        .map(|i| if i % 16 < 8 { 0x9f } else { 0x1f })
        .collect();
    std::fs::write(dir.path().join(AUDIO_FILE), audio).expect("write the audio file");
    dir
}

/// Spawns SIPp in `dir` with `args`, on local port `port`, with its output in `dir`. Screens
/// are refreshed once a minute only, so that a dump on SIGUSR2 shows the counters of a period
/// that is not empty (SIPp prints the echo counter only then).
fn spawn_sipp(dir: &Path, port: u16, args: &[&str]) -> Child {
    let stderr = File::create(dir.join("stderr.txt")).expect("stderr file");
    Command::new("sipp")
        .current_dir(dir)
        .args(["-t", "u1", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .args(["-m", "1", "-timeout", "30s", "-recv_timeout", "8000", "-f", "60"])
        .args(["-trace_err", "-trace_msg", "-trace_screen", "-nostdin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start sipp")
}

/// A SIPp running in the background; killed when dropped.
struct Sipp {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    scenario: String,
}

impl Sipp {
    /// Starts `scenario` with `args` (a target for a client) and waits until it holds its SIP
    /// port. A SIPp that could not take its SIP or media port (someone took it between
    /// [`free_port`] and SIPp's bind) is started again, up to 3 times.
    fn start(scenario: &str, args: &[&str]) -> Sipp {
        let path = support::scenario_path(scenario);
        for _attempt in 0..3 {
            let port = support::free_port();
            let dir = sipp_dir("sippmedia");
            let mut all = vec!["-sf", path.as_str(), "-key", "domain", DOMAIN];
            all.extend_from_slice(args);
            let child = spawn_sipp(dir.path(), port, &all);
            let mut sipp = Sipp {
                child: Some(child),
                dir,
                port,
                scenario: scenario.to_owned(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = sipp.exited() {
                    let report = sipp.report();
                    if report.contains("Address already in use") {
                        break;
                    }
                    panic!("{scenario} exited early ({status}):\n{report}");
                }
                // Once SIPp holds the port our bind fails (std sets no SO_REUSEADDR/SO_REUSEPORT).
                if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                    return sipp;
                }
                assert!(Instant::now() < deadline, "{scenario} did not bind 127.0.0.1:{port}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("{scenario}: no free port in 3 attempts");
    }

    /// Its exit status, once it exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// What SIPp left for a failure message.
    fn report(&self) -> String {
        let stderr = std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default();
        format!(
            "--- errors ---\n{}\n--- stderr ---\n{stderr}\n--- messages ---\n{}",
            support::sipp_log(self.dir.path(), "errors"),
            self.messages()
        )
    }

    fn messages(&self) -> String {
        support::sipp_log(self.dir.path(), "messages")
    }

    /// Asks SIPp to dump its screens into its screen log (SIGUSR2).
    fn dump_screens(&self) {
        let child = self.child.as_ref().unwrap_or_else(|| {
            panic!(
                "{} exited before its screens were dumped:\n{}",
                self.scenario,
                self.report()
            )
        });
        let ok = Command::new("kill")
            .arg("-USR2")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits (up to 20 s) for SIPp to end its call and exit, and asserts it succeeded.
    fn finish(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.exited() {
                assert!(
                    status.success(),
                    "{} failed ({status}):\n{}",
                    self.scenario,
                    self.report()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after 20 s:\n{}",
                self.scenario,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message in a SIPp message log: whether SIPp sent it, and its lines (start line, headers,
/// a blank line, the body).
struct Logged {
    sent: bool,
    lines: Vec<String>,
}

impl Logged {
    fn start_line(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.lines.iter().skip(1).take_while(|l| !l.is_empty()).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    /// The body's lines.
    fn body(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .skip_while(|l| !l.is_empty())
            .skip(1)
            .map(String::as_str)
    }

    /// The session `c=` address and the first `m=audio` port of the SDP body.
    fn sdp(&self) -> (String, u16) {
        let c = self.body().find_map(|l| l.strip_prefix("c=IN IP4 "));
        let m = self
            .body()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok());
        match (c, m) {
            (Some(c), Some(m)) => (c.trim().to_owned(), m),
            _ => panic!("no c= and m=audio in the SDP of:\n{}", self.lines.join("\n")),
        }
    }
}

/// The messages of a SIPp message log (`-trace_msg`), in order. Each entry is a line of dashes,
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank line, the
/// message (whose own blank line separates headers and body).
fn logged(log: &str) -> Vec<Logged> {
    let mut out: Vec<Logged> = Vec::new();
    let mut in_msg = false;
    for line in log.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("-----") {
            in_msg = false;
        } else if line.contains(" message sent ") || line.contains(" message received ") {
            out.push(Logged {
                sent: line.contains(" message sent "),
                lines: Vec::new(),
            });
            in_msg = true;
        } else if in_msg && let Some(m) = out.last_mut() {
            // The blank line before the message is not part of it.
            if !(line.is_empty() && m.lines.is_empty()) {
                m.lines.push(line.to_owned());
            }
        }
    }
    for m in &mut out {
        while m.lines.last().is_some_and(String::is_empty) {
            m.lines.pop();
        }
    }
    out
}

/// The one message of the log that SIPp `sent` (or received) and whose start line begins with
/// `start` and whose CSeq is `cseq`.
fn find(log: &str, sent: bool, start: &str, cseq: &str) -> Logged {
    let mut found: Vec<Logged> = logged(log)
        .into_iter()
        .filter(|m| m.sent == sent && m.start_line().starts_with(start) && m.header("CSeq") == Some(cseq))
        .collect();
    assert!(
        !found.is_empty(),
        "no {start} ({cseq}) {} in:\n{log}",
        if sent { "sent" } else { "received" }
    );
    // Retransmissions are copies; the first will do.
    found.swap_remove(0)
}

/// `N` from the last SIPp screen line `N <what> ...` that ends with `tail` (the screen log holds
/// the dump asked for with SIGUSR2, then the one at exit, which leaves out the RTP lines).
fn screen_counter(screen: &str, what: &str, tail: &str) -> u64 {
    screen
        .lines()
        .filter(|l| l.contains(what) && l.trim_end().ends_with(tail))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no \"{what}\" in the screen log:\n{screen}"))
}

/// What one SIPp's screens say: RTP packets its rtp_stream sent, and packets its echo returned
/// (which are the packets that reached it).
fn rtp_counters(sipp: &Sipp) -> (u64, u64) {
    let screen = support::sipp_log(sipp.dir.path(), "screen");
    (
        screen_counter(&screen, " Total RTP pckts sent ", "RTP OUT"),
        screen_counter(
            &screen,
            " Total echo RTP pckts 1st stream ",
            "last period RTP rate (kB/s)",
        ),
    )
}

/// The call records the server wrote, once there are `n` (waiting up to 2 s for the writer).
fn records(server: &Server, n: usize) -> Vec<CallRecord> {
    let store = store::SqliteStore::open_in(server.dir.path()).expect("open the store");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let records = RecordStore::list_records(&store, 0, u64::MAX, 100).expect("list records");
        if records.len() >= n || Instant::now() > deadline {
            assert_eq!(records.len(), n, "{records:#?}");
            return records;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn in_range(port: u16) -> bool {
    (RTP_PORTS.0..=RTP_PORTS.1).contains(&port)
}

#[test]
fn rtp_flows_both_ways_through_the_relay() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let dir = TempDir::new("sippmedia");
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    support::add_user(dir.path(), BOB.0, BOB.1);
    let range = format!("{}-{}", RTP_PORTS.0, RTP_PORTS.1);
    let server = Server::start_in(dir, &["--rtp-ports", &range]);

    let started = Instant::now();
    let mut uas = Sipp::start("media_uas", &["-rtp_echo"]);
    let contact_port = uas.port.to_string();
    let target = server.udp.to_string();
    #[rustfmt::skip]
    let register = [
        target.as_str(), "-key", "aor", BOB.0, "-key", "contact_port", &contact_port,
        "-au", BOB.0, "-ap", BOB.1, "-auth_uri", DOMAIN,
    ];
    Sipp::start("call_register", &register).finish();
    // SIPp puts "sip:" + -auth_uri in the digest uri, which must be the Request-URI.
    let request_uri = format!("{}@{DOMAIN}", BOB.0);
    #[rustfmt::skip]
    let call = [
        target.as_str(), "-rtp_echo", "-key", "caller", ALICE.0, "-key", "callee", BOB.0,
        "-au", ALICE.0, "-ap", ALICE.1, "-auth_uri", &request_uri,
    ];
    let mut uac = Sipp::start("media_uac", &call);
    // Once the BYE reached the callee both sides are done with media and pause before exiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logged(&uas.messages())
        .iter()
        .any(|m| !m.sent && m.start_line().starts_with("BYE "))
    {
        for sipp in [&mut uac, &mut uas] {
            if let Some(status) = sipp.exited() {
                panic!("{} exited before the BYE ({status}):\n{}", sipp.scenario, sipp.report());
            }
        }
        assert!(Instant::now() < deadline, "no BYE after 20 s:\n{}", uas.report());
        std::thread::sleep(Duration::from_millis(20));
    }
    uac.dump_screens();
    uas.dump_screens();
    uac.finish();
    uas.finish();
    eprintln!("registration and the call with media took {:?}", started.elapsed());
    let uac_log = uac.messages();
    let uas_log = uas.messages();

    // The offer: the caller's own media socket in, the relay's leg B out to the callee.
    let (caller_ip, caller_port) = find(&uac_log, true, "INVITE ", "2 INVITE").sdp();
    assert_eq!(caller_ip, "127.0.0.1");
    let offer = find(&uas_log, false, "INVITE ", "2 INVITE");
    let (offer_ip, leg_b) = offer.sdp();
    assert_eq!(offer_ip, "127.0.0.1", "the media address:\n{}", offer.lines.join("\n"));
    assert!(in_range(leg_b), "leg B port {leg_b} out of {range}");
    assert_ne!(leg_b, caller_port, "the caller's own port went to the callee");
    // The answer: the callee's own media socket in, the relay's leg A out to the caller.
    let (_, callee_port) = find(&uas_log, true, "SIP/2.0 200", "2 INVITE").sdp();
    let answer = find(&uac_log, false, "SIP/2.0 200", "2 INVITE");
    let (answer_ip, leg_a) = answer.sdp();
    assert_eq!(
        answer_ip,
        "127.0.0.1",
        "the media address:\n{}",
        answer.lines.join("\n")
    );
    assert!(in_range(leg_a), "leg A port {leg_a} out of {range}");
    assert_ne!(leg_a, callee_port, "the callee's own port went to the caller");
    assert_ne!(leg_a, leg_b, "one relay port for both legs");
    assert!(leg_a % 2 == 0 && leg_b % 2 == 0, "RTP on odd ports: {leg_a}, {leg_b}");

    // Each side played the file once, and its echo saw every packet the other side played: RTP
    // went through the relay both ways.
    let (caller_sent, caller_got) = rtp_counters(&uac);
    let (callee_sent, callee_got) = rtp_counters(&uas);
    eprintln!(
        "caller: {caller_sent} RTP packets sent, {caller_got} received; callee: {callee_sent} sent, {callee_got} received"
    );
    assert_eq!((caller_sent, callee_sent), (PACKETS, PACKETS), "packets played");
    assert_eq!(callee_got, PACKETS, "caller -> callee");
    assert_eq!(caller_got, PACKETS, "callee -> caller");

    // The record counts what each phone sent the relay: its own 50 packets and its 50 echoes.
    let record = records(&server, 1).remove(0);
    let call_id = find(&uac_log, true, "INVITE ", "2 INVITE")
        .header("Call-ID")
        .map(str::to_owned);
    assert_eq!(Some(record.call_id.clone()), call_id, "{record:#?}");
    assert_eq!(record.disposition, Disposition::Answered, "{record:#?}");
    assert_eq!(record.hangup.as_deref(), Some("caller"), "{record:#?}");
    for (side, media) in [("caller", &record.caller_media), ("callee", &record.callee_media)] {
        assert_eq!(media.codec.as_deref(), Some("PCMU"), "{side}: {record:#?}");
        assert_eq!(media.packets, 2 * PACKETS, "{side}: {record:#?}");
        assert_eq!(media.bytes, 2 * PACKETS * PACKET_BYTES, "{side}: {record:#?}");
    }
}
