//! The running server as the admin API sees it: registrations, calls in progress, hang-up,
//! binding removal, metrics and the SIP trace. A [`Control`] is a cheap handle that reads and
//! changes the engine under its lock, briefly: it copies what it needs and lets go.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Listening;
use crate::metrics::{Gauges, RelayGauges};
use crate::transport::Shared;

/// One contact binding of a registered user.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationView {
    /// Stable while the binding lives: a hash of the AOR and the contact.
    pub id: String,
    pub user: String,
    pub aor: String,
    pub contact: String,
    /// Where the REGISTER came from (`203.0.113.7:5060`) and over what.
    pub source: String,
    pub transport: String,
    /// Unix seconds at which the binding expires, and seconds left.
    pub expires_at: u64,
    pub expires_in: u64,
    pub q: f32,
    pub user_agent: Option<String>,
    pub behind_nat: bool,
    pub call_id: String,
    pub cseq: u32,
}

/// A call ringing or answered.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// The Call-ID, which also names the call in the API.
    pub id: String,
    pub caller: String,
    pub callee: String,
    /// `ringing` or `answered`.
    pub state: &'static str,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    /// The contact that answered.
    pub answered_by: Option<String>,
    /// Every contact the call was forked to, with its final status once it has one.
    pub branches: Vec<BranchView>,
    /// Relay ports of each stream: (caller side, callee side).
    pub relay_ports: Vec<(u16, u16)>,
    /// Codec each side chose (caller, callee).
    pub codecs: [Option<String>; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct BranchView {
    pub target: String,
    pub status: Option<u16>,
}

/// A source banned by the brute-force defence (`GET /api/bans`).
#[derive(Debug, Clone, Serialize)]
pub struct BanView {
    /// The banned address: an IPv4 address, or the first address of an IPv6 /64.
    pub ip: String,
    /// 32 (IPv4) or 64 (an IPv6 /64).
    pub prefix_len: u8,
    /// `source-failures` (too many password guesses from this address) or `user-failures` (it
    /// kept guessing at a user under attack from many addresses).
    pub reason: &'static str,
    /// The user a `user-failures` ban protects.
    pub user: Option<String>,
    /// Unix seconds: banned at, and banned until.
    pub since: u64,
    pub until: u64,
    /// Password guesses from this address within the window when it was banned.
    pub failures: u32,
}

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub domain: String,
    pub uptime_seconds: u64,
    pub registrations: usize,
    pub active_calls: usize,
    pub transactions: usize,
    pub sip_udp: Vec<SocketAddr>,
    pub sip_tcp: Vec<SocketAddr>,
    pub sip_tls: Vec<SocketAddr>,
}

