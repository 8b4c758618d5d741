//! The command line (names kept stable by `shared/INTERFACE.md`): `serve` with its listen, TLS,
//! storage, media, registrar, trace and log flags, and `user add|passwd|remove|list|import`.
//! The value parsers and ranges here also check the config file (`config_file.rs`), so a value
//! is judged the same wherever it comes from.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::serve::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A SIP registrar, proxy and media relay in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Provision subscribers.
    #[command(subcommand)]
    User(UserCommand),
    /// Make TLS certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// List and lift bans on a running server (through its admin API).
    #[command(subcommand)]
    Ban(BanCommand),
}

/// The admin API of a running server; shared by the `ban` commands.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Where the server's admin API listens (its --http-listen).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Bearer token of the admin API (the server's http.token).
    #[arg(long, value_name = "TOKEN", env = "SWITCHBOARD_HTTP_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub token: Option<Secret>,
}

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// List the sources banned for failed authentications.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift the ban on an address (for an IPv6 ban, any address of its /64).
    Remove {
        ip: IpAddr,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Write a self-signed development certificate and its key (PEM) for `serve --tls-cert
    /// --tls-key`. Phones must be told to trust it (or not to verify): for production use a
    /// certificate from a public or company CA.
    SelfSigned {
        /// Directory for cert.pem and key.pem (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
        /// A host name or IP address the certificate is for; repeatable (default: the machine's
        /// host name, localhost, 127.0.0.1 and ::1).
        #[arg(long = "name", value_name = "HOST", value_parser = parse_cert_name)]
        names: Vec<String>,
        /// Days the certificate is valid for, from today.
        #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Replace cert.pem and key.pem when they exist.
        #[arg(long)]
        force: bool,
    },
}

/// A DNS name (letters, digits, `-`, `.`, a leading `*.`) or an IP address, for a certificate.
pub fn parse_cert_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let host = s.strip_prefix("*.").unwrap_or(s);
    let ok = !host.is_empty()
        && s.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("expected a host name (sip.example.com) or an IP address (192.0.2.1, ::1)".into())
    }
}

/// A node id: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

/// Where subscribers are stored; shared by `serve` and `user`.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The SIP domain and digest realm (default: the machine's host name).
    #[arg(long, value_parser = parse_domain)]
    pub domain: Option<String>,
    /// Directory of the embedded storage.
    #[arg(long, default_value = "./switchboard-data")]
    pub data_dir: PathBuf,
    /// Where users live (default: sqlite in --data-dir; postgres://...).
    #[arg(long, value_name = "URL")]
    pub store_subscribers: Option<String>,
}

/// Accepted ranges of the numeric `serve` settings, shared by the flags and the config file.
pub mod limits {
    use std::ops::RangeInclusive;

