//! The `switchboard` binary: parses the command line and runs the command. Options whose issue
//! has not landed yet say so and exit with status 2.

mod cli;
mod serve;
mod users;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command};

/// mimalloc: messages are allocated on the receive threads and freed on the timer and commit
/// threads; glibc's malloc pays heavily for those cross-thread frees (about a fifth of the
/// server's CPU time under a REGISTER load, measured with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn not_implemented(what: &str, issue: &str) -> ExitCode {
    eprintln!("switchboard: '{what}' is not implemented yet (tracked in {issue})");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            if args.config.is_some() {
                return not_implemented("serve --config", "issue #8: config, admin API, metrics");
            }
            for (given, what, issue) in [
                (
                    args.store.store_subscribers.is_some(),
                    "--store-subscribers",
                    "#5/#9 (the registrar reads it)",
                ),
                (args.store_locations.is_some(), "--store-locations", "#5/#9"),
                (args.store_records.is_some(), "--store-records", "#6/#9"),
            ] {
                if given {
                    return not_implemented(&format!("serve {what}"), &format!("issue {issue}"));
                }
            }
            let tls_listen = match (&args.tls_cert, args.tls_listen.is_empty()) {
                (Some(_), true) => vec![std::net::SocketAddr::from(([0, 0, 0, 0], 5061))],
                _ => args.tls_listen.clone(),
            };
            serve::run(serve::ServeOptions {
                server: server::ServerConfig {
                    sip_listen: args.sip_listen.clone(),
                    tls_listen,
                    tls_cert: args.tls_cert.clone(),
                    tls_key: args.tls_key.clone(),
                    domain: args.store.domain.clone().unwrap_or_else(serve::host_name),
                    tcp_idle_timeout: Duration::from_secs(args.tcp_idle_timeout),
                    max_connections_per_source: args.max_connections_per_source as usize,
                    max_message_size: args.max_message_size as usize,
                    data_dir: Some(args.store.data_dir.clone()),
                    digest_sha256_first: args.digest_sha256_first,
                    digest_algorithms: args.digest_algorithms.clone(),
                    udp_sockets_per_address: args.udp_sockets as usize,
                    proxy: server::proxy::ProxyConfig {
                        ring_timeout: Duration::from_secs(args.ring_timeout),
                        timer_c: Duration::from_secs(args.timer_c),
                        ..server::proxy::ProxyConfig::default()
                    },
                    media: (!args.no_media).then(|| server::MediaSettings {
                        address: args.media_address,
                        ports: args.rtp_ports,
                        timeout: Duration::from_secs(args.media_timeout),
                        codecs: args.codecs.clone(),
                    }),
                    ..server::ServerConfig::default()
                },
                http: serve::HttpSettings {
                    listen: args.http_listen,
                    token: None,
                },
                log: serve::LogSettings {
                    format: serve::LogFormat::Text,
                    level: "info".into(),
                },
            })
        }
        Command::User(cmd) => users::run(cmd),
    }
}
