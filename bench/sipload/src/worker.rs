//! One load thread: owns some UDP sockets, starts its share of the flows on schedule, answers the
//! challenges, retransmits, times flows out, and counts.
//!
//! Flow `n` (0-based, over the whole run) is due at `t0 + n / rate` and belongs to thread
//! `n % threads`, so the threads interleave on one schedule.
//!
//! The loop wakes on a fixed grid (`--tick-us`, 1 ms): it reads everything that arrived with
//! `recvmmsg` (answering challenges as it goes), starts every flow that is due, fires due
//! timers, sends all the queued requests with one `sendmmsg` per socket, and sleeps until the
//! next tick. Waking per tick instead of per datagram is what makes it cheap: the wakeups, not
//! the parsing, dominate a UDP generator's CPU. The kernel stamps each datagram on arrival
//! (`SO_TIMESTAMPNS`), so latencies are still measured to the microsecond, not to the tick.
//! With `--tick-us 0` the thread instead waits in `poll` and reacts to each datagram at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::proto::{self, Authenticator, Texts};
use crate::sys::{self, PollFd, RecvBatch, SendBatch};

/// RFC 3261 Timer E: T1 doubling up to T2.
const T1: Duration = Duration::from_millis(500);
const LEVELS: usize = 4; // 500 ms, 1 s, 2 s, 4 s (= T2)

fn interval(level: usize) -> Duration {
    T1 * (1 << level)
}

/// Flows started late by more than this are counted as late.
pub const LATE: Duration = Duration::from_millis(100);

/// Starting at most this many flows before looking at the sockets again.
const START_BATCH: usize = 2048;
/// Datagrams per recvmmsg call, and the most read from one socket per loop.
const RECV_SLOTS: usize = 64;
const RECV_ROUNDS: usize = 16;
/// Longer responses are truncated (and not understood).
const RECV_SLOT_BYTES: usize = 4096;

/// What every thread needs to know about the run.
#[derive(Debug)]
pub struct Plan {
    pub texts: Texts,
    pub call_id_prefix: String,
    pub users_first: u64,
    pub users_count: u64,
    /// (username, password) of each user, by index in the range.
    pub credentials: Vec<(String, String)>,
    pub rate: f64,
    pub count: u64,
    pub threads: u64,
    pub timeout: Duration,
    /// 0: wake on every datagram (poll); else wake on this grid and read in batches.
    pub tick: Duration,
    pub t0: Instant,
}

impl Plan {
    /// When flow `n` is due.
    pub fn due(&self, n: u64) -> Instant {
        self.t0 + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How many flows thread `k` runs.
    pub fn share(&self, k: u64) -> u64 {
        self.count / self.threads + u64::from(k < self.count % self.threads)
    }
}

/// A bound and connected UDP socket and its `IP:PORT` as written in Via and Contact.
#[derive(Debug)]
pub struct Endpoint {
    pub udp: UdpSocket,
    pub local: String,
}

/// Why a flow failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// No final response to request `step` (1 or 2) within the flow timeout.
    Timeout { step: u8 },
    /// A final response other than the expected one to request `step`.
    Status { step: u8, code: u16 },
    /// A 401/407 without a Digest challenge this generator can answer.
    BadChallenge,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout { step } => write!(f, "timeout@req{step}"),
            Failure::Status { step, code } => write!(f, "{code}@req{step}"),
            Failure::BadChallenge => write!(f, "bad-challenge"),
        }
    }
}

/// What one thread counted.
#[derive(Debug, Default)]
pub struct Stats {
    pub started: u64,
    pub succeeded: u64,
    pub failures: BTreeMap<Failure, u64>,
    pub retransmissions: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Responses for flows that are already finished (e.g. to a retransmission) or unknown.
    pub stray: u64,
    /// Responses to the other transaction of a live flow (e.g. a late 401 after the auth REGISTER).
    pub stale: u64,
    /// Datagrams that are not a response with Call-ID and CSeq.
    pub unparsable: u64,
    /// Whole-flow latency of each successful flow (first REGISTER sent to 200 received),
    /// microseconds.
    pub latencies_us: Vec<u32>,
    /// The server's part of it: the two request-to-response times added, microseconds.
    pub server_us: Vec<u32>,
    pub first_send: Option<Instant>,
    pub last_start: Option<Instant>,
    pub last_done: Option<Instant>,
    /// How late flows started compared to the schedule.
    pub max_lag: Duration,
    pub total_lag: Duration,
    pub late_flows: u64,
}