    pub const TCP_IDLE_TIMEOUT: RangeInclusive<u64> = 1..=86_400;
    pub const MAX_CONNECTIONS_PER_SOURCE: RangeInclusive<u64> = 1..=1_000_000;
    pub const MAX_MESSAGE_SIZE: RangeInclusive<u64> = 1024..=1_048_576;
    pub const UDP_SOCKETS: RangeInclusive<u64> = 0..=64;
    pub const MEDIA_TIMEOUT: RangeInclusive<u64> = 1..=86_400;
    pub const RING_TIMEOUT: RangeInclusive<u64> = 1..=3600;
    pub const TIMER_C: RangeInclusive<u64> = 1..=3600;
    /// `min_expires`, `max_expires`, `default_expires` (30 days at most).
    pub const EXPIRES: RangeInclusive<u64> = 1..=2_592_000;
    pub const NONCE_LIFETIME: RangeInclusive<u64> = 1..=86_400;
    pub const TRACE_CAPACITY: RangeInclusive<u64> = 1..=1_000_000;
    pub const HEP_AGENT_ID: RangeInclusive<u64> = 0..=u32::MAX as u64;
    /// `ban_after_ip_failures`, `ban_after_user_failures` (0: never).
    pub const BAN_FAILURES: RangeInclusive<u64> = 0..=1_000_000;
    pub const BAN_WINDOW: RangeInclusive<u64> = 1..=86_400;
    /// `ban_time` (30 days at most).
    pub const BAN_TIME: RangeInclusive<u64> = 1..=2_592_000;
    /// `source_rate`, `source_burst` (0 rate: no limit).
    pub const SOURCE_RATE: RangeInclusive<u64> = 0..=10_000_000;
    /// `overload_queue_delay` in milliseconds (0: never shed).
    pub const OVERLOAD_QUEUE_DELAY: RangeInclusive<u64> = 0..=60_000;
    pub const RETRY_AFTER: RangeInclusive<u64> = 1..=3600;
    /// `max_calls_per_user` (0: no limit).
    pub const MAX_CALLS_PER_USER: RangeInclusive<u64> = 0..=100_000;
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags given on the command line win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP and TCP listen address; repeatable.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:5060")]
    pub sip_listen: Vec<SocketAddr>,
    /// TLS listen address; repeatable (default 0.0.0.0:5061 when a certificate is given).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Vec<SocketAddr>,
    /// Certificate chain (PEM) for TLS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for TLS.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Admin API, metrics and console.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Bearer token the admin API requires; mandatory when --http-listen is not a loopback
    /// address. Prefer `http.token` in the config file: the command line is visible in `ps`.
    #[arg(long, value_name = "TOKEN", value_parser = parse_token)]
    pub http_token: Option<Secret>,
    /// Address written into rewritten SDP.
    #[arg(long, value_name = "IP")]
    pub media_address: Option<IpAddr>,
    /// Relay port range LO-HI.
    #[arg(long, value_name = "LO-HI", default_value = "10000-20000", value_parser = parse_port_range)]
    pub rtp_ports: (u16, u16),
    /// A call whose media stopped for this many seconds is ended (BYE both ways).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(limits::MEDIA_TIMEOUT))]
    pub media_timeout: u64,
    /// Allowed codecs, comma-separated, in the server's order of preference.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "opus,G722,PCMU,PCMA,telephone-event",
        value_parser = parse_codec
    )]
    pub codecs: Vec<String>,
    /// Do not anchor media: SDP passes through untouched and RTP flows phone to phone.
    #[arg(long)]
    pub no_media: bool,
    /// Where registrations live (default: sqlite in --data-dir; redis://..., redis+sentinel://...).
    #[arg(long, value_name = "URL")]
    pub store_locations: Option<String>,
    /// Where call records go (default: sqlite in --data-dir; postgres://...).
    #[arg(long, value_name = "URL")]
    pub store_records: Option<String>,
    /// This node's name among the nodes sharing a location store (default: HOST-PORT).
    #[arg(long, value_name = "NAME", value_parser = parse_node_id)]
    pub node_id: Option<String>,
    /// Close TCP/TLS connections idle for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3660, value_parser = clap::value_parser!(u64).range(limits::TCP_IDLE_TIMEOUT))]
    pub tcp_idle_timeout: u64,
    /// Most simultaneous TCP/TLS connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(limits::MAX_CONNECTIONS_PER_SOURCE))]
    pub max_connections_per_source: u64,
    /// Offer the SHA-256 digest challenge above the MD5 one (RFC 8760 order; some phones read
    /// only the first challenge and need MD5 there).
    #[arg(long)]
    pub digest_sha256_first: bool,
    /// Digest algorithms to challenge with, in order (MD5, SHA-256). Some phones give up on a
    /// challenge set holding an algorithm they do not know (baresip on Debian 12): `MD5` alone
    /// serves them.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_digest_algorithm)]
    pub digest_algorithms: Vec<sip::digest::Algorithm>,
    /// Shortest registration accepted, in seconds; shorter requests get 423 Interval Too Brief.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(limits::EXPIRES))]
    pub min_expires: u64,
    /// Longest registration granted, in seconds; longer requests are cut down to it.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(limits::EXPIRES))]
    pub max_expires: u64,
    /// Registration granted when the REGISTER asks for no particular interval, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(limits::EXPIRES))]
    pub default_expires: u64,
    /// How long a digest nonce is good for before a phone is asked again (stale=true).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(limits::NONCE_LIFETIME))]
    pub nonce_lifetime: u64,
    /// An unanswered call ends with 480 after this many seconds of ringing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(limits::RING_TIMEOUT))]
    pub ring_timeout: u64,
    /// Timer C (RFC 3261 §16.6): a branch silent for this many seconds is cancelled (408).
    #[arg(long, value_name = "SECONDS", default_value_t = 180, value_parser = clap::value_parser!(u64).range(limits::TIMER_C))]
    pub timer_c: u64,
    /// UDP sockets (each with its own receive thread) per listen address, spread over by the
    /// kernel per source address and port (SO_REUSEPORT); 0 = one per core but one.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(limits::UDP_SOCKETS))]
    pub udp_sockets: u64,
    /// Largest SIP message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535, value_parser = clap::value_parser!(u64).range(limits::MAX_MESSAGE_SIZE))]
    pub max_message_size: u64,
    /// Keep no SIP trace (no ladders in the console, no pcap export, nothing sent over HEP).
    #[arg(long)]
    pub no_trace: bool,
    /// SIP messages kept in the trace ring (the oldest go first).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(limits::TRACE_CAPACITY))]
    pub trace_capacity: u64,
    /// A Homer collector (HEP3 over UDP) that receives a copy of every SIP message.
    #[arg(long, value_name = "ADDR")]
    pub hep_collector: Option<SocketAddr>,
    /// Capture agent id put in HEP3 packets.
    #[arg(long, value_name = "N", default_value_t = 2001, value_parser = clap::value_parser!(u64).range(limits::HEP_AGENT_ID))]
    pub hep_agent_id: u64,
    /// Log lines as text or as one JSON object per line (on stderr).
    #[arg(long, value_name = "text|json", default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
    /// A tracing filter: `info`, `debug`, `server=debug,info`; SWITCHBOARD_LOG wins over it.
    #[arg(long, value_name = "FILTER", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,
    /// Password guesses from one address within --ban-window that ban it (0: never).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(limits::BAN_FAILURES))]
    pub ban_after_ip_failures: u64,
    /// Password guesses at one user, from all addresses together, within --ban-window past which
    /// every address still guessing at that user is banned (0: never). The account itself is
    /// never locked.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(limits::BAN_FAILURES))]
    pub ban_after_user_failures: u64,
    /// The sliding window password guesses are counted over, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(limits::BAN_WINDOW))]
    pub ban_window: u64,
    /// How long a ban lasts, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(limits::BAN_TIME))]
    pub ban_time: u64,
    /// Networks never banned nor rate-limited, comma-separated CIDRs or addresses; "" for none.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1",
        value_parser = parse_network
    )]
    pub trusted_networks: Vec<String>,
    /// Requests whose User-Agent contains one of these (case-insensitive, comma-separated) are
    /// dropped unanswered; "" for none.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "friendly-scanner,sipvicious,sipcli,sip-scan,VaxSIPUserAgent,iWar,sundayddr",
        value_parser = parse_user_agent
    )]
    pub blocked_user_agents: Vec<String>,
    /// Requests per second one source address may send on average; more are dropped unread
    /// (0: no limit). Trusted networks are exempt.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(limits::SOURCE_RATE))]
    pub source_rate: u64,
    /// The burst a source may send above --source-rate.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(limits::SOURCE_RATE))]
    pub source_burst: u64,
    /// Overload: when even the shortest wait in the UDP receive queue over 100 ms exceeds this
    /// many milliseconds, new requests that waited longer get 503 + Retry-After (0: never shed).
    #[arg(long, value_name = "MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(limits::OVERLOAD_QUEUE_DELAY))]
    pub overload_queue_delay: u64,
    /// The Retry-After of those 503s, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(limits::RETRY_AFTER))]
    pub retry_after: u64,
    /// Most calls one user may have in progress (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(limits::MAX_CALLS_PER_USER))]
    pub max_calls_per_user: u64,
}