/// A handle on the running server for the admin API.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    listening: Listening,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The registration id of a binding.
pub fn registration_id(aor: &str, contact: &str) -> String {
    let digest = Sha256::new()
        .chain_update(aor.as_bytes())
        .chain_update(b"\n")
        .chain_update(contact.as_bytes())
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn view(b: &store::Binding, now: u64) -> RegistrationView {
    let (transport, source) = b.source.split_once(':').unwrap_or(("udp", &b.source));
    RegistrationView {
        id: registration_id(&b.aor, &b.contact),
        user: b.aor.split('@').next().unwrap_or_default().to_owned(),
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        source: source.to_owned(),
        transport: transport.to_ascii_uppercase(),
        expires_at: b.expires_at,
        expires_in: b.expires_at.saturating_sub(now),
        q: f32::from(b.q) / 1000.0,
        user_agent: b.user_agent.clone(),
        behind_nat: b.behind_nat,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
    }
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>, listening: Listening) -> Self {
        Control { shared, listening }
    }

    pub fn domain(&self) -> &str {
        &self.shared.config.domain
    }

    /// The embedded store's directory, when the server has one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.shared.config.data_dir.as_deref()
    }

    /// The stores the server opened (`None` without a data directory).
    pub fn stores(&self) -> Option<store::Stores> {
        self.shared.stores.clone()
    }

    pub fn listening(&self) -> &Listening {
        &self.listening
    }

    /// Unexpired bindings, of one user (the user part of the AOR) or of everyone, sorted by
    /// user then contact.
    pub fn registrations(&self, user: Option<&str>) -> Vec<RegistrationView> {
        let now = unix_now();
        let mut out: Vec<RegistrationView> = {
            let engine = self.shared.engine.lock();
            let Some(location) = engine.location() else {
                return Vec::new();
            };
            match user {
                Some(u) => {
                    let aor = format!("{u}@{}", self.shared.config.domain.to_ascii_lowercase());
                    location
                        .of(&aor)
                        .iter()
                        .filter(|b| b.expires_at > now)
                        .map(|b| view(b, now))
                        .collect()
                }
                None => location
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .map(|b| view(b, now))
                    .collect(),
            }
        };
        out.sort_by(|a, b| (&a.user, &a.contact).cmp(&(&b.user, &b.contact)));
        out
    }

    /// Removes the binding with this id, durably (the phone's next REGISTER brings it back).
    /// `Ok(false)`: no such binding.
    pub async fn remove_registration(&self, id: &str) -> Result<bool, String> {
        let removed = {
            let mut engine = self.shared.engine.lock();
            let Some(location) = engine.location_mut() else {
                return Ok(false);
            };
            let found = location
                .iter()
                .find(|b| registration_id(&b.aor, &b.contact) == id)
                .map(|b| (b.aor.clone(), b.contact.clone()));
            found.map(|(aor, contact)| {
                let rest: Vec<store::Binding> = location
                    .of(&aor)
                    .iter()
                    .filter(|b| b.contact != contact)
                    .cloned()
                    .collect();
                location.set(&aor, rest.clone());
                (aor, rest)
            })
        };
        let Some((aor, rest)) = removed else {
            return Ok(false);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.write_bindings(aor, rest, move |r| {
            let _ = tx.send(r);
        });
        match rx.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the store stopped".into()),
        }
    }

    /// Calls ringing or answered, oldest first.
    pub fn calls(&self) -> Vec<CallView> {
        let engine = self.shared.engine.lock();
        let Some(proxy) = engine.proxy() else {
            return Vec::new();
        };
        let mut out: Vec<CallView> = proxy
            .calls()
            .map(|c| CallView {
                id: c.call_id.clone(),
                caller: c.caller.clone(),
                callee: c.callee.clone(),
                state: match c.phase {
                    crate::proxy::call::Phase::Routing => "ringing",
                    crate::proxy::call::Phase::Answered => "answered",
                },
                started_ms: proxy.wall_ms(c.started),
                answered_ms: c.answered.map(|a| proxy.wall_ms(a)),
                answered_by: c.answered_by.clone(),
                branches: c
                    .branches
                    .iter()
                    .map(|b| BranchView {
                        target: b.target.clone(),
                        status: b.final_status,
                    })
                    .collect(),
                relay_ports: c.media.streams.iter().flatten().map(|(_, p)| *p).collect(),
                codecs: c.media.codecs.clone(),
            })
            .collect();
        drop(engine);
        out.sort_by_key(|c| c.started_ms);
        out
    }

    /// Ends a call from the server: BYE both ways when answered, CANCEL/480 while ringing.
    pub fn hang_up(&self, call_id: &str) -> bool {
        let mut found = false;
        self.shared.with_engine(|e, now, out| {
            found = e.hang_up(now, call_id, "hung up by the operator", out);
        });
        found
    }

    /// The sources banned now for failed authentications, by address.
    pub fn bans(&self) -> Vec<BanView> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let unix = |t: Instant| {
            let at = if t >= now { wall + (t - now) } else { wall - (now - t) };
            at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        };
        self.shared
            .guard
            .bans
            .list(now)
            .into_iter()
            .map(|b| BanView {
                ip: b.ip.to_string(),
                prefix_len: b.prefix_len,
                reason: b.reason.as_str(),
                user: match b.reason {
                    crate::guard::bans::BanReason::UserFailures { user } => Some(user),
                    crate::guard::bans::BanReason::SourceFailures => None,
                },
                since: unix(b.since),
                until: unix(b.until),
                failures: b.failures,
            })
            .collect()
    }

    /// Lifts the ban on `ip` (any address of a banned IPv6 /64); false when it was not banned.
    pub fn unban(&self, ip: std::net::IpAddr) -> bool {
        self.shared.guard.bans.unban(ip, Instant::now())
    }

    /// Counters and gauges in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let sh = &self.shared;
        let mut g = {
            let engine = sh.engine.lock();
            let (bindings, registered_users, auth_failures) = engine.location().map_or((0, 0, 0), |l| {
                let now = unix_now();
                (
                    l.iter().filter(|b| b.expires_at > now).count(),
                    l.aors(),
                    engine.auth_failures(),
                )
            });
            Gauges {
                bindings,
                registered_users,
                auth_failures,
                active_calls: engine.active_calls(),
                transactions: engine.transactions(),
                ..Gauges::default()
            }
        };
        use std::sync::atomic::Ordering::Relaxed;
        g.connections = sh.conns.len();
        g.parse_errors = sh.stats.parse_errors.load(Relaxed);
        g.send_errors = sh.stats.send_errors.load(Relaxed);
        g.engine_locks = sh.stats.engine_locks.load(Relaxed);
        g.engine_wait_ns = sh.stats.engine_wait_ns.load(Relaxed);
        g.engine_hold_ns = sh.stats.engine_hold_ns.load(Relaxed);
        g.uptime = sh.started.elapsed();
        g.bans = sh.guard.bans.len(Instant::now());
        g.bans_made = sh.guard.bans.made();
        g.banned_packets = sh.guard.bans.dropped();
        g.scanner_drops = sh.guard.agents.dropped();
        g.relay = sh.relay.as_ref().map(|r| {
            let (packets, bytes) = r.forwarded_totals();
            RelayGauges {
                streams_total: r.pool_size(),
                streams_in_use: r.active_streams(),
                packets,
                bytes,
            }
        });
        if let Some(t) = &sh.trace {
            g.trace_messages = t.len();
            g.hep_dropped = t.hep().map_or(0, |h| h.dropped());
        }
        sh.metrics.render(&g)
    }

    /// The SIP trace ring, when tracing is on.
    pub fn trace(&self) -> Option<&sip_trace::TraceRing> {
        self.shared.trace.as_ref()
    }

    pub fn health(&self) -> Health {
        let (registrations, active_calls, transactions) = {
            let engine = self.shared.engine.lock();
            let now = unix_now();
            (
                engine
                    .location()
                    .map_or(0, |l| l.iter().filter(|b| b.expires_at > now).count()),
                engine.active_calls(),
                engine.transactions(),
            )
        };
        Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            domain: self.shared.config.domain.clone(),
            uptime_seconds: self.shared.started.elapsed().as_secs(),
            registrations,
            active_calls,
            transactions,
            sip_udp: self.listening.udp.clone(),
            sip_tcp: self.listening.tcp.clone(),
            sip_tls: self.listening.tls.clone(),
        }
    }

    /// When the server started.
    pub fn started(&self) -> Instant {
        self.shared.started
    }
}
