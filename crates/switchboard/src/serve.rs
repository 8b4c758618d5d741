//! `switchboard serve`: starts the runtime, the SIP server and, on the same runtime, the admin
//! HTTP server (API, metrics, console) on `--http-listen`; prints where it listens (`sip udp ADDR`,
//! `http ADDR`, one line each, for people and for tests), and a hint when there is no user yet;
//! runs until SIGTERM/SIGINT, then stops both.

use std::io::Write;
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
#[derive(Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token the API requires; mandatory when `listen` is not a loopback address.
    pub token: Option<String>,
}

impl std::fmt::Debug for HttpSettings {
    /// The token is a secret: `Debug` output only says whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl HttpSettings {
    /// The admin API without a token is only for this machine.
    fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "--http-listen {} is not a loopback address: the admin API needs a bearer token there \
                 (http.token in the config file, or --http-token)",
                self.listen
            ));
        }
        Ok(())
    }
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
    if let Err(e) = opts.http.check() {
        eprintln!("switchboard: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let http_listener = match runtime.block_on(tokio::net::TcpListener::bind(opts.http.listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("switchboard: cannot listen on --http-listen {}: {e}", opts.http.listen);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(opts, http_listener));
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

/// The SIP server, and the admin HTTP server once the SIP one is ready; both stop on
/// SIGTERM/SIGINT (the HTTP one after the SIP one has finished its transactions).
async fn serve(opts: ServeOptions, http_listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let http_addr = http_listener.local_addr()?;
    let domain = opts.server.domain.clone();
    let data_dir = opts.server.data_dir.clone();
    let subscribers_url = opts.server.stores.subscribers.clone();
    let settings = admin::AdminSettings {
        token: opts.http.token.clone(),
    };
    // First of all, so that a SIGTERM during start-up is a graceful stop.
    let shutdown = server::shutdown_signal();
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http_task = None;
    let result = server::serve(opts.server, shutdown, |l, control| {
        {
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
            let _ = writeln!(out, "http {http_addr}");
            let _ = writeln!(out, "console: http://{http_addr}/");
            let _ = out.flush();
        }
        let stores = control.stores();
        http_task = Some(tokio::spawn(async move {
            let stopped = async {
                let _ = http_stopped.await;
            };
            if let Err(e) = admin::serve(http_listener, control, settings, stopped).await {
                tracing::error!(error = %e, "the admin HTTP server stopped");
            }
        }));
        if let (Some(dir), Some(stores)) = (data_dir, stores) {
            let subscribers_url = subscribers_url.clone();
            tokio::task::spawn_blocking(move || {
                first_user_hint(&*stores.subscribers, &dir, subscribers_url.as_deref(), &domain)
            });
        }
    })
    .await;
    let _ = stop_http.send(());
    if let Some(task) = http_task
        && tokio::time::timeout(Duration::from_secs(2), task).await.is_err()
    {
        tracing::warn!("the admin HTTP server did not stop within 2 s");
    }
    result
}

/// Tells how to add a first user when the domain has none.
fn first_user_hint(store: &dyn store::SubscriberStore, dir: &std::path::Path, url: Option<&str>, domain: &str) {
    if store
        .list(Some(&domain.to_ascii_lowercase()))
        .is_ok_and(|users| users.is_empty())
    {
        let mut out = std::io::stdout().lock();
        let place = match url {
            Some(url) => format!("--store-subscribers {}", store::redact(url)),
            None => format!("--data-dir {}", dir.display()),
        };
        let _ = writeln!(
            out,
            "no users yet: add one with  switchboard user add 1000 --password SECRET {place} --domain {domain}"
        );
        let _ = out.flush();
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