/// A value that must not reach logs or `Debug` output (the admin API token).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl TryFrom<String> for Secret {
    type Error = String;

    fn try_from(s: String) -> Result<Secret, String> {
        parse_token(&s)
    }
}

/// `--tls-only` / `--no-tls-only` of `user add|passwd` (the last one given wins).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct TlsOnlyArgs {
    /// The user registers and calls over TLS only: REGISTER and calls over UDP/TCP get 403
    /// (after authentication), and calls to the user go to its TLS registrations only.
    #[arg(long, overrides_with = "no_tls_only")]
    pub tls_only: bool,
    /// The user may use any transport (the default for a new user).
    #[arg(long, overrides_with = "tls_only")]
    pub no_tls_only: bool,
}

impl TlsOnlyArgs {
    /// The flag to set, when one of the two was given.
    pub fn value(self) -> Option<bool> {
        match (self.tls_only, self.no_tls_only) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// `--allow-from` of `user add|passwd`.
#[derive(Debug, Args, Clone, Default)]
pub struct AllowFromArgs {
    /// Networks the user may register and call from, comma-separated CIDRs or addresses; from
    /// anywhere else its REGISTER and INVITE get 403 (after authentication). "" allows anywhere
    /// again (the default for a new user).
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1, value_parser = parse_network)]
    pub allow_from: Option<Vec<String>>,
}

