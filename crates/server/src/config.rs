//! Runtime settings of the SIP side of the server: where to listen, TLS material, stream and
//! message limits, transaction timers. The binary fills this from flags and the config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sip_txn::TimerConfig;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP and TCP listen on each address.
    pub sip_listen: Vec<SocketAddr>,
    /// TLS listeners; they need `tls_cert` and `tls_key`.
    pub tls_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The SIP domain this server is authoritative for.
    pub domain: String,
    /// Largest message accepted on any transport.
    pub max_message_size: usize,
    /// TCP/TLS connections with no traffic for this long are closed. Phones keep theirs open with
    /// CRLF keep-alives (RFC 5626) or re-REGISTERs.
    pub tcp_idle_timeout: Duration,
    /// Most simultaneous TCP+TLS connections from one IP address.
    pub max_connections_per_source: usize,
    /// A TLS handshake must complete within this time.
    pub tls_handshake_timeout: Duration,
    /// Send UDP responses to the packet's source port even without `;rport` (RFC 3581 behaviour
    /// for every request), which is what phones behind NAT need.
    pub force_rport: bool,
    /// UDP sockets per listen address (SO_REUSEPORT); 0 = one per CPU but one (at least one).
    pub udp_sockets_per_address: usize,
    pub timers: TimerConfig,
    /// The embedded store (subscribers, registrations); `None` runs without a registrar.
    pub data_dir: Option<std::path::PathBuf>,
    /// Shared stores by URL instead of the embedded one, per kind of data (multi-node).
    pub stores: store::StoreUrls,
    /// This node's name among several sharing a location store (empty: `HOST-PORT`).
    pub node_id: String,
    /// Registration intervals: below `min` gets 423, above `max` is clamped.
    pub registration: crate::registrar::Intervals,
    /// How long a digest nonce is good for before it is `stale`.
    pub nonce_lifetime: Duration,
    /// Put the SHA-256 challenge above the MD5 one.
    pub digest_sha256_first: bool,
    /// Challenge with only these algorithms (empty: MD5 and SHA-256).
    pub digest_algorithms: Vec<sip::digest::Algorithm>,
    /// Ring timeout, Timer C and the longest call.
    pub proxy: crate::proxy::ProxyConfig,
    /// The media relay; `None` passes SDP through untouched.
    pub media: Option<MediaSettings>,
    /// On SIGTERM/SIGINT, how long to wait for transactions in flight.
    pub shutdown_grace: Duration,
    /// The SIP trace ring (console ladders, pcap export, HEP).
    pub trace: TraceSettings,
    /// Brute-force bans, flood limits and overload shedding.
    pub guard: GuardSettings,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            sip_listen: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            domain: "localhost".into(),
            max_message_size: 65_535,
            tcp_idle_timeout: Duration::from_secs(3_660),
            max_connections_per_source: 64,
            tls_handshake_timeout: Duration::from_secs(10),
            force_rport: true,
            udp_sockets_per_address: 0,
            timers: TimerConfig::default(),
            data_dir: None,
            stores: store::StoreUrls::default(),
            node_id: String::new(),
            registration: crate::registrar::Intervals::default(),
            nonce_lifetime: Duration::from_secs(300),
            digest_sha256_first: false,
            digest_algorithms: Vec::new(),
            proxy: crate::proxy::ProxyConfig::default(),
            media: Some(MediaSettings::default()),
            shutdown_grace: Duration::from_secs(5),
            trace: TraceSettings::default(),
            guard: GuardSettings::default(),
        }
    }
}

/// Media anchoring settings.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The address put into rewritten SDP and bound by the relay; `None`: the SIP listen address,
    /// or the address this host reaches the outside with when that is a wildcard.
    pub address: Option<std::net::IpAddr>,
    /// The relay's port range, both ends inclusive.
    pub ports: (u16, u16),
    /// A call whose media stopped for this long is ended with BYE both ways.
    pub timeout: Duration,
    /// Allowed codecs, in the server's order of preference.
    pub codecs: Vec<String>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            address: None,
            ports: (10_000, 20_000),
            timeout: Duration::from_secs(60),
            codecs: sdp::CodecPolicy::default().allowed,
        }
    }
}

/// The in-memory SIP trace: the last `capacity` messages sent and received, grouped by Call-ID.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// Off: nothing is kept and nothing is sent to a collector.
    pub enabled: bool,
    /// Messages kept (the oldest go first).
    pub capacity: usize,
    /// A Homer collector that receives every message as HEP3 over UDP.
    pub hep_collector: Option<std::net::SocketAddr>,
    /// The capture agent id put in HEP3 packets.
    pub hep_agent_id: u32,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            enabled: true,
            capacity: 10_000,
            hep_collector: None,
            hep_agent_id: 2001,
        }
    }
}

/// Defences against scanners, password guessing and floods (see `crate::guard`).
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Failed authentications from one IP address within `ban_window` that get it banned
    /// (0: never).
    pub ban_after_ip_failures: u32,
    /// Failed authentications for one user (from anywhere) within `ban_window` that get the
    /// sources trying it banned (0: never).
    pub ban_after_user_failures: u32,
    pub ban_window: Duration,
    /// How long a ban lasts.
    pub ban_time: Duration,
    /// Addresses never banned nor rate-limited (CIDR), e.g. an office's own network. Loopback
    /// by default: local processes (a local SBC, test and load tools) are not attackers; tests
    /// of the bans and limits empty this list.
    pub trusted_networks: Vec<String>,
    /// Requests per second one source IP may send on average (0: no limit), and the burst
    /// above it.
    pub source_rate: u32,
    pub source_burst: u32,
    /// When the shortest wait in the UDP receive queue over 100 ms exceeds this, the queue
    /// stands and the server is overloaded: new out-of-dialog requests without credentials that
    /// waited longer get 503 + Retry-After (zero: never shed). See `guard::flood`.
    pub overload_queue_delay: Duration,
    /// The Retry-After of those 503s, in seconds.
    pub retry_after: u32,
    /// Most calls one user may have in progress (0: no limit).
    pub max_calls_per_user: u32,
    /// User-Agent substrings whose requests are dropped unanswered (scanners), case-insensitive.
    pub blocked_user_agents: Vec<String>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            ban_after_ip_failures: 20,
            ban_after_user_failures: 50,
            ban_window: Duration::from_secs(300),
            ban_time: Duration::from_secs(3600),
            trusted_networks: vec!["127.0.0.0/8".into(), "::1".into()],
            source_rate: 1000,
            source_burst: 2000,
            overload_queue_delay: Duration::from_millis(50),
            retry_after: 5,
            max_calls_per_user: 10,
            blocked_user_agents: [
                "friendly-scanner",
                "sipvicious",
                "sipcli",
                "sip-scan",
                "VaxSIPUserAgent",
                "iWar",
                "sundayddr",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}
