//! `switchboard serve`: builds the server settings from the command line, starts the runtime,
//! prints where it listens, and runs until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use server::ServerConfig;

/// What `serve` needs, from the command line and the config file (flags win).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The SIP side.
    pub server: ServerConfig,
    /// The admin API, metrics and console.
    pub http: HttpSettings,
    /// Where logs go and how they look.
    pub log: LogSettings,
}

/// `--http-listen`, `--http-token`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token the API requires; mandatory when `listen` is not a loopback address.
    pub token: Option<String>,
}

/// `--log-format`, `--log-level`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `server=debug,info`); `SWITCHBOARD_LOG` wins over it.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The machine's host name, the default SIP domain.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub fn run(opts: ServeOptions) -> ExitCode {
    init_logging(&opts.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let domain = opts.server.domain.clone();
    let result = runtime.block_on(server::run(opts.server, server::shutdown_signal(), |l| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "switchboard {} serving domain {domain}", env!("CARGO_PKG_VERSION"));
        for a in &l.udp {
            let _ = writeln!(out, "sip udp {a}");
        }
        for a in &l.tcp {
            let _ = writeln!(out, "sip tcp {a}");
        }
        for a in &l.tls {
            let _ = writeln!(out, "sip tls {a}");
        }
        let _ = out.flush();
    }));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