impl AllowFromArgs {
    /// The list to store, when the flag was given (empty: anywhere).
    pub fn value(&self) -> Option<Vec<String>> {
        self.allow_from
            .as_ref()
            .map(|l| l.iter().filter(|n| !n.is_empty()).cloned().collect())
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a subscriber.
    Add {
        ext: String,
        #[arg(long)]
        password: String,
        #[command(flatten)]
        tls: TlsOnlyArgs,
        #[command(flatten)]
        allow: AllowFromArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a subscriber's password, its TLS-only flag, the networks it may use, or several.
    Passwd {
        ext: String,
        #[arg(long, required_unless_present_any = ["tls_only", "no_tls_only", "allow_from"])]
        password: Option<String>,
        #[command(flatten)]
        tls: TlsOnlyArgs,
        #[command(flatten)]
        allow: AllowFromArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a subscriber.
    Remove {
        ext: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List subscribers.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add or update subscribers from a CSV file of `ext,password` rows (an optional
    /// `ext,password` header; blank lines and lines starting with # are skipped).
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A host name or address literal usable as SIP domain and digest realm.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a host name such as example.com (letters, digits, - . _ : [ ])".into())
    }
}

/// `MD5` or `SHA-256` (the algorithms the server challenges with).
pub fn parse_digest_algorithm(s: &str) -> Result<sip::digest::Algorithm, String> {
    match sip::digest::Algorithm::parse(s.trim()) {
        Some(a @ (sip::digest::Algorithm::Md5 | sip::digest::Algorithm::Sha256)) => Ok(a),
        _ => Err("the server challenges with MD5 or SHA-256".into()),
    }
}

/// `LO-HI` with 1024 <= LO < HI.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s.split_once('-').ok_or("expected LO-HI, e.g. 10000-20000")?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("bad port {lo:?}"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("bad port {hi:?}"))?;
    if lo < 1024 {
        return Err("the range must start at 1024 or above".into());
    }
    if lo >= hi {
        return Err("LO must be below HI".into());
    }
    Ok((lo, hi))
}

/// An SDP encoding name (a token, RFC 8866 §9), optionally with a clock rate: `PCMU`,
/// `opus/48000`, `telephone-event`.
pub fn parse_codec(s: &str) -> Result<String, String> {
    let s = s.trim();
    let (name, clock) = match s.split_once('/') {
        Some((name, clock)) => (name, Some(clock)),
        None => (s, None),
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "-!#$%&'*+.^_`{|}~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err("expected a codec name such as PCMU, opus or telephone-event".into());
    }
    if let Some(clock) = clock
        && (clock.is_empty() || !clock.bytes().all(|b| b.is_ascii_digit()) || clock.len() > 9)
    {
        return Err(format!(
            "bad clock rate {clock:?} (expected NAME/RATE, e.g. opus/48000)"
        ));
    }
    Ok(s.to_owned())
}

/// `text` or `json`.
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".into()),
    }
}

/// A tracing filter as `EnvFilter` reads it (`info`, `server=debug,warn`).
pub fn parse_log_filter(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("expected a level or filter such as info, debug or server=debug,info".into());
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.trim().to_owned())
        .map_err(|e| format!("not a log filter: {e}"))
}

/// A network in CIDR notation (`203.0.113.0/24`, `2001:db8::/32`) or one address; the empty
/// string stands for no network (so `--trusted-networks ""` empties the list).
pub fn parse_network(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    server::guard::Networks::parse(&[s.to_owned()])?;
    Ok(s.to_owned())
}

/// A User-Agent substring (no control characters; on the command line commas separate the
/// list); the empty string stands for none (so `--blocked-user-agents ""` empties the list).
pub fn parse_user_agent(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.chars().any(|c| c.is_control()) {
        return Err("a User-Agent substring has no control characters".into());
    }
    Ok(s.to_owned())
}