impl Stats {
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn merge(&mut self, o: Stats) {
        self.started += o.started;
        self.succeeded += o.succeeded;
        for (k, v) in o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.retransmissions += o.retransmissions;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.stray += o.stray;
        self.stale += o.stale;
        self.unparsable += o.unparsable;
        self.latencies_us.extend(o.latencies_us);
        self.server_us.extend(o.server_us);
        let min = |a: Option<Instant>, b: Option<Instant>| a.into_iter().chain(b).min();
        let max = |a: Option<Instant>, b: Option<Instant>| a.into_iter().chain(b).max();
        self.first_send = min(self.first_send, o.first_send);
        self.last_start = max(self.last_start, o.last_start);
        self.last_done = max(self.last_done, o.last_done);
        self.max_lag = self.max_lag.max(o.max_lag);
        self.total_lag += o.total_lag;
        self.late_flows += o.late_flows;
    }
}

/// A flow in progress.
#[derive(Debug)]
struct Flow {
    /// Index of the user in the run's range.
    user: u32,
    /// Index of the socket in the thread's list.
    sock: u32,
    /// 1 until the challenge is answered, then 2; also the CSeq of the current request.
    step: u8,
    /// A provisional response arrived: retransmit at T2 from now on (RFC 3261 §17.1.2.2).
    provisional: bool,
    started: Instant,
    /// When the current request was first sent.
    sent: Instant,
    /// How long the server took to answer request 1.
    first_answer: Duration,
    /// The whole Authorization (or Proxy-Authorization) header line of request 2, no CRLF.
    authorization: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    at: Instant,
    n: u64,
    step: u8,
}

/// Flow numbers are unique and already well spread: a multiplicative hash is enough.
#[derive(Debug, Default)]
struct FlowHasher(u64);

impl Hasher for FlowHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Set once the first failed flow's response has been shown on stderr.
static SHOWN_FAILURE: AtomicBool = AtomicBool::new(false);

fn show_failure(what: &Failure, datagram: &[u8]) {
    if !SHOWN_FAILURE.swap(true, Ordering::Relaxed) {
        eprintln!(
            "# first failed flow ({what}), response:\n{}",
            String::from_utf8_lossy(datagram).trim_end()
        );
    }
}

pub struct Worker<'a> {
    plan: &'a Plan,
    k: u64,
    my_count: u64,
    /// Thread-local index of the next flow to start.
    next: u64,
    socks: Vec<Endpoint>,
    pollfds: Vec<PollFd>,
    /// Flows in progress, keyed by the flow number their Call-ID carries.
    flows: HashMap<u64, Flow, BuildHasherDefault<FlowHasher>>,
    /// One FIFO per retransmission interval: each is ordered by deadline.
    retrans: [VecDeque<Timer>; LEVELS],
    timeouts: VecDeque<Timer>,
    auth: Authenticator,
    /// Requests built since the last flush, back to back, and each one's (start, len) by socket.
    out: Vec<u8>,
    pending: Vec<Vec<(u32, u32)>>,
    sender: SendBatch,
    receiver: RecvBatch,
    /// The same moment on both clocks, to turn kernel timestamps (CLOCK_REALTIME) into Instants.
    clock_base: (Instant, Duration),
    cnonce: String,
    stats: Stats,
}

