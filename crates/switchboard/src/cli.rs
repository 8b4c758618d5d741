//! The command line (names kept stable by `shared/INTERFACE.md`): `serve` with its listen, TLS,
//! storage and media flags, and `user add|passwd|remove|list`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

/// Where subscribers are stored; shared by `serve` and `user`.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The SIP domain and digest realm (default: the machine's host name).
    #[arg(long)]
    pub domain: Option<String>,
    /// Directory of the embedded storage.
    #[arg(long, default_value = "./switchboard-data")]
    pub data_dir: PathBuf,
    /// Where users live (default: sqlite in --data-dir; postgres://...).
    #[arg(long, value_name = "URL")]
    pub store_subscribers: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (flags win over it).
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
    /// Address written into rewritten SDP.
    #[arg(long, value_name = "IP")]
    pub media_address: Option<IpAddr>,
    /// Relay port range LO-HI.
    #[arg(long, value_name = "LO-HI", default_value = "10000-20000", value_parser = parse_port_range)]
    pub rtp_ports: (u16, u16),
    /// A call whose media stopped for this many seconds is ended (BYE both ways).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub media_timeout: u64,
    /// Allowed codecs, comma-separated, in the server's order of preference.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "opus,G722,PCMU,PCMA,telephone-event"
    )]
    pub codecs: Vec<String>,
    /// Do not anchor media: SDP passes through untouched and RTP flows phone to phone.
    #[arg(long)]
    pub no_media: bool,
    /// Where registrations live (default: sqlite in --data-dir; redis://...).
    #[arg(long, value_name = "URL")]
    pub store_locations: Option<String>,
    /// Where call records go (default: sqlite in --data-dir; postgres://...).
    #[arg(long, value_name = "URL")]
    pub store_records: Option<String>,
    /// Close TCP/TLS connections idle for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3660, value_parser = clap::value_parser!(u64).range(1..))]
    pub tcp_idle_timeout: u64,
    /// Most simultaneous TCP/TLS connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
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
    /// An unanswered call ends with 480 after this many seconds of ringing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ring_timeout: u64,
    /// Timer C (RFC 3261 §16.6): a branch silent for this many seconds is cancelled (408).
    #[arg(long, value_name = "SECONDS", default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timer_c: u64,
    /// UDP sockets (each with its own receive thread) per listen address, spread over by the
    /// kernel per source address and port (SO_REUSEPORT); 0 = one per core but one.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub udp_sockets: u64,
    /// Largest SIP message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535, value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    pub max_message_size: u64,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a subscriber.
    Add {
        ext: String,
        #[arg(long)]
        password: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a subscriber's password.
    Passwd {
        ext: String,
        #[arg(long)]
        password: String,
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
}

/// `LO-HI` with 1024 <= LO < HI.
fn parse_digest_algorithm(s: &str) -> Result<sip::digest::Algorithm, String> {
    match sip::digest::Algorithm::parse(s.trim()) {
        Some(a @ (sip::digest::Algorithm::Md5 | sip::digest::Algorithm::Sha256)) => Ok(a),
        _ => Err(format!("{s:?}: the server challenges with MD5 or SHA-256")),
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
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
}