/// A bearer token: printable ASCII without spaces (e.g. `openssl rand -hex 32`).
pub fn parse_token(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        return Err("the token is empty".into());
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without spaces".into());
    }
    Ok(Secret(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn repeatable_listen_and_defaults() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "serve",
            "--sip-listen",
            "127.0.0.1:5060",
            "--sip-listen",
            "[::1]:5070",
        ])
        .expect("valid");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.sip_listen.len(), 2);
        assert_eq!(args.rtp_ports, (10000, 20000));
        assert_eq!(args.http_listen, "127.0.0.1:8080".parse::<SocketAddr>().expect("addr"));
        let cli = Cli::try_parse_from(["switchboard", "serve"]).expect("valid");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.sip_listen, ["0.0.0.0:5060".parse::<SocketAddr>().expect("addr")]);
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in ["100-200", "20000-10000", "x-y", "10000"] {
            assert!(
                Cli::try_parse_from(["switchboard", "serve", "--rtp-ports", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Cli::try_parse_from(["switchboard", "serve", "--sip-listen", "not-an-address"]).is_err());
        assert!(
            Cli::try_parse_from(["switchboard", "serve", "--tls-cert", "c.pem"]).is_err(),
            "cert needs key"
        );
        assert!(
            Cli::try_parse_from(["switchboard", "user", "add", "1000"]).is_err(),
            "password required"
        );
    }

    #[test]
    fn user_commands_parse() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "user",
            "add",
            "1000",
            "--password",
            "pw",
            "--domain",
            "example.com",
        ])
        .expect("valid");
        assert!(matches!(cli.command, Command::User(UserCommand::Add { .. })));
    }

    #[test]
    fn cert_self_signed_parses() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "cert",
            "self-signed",
            "--out-dir",
            "/tmp/x",
            "--name",
            "SIP.example.com",
            "--name",
            "::1",
        ])
        .expect("valid");
        let Command::Cert(CertCommand::SelfSigned {
            out_dir,
            names,
            days,
            force,
        }) = cli.command
        else {
            panic!("cert self-signed")
        };
        assert_eq!(out_dir, PathBuf::from("/tmp/x"));
        assert_eq!(names, ["sip.example.com", "::1"]);
        assert_eq!((days, force), (365, false));
        for bad in ["", "a b", "exa_mple.com", "-", "x..y", "über.example"] {
            assert!(
                Cli::try_parse_from(["switchboard", "cert", "self-signed", "--name", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tls_only_flags() {
        let tls = |args: &[&str]| {
            let cli = Cli::try_parse_from(["switchboard", "user"].iter().chain(args)).expect("valid");
            match cli.command {
                Command::User(UserCommand::Add { tls, .. } | UserCommand::Passwd { tls, .. }) => tls.value(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(tls(&["add", "1000", "--password", "pw"]), None);
        assert_eq!(tls(&["add", "1000", "--password", "pw", "--tls-only"]), Some(true));
        assert_eq!(tls(&["passwd", "1000", "--no-tls-only"]), Some(false));
        assert_eq!(tls(&["passwd", "1000", "--tls-only", "--no-tls-only"]), Some(false));
        assert_eq!(tls(&["passwd", "1000", "--password", "pw"]), None);
        assert!(
            Cli::try_parse_from(["switchboard", "user", "passwd", "1000"]).is_err(),
            "passwd needs a password or a flag to change"
        );
    }

    #[test]
    fn ban_commands_parse() {
        let cli = Cli::try_parse_from(["switchboard", "ban", "list"]).expect("valid");
        let Command::Ban(BanCommand::List { api, json }) = cli.command else {
            panic!("ban list")
        };
        assert_eq!((api.http.as_str(), json), ("127.0.0.1:8080", false));
        let cli = Cli::try_parse_from([
            "switchboard",
            "ban",
            "remove",
            "2001:db8::7",
            "--http",
            "10.0.0.5:9000",
            "--token",
            "t0ken",
        ])
        .expect("valid");
        let Command::Ban(BanCommand::Remove { ip, api }) = cli.command else {
            panic!("ban remove")
        };
        assert_eq!(ip, "2001:db8::7".parse::<IpAddr>().expect("ip"));
        assert_eq!(api.http, "10.0.0.5:9000");
        assert_eq!(api.token.as_ref().map(Secret::expose), Some("t0ken"));
        assert!(Cli::try_parse_from(["switchboard", "ban", "remove", "not-an-ip"]).is_err());
        assert!(Cli::try_parse_from(["switchboard", "ban", "remove"]).is_err());
    }
}