impl<'a> Worker<'a> {
    pub fn new(plan: &'a Plan, k: u64, socks: Vec<Endpoint>) -> Worker<'a> {
        let my_count = plan.share(k);
        let pollfds = socks.iter().map(|s| PollFd::readable(s.udp.as_raw_fd())).collect();
        let users = usize::try_from(plan.users_count).expect("user range fits in memory");
        let expected = usize::try_from(my_count).unwrap_or(0).min(1 << 24);
        Worker {
            plan,
            k,
            my_count,
            next: 0,
            pending: socks.iter().map(|_| Vec::with_capacity(256)).collect(),
            socks,
            pollfds,
            flows: HashMap::default(),
            retrans: Default::default(),
            timeouts: VecDeque::new(),
            auth: Authenticator::new(users),
            out: Vec::with_capacity(256 * 1024),
            sender: SendBatch::default(),
            receiver: RecvBatch::new(RECV_SLOTS, RECV_SLOT_BYTES),
            clock_base: (
                Instant::now(),
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
            ),
            cnonce: String::with_capacity(32),
            stats: Stats {
                latencies_us: Vec::with_capacity(expected),
                server_us: Vec::with_capacity(expected),
                ..Stats::default()
            },
        }
    }

    /// Runs this thread's flows to completion.
    pub fn run(mut self) -> std::io::Result<Stats> {
        if let Some(wait) = self.plan.t0.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let tick = self.plan.tick;
        loop {
            let mut more = false;
            for i in 0..self.socks.len() {
                more |= self.drain(i);
            }
            let now = Instant::now();
            more |= self.start_due(now);
            self.fire_timers(now);
            self.flush();
            if self.next >= self.my_count && self.flows.is_empty() {
                return Ok(self.stats);
            }
            if more {
                continue; // behind: no sleeping
            }
            let next_event = self.next_event();
            if tick.is_zero() {
                let timeout_ms = match next_event {
                    Some(at) => {
                        let us = at.saturating_duration_since(now).as_micros();
                        i32::try_from(us.div_ceil(1000)).unwrap_or(i32::MAX).min(1000)
                    }
                    None => 1000,
                };
                sys::poll(&mut self.pollfds, timeout_ms)?;
            } else {
                // The next tick on the grid; with nothing in flight, the next event's tick.
                let from = match next_event {
                    Some(at) if self.flows.is_empty() => at.max(now),
                    _ => now,
                };
                let ticks = from.saturating_duration_since(self.plan.t0).as_nanos() / tick.as_nanos() + 1;
                let wake = self.plan.t0 + tick * u32::try_from(ticks).unwrap_or(u32::MAX);
                if let Some(d) = wake.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let due = (self.next < self.my_count).then(|| self.plan.due(self.global(self.next)));
        self.retrans
            .iter()
            .chain(std::iter::once(&self.timeouts))
            .filter_map(|q| q.front().map(|t| t.at))
            .chain(due)
            .min()
    }

    fn global(&self, local: u64) -> u64 {
        local * self.plan.threads + self.k
    }

    /// Queues the current request of flow `n` for the next flush.
    fn transmit(&mut self, n: u64) {
        let Some(f) = self.flows.get(&n) else { return };
        let sock = f.sock as usize;
        let user = self.plan.users_first + u64::from(f.user);
        let start = self.out.len();
        proto::build_register(
            &mut self.out,
            &self.plan.texts,
            &self.socks[sock].local,
            user,
            n,
            f.step,
            f.authorization.as_deref(),
        );
        let len = self.out.len() - start;
        self.pending[sock].push((start as u32, len as u32));
    }

    /// Sends everything queued.
    fn flush(&mut self) {
        for (i, spans) in self.pending.iter_mut().enumerate() {
            if !spans.is_empty() {
                self.stats.send_errors += self.sender.send(self.socks[i].udp.as_raw_fd(), &self.out, spans, None);
                spans.clear();
            }
        }
        self.out.clear();
    }

    /// Starts the flows that are due; true when it stopped early with more due.
    fn start_due(&mut self, now: Instant) -> bool {
        for _ in 0..START_BATCH {
            if self.next >= self.my_count {
                return false;
            }
            let n = self.global(self.next);
            let due = self.plan.due(n);
            if due > now {
                return false;
            }
            let lag = now - due;
            self.stats.max_lag = self.stats.max_lag.max(lag);
            self.stats.total_lag += lag;
            self.stats.late_flows += u64::from(lag > LATE);
            let flow = Flow {
                user: u32::try_from(n % self.plan.users_count).expect("user index fits u32"),
                sock: u32::try_from(self.next % self.socks.len() as u64).expect("few sockets"),
                step: 1,
                provisional: false,
                started: now,
                sent: now,
                first_answer: Duration::ZERO,
                authorization: None,
            };
            self.flows.insert(n, flow);
            self.transmit(n);
            self.retrans[0].push_back(Timer {
                at: now + interval(0),
                n,
                step: 1,
            });
            self.timeouts.push_back(Timer {
                at: now + self.plan.timeout,
                n,
                step: 0,
            });
            self.stats.started += 1;
            self.stats.first_send.get_or_insert(now);
            self.stats.last_start = Some(now);
            self.next += 1;
        }
        self.next < self.my_count
    }

    fn fire_timers(&mut self, now: Instant) {
        for level in 0..LEVELS {
            while let Some(t) = self.retrans[level].front().copied() {
                if t.at > now {
                    break;
                }
                self.retrans[level].pop_front();
                let Some(f) = self.flows.get(&t.n) else { continue };
                if f.step != t.step {
                    continue; // that transaction is over
                }
                let next = if f.provisional {
                    LEVELS - 1
                } else {
                    (level + 1).min(LEVELS - 1)
                };
                self.transmit(t.n);
                self.stats.retransmissions += 1;
                self.retrans[next].push_back(Timer {
                    at: now + interval(next),
                    ..t
                });
            }
        }
        while let Some(t) = self.timeouts.front().copied() {
            if t.at > now {
                break;
            }
            self.timeouts.pop_front();
            if let Some(f) = self.flows.remove(&t.n) {
                self.fail(Failure::Timeout { step: f.step }, now);
            }
        }
    }

    fn fail(&mut self, why: Failure, now: Instant) {
        *self.stats.failures.entry(why).or_default() += 1;
        self.stats.last_done = Some(now);
    }

    /// The arrival time of a datagram as an Instant.
    fn arrival(&self, stamp: Option<Duration>, now: Instant) -> Instant {
        match stamp {
            Some(ts) => match ts.checked_sub(self.clock_base.1) {
                Some(d) => (self.clock_base.0 + d).min(now),
                None => self.clock_base.0,
            },
            None => now,
        }
    }

    /// Reads what socket `i` has queued; true when it stopped with more maybe waiting.
    fn drain(&mut self, i: usize) -> bool {
        let fd = self.socks[i].udp.as_raw_fd();
        let mut rx = std::mem::take(&mut self.receiver);
        let mut more = false;
        for round in 0..RECV_ROUNDS {
            let got = match rx.recv(fd) {
                Ok(got) => got,
                // ICMP errors (e.g. port unreachable while the server is down) land here.
                Err(_) => {
                    self.stats.recv_errors += 1;
                    continue;
                }
            };
            let now = Instant::now();
            for j in 0..got {
                let d = rx.get(j);
                if d.truncated {
                    self.stats.unparsable += 1;
                    continue;
                }
                let at = self.arrival(d.stamp, now);
                self.handle_datagram(d.data, at, now);
            }
            if got < rx.capacity() {
                break;
            }
            more = round + 1 == RECV_ROUNDS;
        }
        self.receiver = rx;
        more
    }

    /// Acts on one datagram that arrived at `at`; `now` is when it is handled.
    fn handle_datagram(&mut self, datagram: &[u8], at: Instant, now: Instant) {
        let Some(resp) = proto::parse_response(datagram) else {
            self.stats.unparsable += 1;
            return;
        };
        let Some(n) = proto::flow_number(resp.call_id, self.plan.call_id_prefix.as_bytes()) else {
            self.stats.stray += 1;
            return;
        };
        let Some(f) = self.flows.get_mut(&n) else {
            self.stats.stray += 1;
            return;
        };
        if resp.cseq != u32::from(f.step) {
            self.stats.stale += 1;
            return;
        }
        match (f.step, resp.code) {
            (_, 100..=199) => f.provisional = true,
            (1, 401 | 407) => {
                let Some(offer) = proto::choose(resp.challenges()) else {
                    self.flows.remove(&n);
                    show_failure(&Failure::BadChallenge, datagram);
                    return self.fail(Failure::BadChallenge, now);
                };
                f.first_answer = at.saturating_duration_since(f.sent);
                let slot = f.user as usize;
                let (username, password) = &self.plan.credentials[slot];
                self.cnonce.clear();
                // Unique per flow and run; hex like most UAs use.
                let _ = write!(self.cnonce, "{}{:x}", self.plan.texts.run_id, n);
                let value = self.auth.authorization(
                    &offer,
                    slot,
                    username,
                    password,
                    "REGISTER",
                    &self.plan.texts.ruri,
                    &self.cnonce,
                );
                // A 407 (not what a registrar sends, but possible in front of one) wants Proxy-Authorization.
                let name = if resp.code == 407 {
                    "Proxy-Authorization: "
                } else {
                    "Authorization: "
                };
                let mut line = String::with_capacity(name.len() + value.len());
                line.push_str(name);
                line.push_str(&value);
                let f = self.flows.get_mut(&n).expect("flow looked up above");
                f.authorization = Some(line.into_boxed_str());
                f.step = 2;
                f.provisional = false;
                f.sent = now;
                self.transmit(n);
                self.retrans[0].push_back(Timer {
                    at: now + interval(0),
                    n,
                    step: 2,
                });
            }
            (2, 200) => {
                let f = self.flows.remove(&n).expect("flow looked up above");
                let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                self.stats
                    .latencies_us
                    .push(us(at.saturating_duration_since(f.started)));
                self.stats
                    .server_us
                    .push(us(f.first_answer + at.saturating_duration_since(f.sent)));
                self.stats.succeeded += 1;
                self.stats.last_done = Some(self.stats.last_done.map_or(at, |l| l.max(at)));
            }
            (step, code) => {
                self.flows.remove(&n);
                let why = Failure::Status { step, code };
                show_failure(&why, datagram);
                self.fail(why, now);
            }
        }
    }
}
