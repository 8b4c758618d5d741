//! The settings of `switchboard serve`: owns the layout of the TOML config file (`--config FILE`,
//! one key per flag, see [`KEYS`]), reading and checking it with the same parsers and ranges as
//! the flags (`cli.rs`), the precedence rule (a flag given on the command line wins over the
//! file, the file wins over the built-in defaults), the checks that span several settings, and
//! the building of [`ServeOptions`] from the result.
//!
//! Every error names the key (and the flag, where the flag may be the source) and says why; the
//! caller prints it and exits with status 2 before anything starts.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::cli::{self, Secret, ServeArgs, limits};
use crate::serve::{HttpSettings, LogSettings, ServeOptions};

/// Every `serve` flag (its clap argument id) and its key in the config file. `media.enabled` and
/// `trace.enabled` are the negations of `--no-media` and `--no-trace`.
pub const KEYS: &[(&str, &str)] = &[
    ("domain", "domain"),
    ("data_dir", "data_dir"),
    ("sip_listen", "sip.listen"),
    ("tcp_idle_timeout", "sip.tcp_idle_timeout"),
    ("max_connections_per_source", "sip.max_connections_per_source"),
    ("max_message_size", "sip.max_message_size"),
    ("udp_sockets", "sip.udp_sockets"),
    ("tls_listen", "tls.listen"),
    ("tls_cert", "tls.cert"),
    ("tls_key", "tls.key"),
    ("http_listen", "http.listen"),
    ("http_token", "http.token"),
    ("no_media", "media.enabled"),
    ("media_address", "media.address"),
    ("rtp_ports", "media.rtp_ports"),
    ("media_timeout", "media.timeout"),
    ("codecs", "media.codecs"),
    ("min_expires", "registrar.min_expires"),
    ("max_expires", "registrar.max_expires"),
    ("default_expires", "registrar.default_expires"),
    ("nonce_lifetime", "registrar.nonce_lifetime"),
    ("digest_algorithms", "registrar.digest_algorithms"),
    ("digest_sha256_first", "registrar.digest_sha256_first"),
    ("ring_timeout", "proxy.ring_timeout"),
    ("timer_c", "proxy.timer_c"),
    ("no_trace", "trace.enabled"),
    ("trace_capacity", "trace.capacity"),
    ("hep_collector", "trace.hep_collector"),
    ("hep_agent_id", "trace.hep_agent_id"),
    ("log_format", "log.format"),
    ("log_level", "log.level"),
    ("store_subscribers", "store.subscribers"),
    ("store_locations", "store.locations"),
    ("store_records", "store.records"),
    ("node_id", "store.node_id"),
    ("ban_after_ip_failures", "guard.ban_after_ip_failures"),
    ("ban_after_user_failures", "guard.ban_after_user_failures"),
    ("ban_window", "guard.ban_window"),
    ("ban_time", "guard.ban_time"),
    ("trusted_networks", "guard.trusted_networks"),
    ("blocked_user_agents", "guard.blocked_user_agents"),
    ("source_rate", "guard.source_rate"),
    ("source_burst", "guard.source_burst"),
    ("overload_queue_delay", "guard.overload_queue_delay"),
    ("retry_after", "guard.retry_after"),
    ("max_calls_per_user", "guard.max_calls_per_user"),
];

/// Keys whose values never appear in messages.
const SECRET_KEYS: &[&str] = &["http.token"];

/// Why the settings were refused: the file (if the file is at fault), the key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<PathBuf>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    fn key(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            key: None,
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &Path) -> ConfigError {
        self.file = Some(file.to_owned());
        self
    }

    /// The key at fault, when there is one.
    #[cfg(test)]
    fn key_name(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "config {}: ", file.display())?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file as written: every key optional, unknown keys refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
struct ConfigFile {
    domain: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    sip: SipSection,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    media: MediaSection,
    #[serde(default)]
    registrar: RegistrarSection,
    #[serde(default)]
    proxy: ProxySection,
    #[serde(default)]
    trace: TraceSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    guard: GuardSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [sip] settings")]
struct SipSection {
    listen: Option<Vec<SocketAddr>>,
    tcp_idle_timeout: Option<u64>,
    max_connections_per_source: Option<u64>,
    max_message_size: Option<u64>,
    udp_sockets: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [tls] settings")]
struct TlsSection {
    listen: Option<Vec<SocketAddr>>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [http] settings")]
struct HttpSection {
    listen: Option<SocketAddr>,
    token: Option<Secret>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [media] settings")]
struct MediaSection {
    enabled: Option<bool>,
    address: Option<IpAddr>,
    rtp_ports: Option<String>,
    timeout: Option<u64>,
    codecs: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [registrar] settings")]
struct RegistrarSection {
    min_expires: Option<u64>,
    max_expires: Option<u64>,
    default_expires: Option<u64>,
    nonce_lifetime: Option<u64>,
    digest_algorithms: Option<Vec<String>>,
    digest_sha256_first: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [proxy] settings")]
struct ProxySection {
    ring_timeout: Option<u64>,
    timer_c: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [trace] settings")]
struct TraceSection {
    enabled: Option<bool>,
    capacity: Option<u64>,
    hep_collector: Option<SocketAddr>,
    hep_agent_id: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [log] settings")]
struct LogSection {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [store] settings")]
struct StoreSection {
    subscribers: Option<String>,
    locations: Option<String>,
    records: Option<String>,
    node_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of [guard] settings")]
struct GuardSection {
    ban_after_ip_failures: Option<u64>,
    ban_after_user_failures: Option<u64>,
    ban_window: Option<u64>,
    ban_time: Option<u64>,
    trusted_networks: Option<Vec<String>>,
    blocked_user_agents: Option<Vec<String>>,
    source_rate: Option<u64>,
    source_burst: Option<u64>,
    overload_queue_delay: Option<u64>,
    retry_after: Option<u64>,
    max_calls_per_user: Option<u64>,
}

/// The command-line `args` with the config file they name (if any) merged in: a key of the file
/// replaces a setting unless its flag was given on the command line (`matches` are those of the
/// `serve` subcommand). Every key of the file is checked, overridden or not.
pub fn merge_config_file(mut args: ServeArgs, matches: &ArgMatches) -> Result<ServeArgs, ConfigError> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::general(format!("cannot read it: {e}")).in_file(&path))?;
    let file = parse(&text).map_err(|e| e.in_file(&path))?;
    let flag_given = |key: &str| given_on_command_line(matches, key);
    file.apply(&mut args, &flag_given).map_err(|e| e.in_file(&path))?;
    Ok(args)
}

/// Whether the flag of `key` came from the command line (not from its built-in default).
fn given_on_command_line(matches: &ArgMatches, key: &str) -> bool {
    let id = KEYS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(id, _)| *id)
        .expect("every config key is in KEYS");
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Reads the TOML text; a type error or unknown key is reported with the dotted key it is at.
fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let message = readable(e.message());
        let Some(span) = e.span() else {
            return ConfigError::general(message);
        };
        match key_at(text, span.start) {
            Some(key) => {
                let found = text.get(span.clone()).unwrap_or_default().trim();
                let shows_value = message.contains(found) || message.starts_with("unknown key");
                if shows_value || found.is_empty() || SECRET_KEYS.contains(&key.as_str()) {
                    ConfigError::key(&key, message)
                } else {
                    ConfigError::key(&key, format!("{found}: {message}"))
                }
            }
            None => {
                let (line, column) = line_and_column(text, span.start);
                ConfigError::general(format!("line {line}, column {column}: {message}"))
            }
        }
    })
}

/// serde's words for the file's words.
fn readable(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((_, expected)) = rest.split_once("`, expected ")
    {
        return format!("unknown key (expected {expected})");
    }
    message
        .replace("expected u64", "expected a whole number")
        .replace("expected a sequence", "expected a list [...]")
}

fn line_and_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The dotted key (`media.rtp_ports`) whose name or value covers byte `pos` of `text`.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    key_in_table(doc.get_ref(), pos, "")
}

fn key_in_table(table: &toml::de::DeTable<'_>, pos: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if let Some(deeper) = key_in_value(value.get_ref(), pos, &path) {
            return Some(deeper);
        }
        if key.span().contains(&pos) || value.span().contains(&pos) {
            return Some(path);
        }
    }
    None
}

fn key_in_value(value: &toml::de::DeValue<'_>, pos: usize, path: &str) -> Option<String> {
    match value {
        toml::de::DeValue::Table(table) => key_in_table(table, pos, path),
        toml::de::DeValue::Array(items) => items.iter().find_map(|item| {
            key_in_value(item.get_ref(), pos, path).or_else(|| item.span().contains(&pos).then(|| path.to_owned()))
        }),
        _ => None,
    }
}

/// A number of the file within the range its flag accepts.
fn number(key: &str, value: Option<u64>, range: RangeInclusive<u64>) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ConfigError::key(
            key,
            format!("{v} is not in {}..={}", range.start(), range.end()),
        )),
        other => Ok(other),
    }
}

/// A text value of the file read by its flag's parser.
fn parsed<T>(
    key: &str,
    value: Option<String>,
    parser: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| parser(&v).map_err(|why| ConfigError::key(key, format!("{v:?}: {why}"))))
        .transpose()
}

/// A list of the file, each item read by its flag's parser.
fn parsed_list<T>(
    key: &str,
    values: Option<Vec<String>>,
    parser: fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, ConfigError> {
    values
        .map(|vs| {
            vs.iter()
                .map(|v| parser(v).map_err(|why| ConfigError::key(key, format!("{v:?}: {why}"))))
                .collect()
        })
        .transpose()
}

fn non_empty<T>(key: &str, values: Option<Vec<T>>, what: &str) -> Result<Option<Vec<T>>, ConfigError> {
    match values {
        Some(v) if v.is_empty() => Err(ConfigError::key(key, format!("the list is empty; give {what}"))),
        other => Ok(other),
    }
}

fn non_empty_path(key: &str, value: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        Some(p) if p.as_os_str().is_empty() => Err(ConfigError::key(key, "the path is empty")),
        other => Ok(other),
    }
}

fn non_empty_text(key: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(s) if s.trim().is_empty() => Err(ConfigError::key(key, "the value is empty")),
        other => Ok(other),
    }
}

/// Puts the file's values into the settings, except where the flag was given.
struct Merge<'a> {
    flag_given: &'a dyn Fn(&str) -> bool,
}

impl Merge<'_> {
    fn put<T>(&self, setting: &mut T, key: &str, value: Option<T>) {
        if let Some(value) = value
            && !(self.flag_given)(key)
        {
            *setting = value;
        }
    }
}

impl ConfigFile {
    /// Checks every value, then merges those whose flag was not given into `args`.
    fn apply(self, args: &mut ServeArgs, flag_given: &dyn Fn(&str) -> bool) -> Result<(), ConfigError> {
        let m = Merge { flag_given };
        let ConfigFile {
            domain,
            data_dir,
            sip,
            tls,
            http,
            media,
            registrar,
            proxy,
            trace,
            log,
            store,
            guard,
        } = self;

        m.put(
            &mut args.store.domain,
            "domain",
            parsed("domain", domain, cli::parse_domain)?.map(Some),
        );
        m.put(
            &mut args.store.data_dir,
            "data_dir",
            non_empty_path("data_dir", data_dir)?,
        );

        let listen = non_empty(
            "sip.listen",
            sip.listen,
            "at least one address, e.g. [\"0.0.0.0:5060\"]",
        )?;
        m.put(&mut args.sip_listen, "sip.listen", listen);
        let key = "sip.tcp_idle_timeout";
        m.put(
            &mut args.tcp_idle_timeout,
            key,
            number(key, sip.tcp_idle_timeout, limits::TCP_IDLE_TIMEOUT)?,
        );
        let key = "sip.max_connections_per_source";
        let value = number(key, sip.max_connections_per_source, limits::MAX_CONNECTIONS_PER_SOURCE)?;
        m.put(&mut args.max_connections_per_source, key, value);
        let key = "sip.max_message_size";
        m.put(
            &mut args.max_message_size,
            key,
            number(key, sip.max_message_size, limits::MAX_MESSAGE_SIZE)?,
        );
        let key = "sip.udp_sockets";
        m.put(
            &mut args.udp_sockets,
            key,
            number(key, sip.udp_sockets, limits::UDP_SOCKETS)?,
        );

        m.put(&mut args.tls_listen, "tls.listen", tls.listen);
        m.put(
            &mut args.tls_cert,
            "tls.cert",
            non_empty_path("tls.cert", tls.cert)?.map(Some),
        );
        m.put(
            &mut args.tls_key,
            "tls.key",
            non_empty_path("tls.key", tls.key)?.map(Some),
        );

        m.put(&mut args.http_listen, "http.listen", http.listen);
        m.put(&mut args.http_token, "http.token", http.token.map(Some));

        m.put(&mut args.no_media, "media.enabled", media.enabled.map(|on| !on));
        m.put(&mut args.media_address, "media.address", media.address.map(Some));
        let key = "media.rtp_ports";
        m.put(
            &mut args.rtp_ports,
            key,
            parsed(key, media.rtp_ports, cli::parse_port_range)?,
        );
        let key = "media.timeout";
        m.put(
            &mut args.media_timeout,
            key,
            number(key, media.timeout, limits::MEDIA_TIMEOUT)?,
        );
        let key = "media.codecs";
        let codecs = non_empty(key, media.codecs, "at least one codec, or media.enabled = false")?;
        m.put(&mut args.codecs, key, parsed_list(key, codecs, cli::parse_codec)?);

        for (key, value, setting) in [
            ("registrar.min_expires", registrar.min_expires, &mut args.min_expires),
            ("registrar.max_expires", registrar.max_expires, &mut args.max_expires),
            (
                "registrar.default_expires",
                registrar.default_expires,
                &mut args.default_expires,
            ),
        ] {
            m.put(setting, key, number(key, value, limits::EXPIRES)?);
        }
        let key = "registrar.nonce_lifetime";
        m.put(
            &mut args.nonce_lifetime,
            key,
            number(key, registrar.nonce_lifetime, limits::NONCE_LIFETIME)?,
        );
        let key = "registrar.digest_algorithms";
        let algorithms = parsed_list(key, registrar.digest_algorithms, cli::parse_digest_algorithm)?;
        m.put(&mut args.digest_algorithms, key, algorithms);
        m.put(
            &mut args.digest_sha256_first,
            "registrar.digest_sha256_first",
            registrar.digest_sha256_first,
        );

        let key = "proxy.ring_timeout";
        m.put(
            &mut args.ring_timeout,
            key,
            number(key, proxy.ring_timeout, limits::RING_TIMEOUT)?,
        );
        let key = "proxy.timer_c";
        m.put(&mut args.timer_c, key, number(key, proxy.timer_c, limits::TIMER_C)?);

        m.put(&mut args.no_trace, "trace.enabled", trace.enabled.map(|on| !on));
        let key = "trace.capacity";
        m.put(
            &mut args.trace_capacity,
            key,
            number(key, trace.capacity, limits::TRACE_CAPACITY)?,
        );
        m.put(
            &mut args.hep_collector,
            "trace.hep_collector",
            trace.hep_collector.map(Some),
        );
        let key = "trace.hep_agent_id";
        m.put(
            &mut args.hep_agent_id,
            key,
            number(key, trace.hep_agent_id, limits::HEP_AGENT_ID)?,
        );

        m.put(
            &mut args.log_format,
            "log.format",
            parsed("log.format", log.format, cli::parse_log_format)?,
        );
        m.put(
            &mut args.log_level,
            "log.level",
            parsed("log.level", log.level, cli::parse_log_filter)?,
        );

        for (key, value, setting) in [
            (
                "store.subscribers",
                store.subscribers,
                &mut args.store.store_subscribers,
            ),
            ("store.locations", store.locations, &mut args.store_locations),
            ("store.records", store.records, &mut args.store_records),
        ] {
            m.put(setting, key, non_empty_text(key, value)?.map(Some));
        }
        m.put(
            &mut args.node_id,
            "store.node_id",
            parsed("store.node_id", store.node_id, cli::parse_node_id)?.map(Some),
        );

        for (key, value, setting) in [
            (
                "guard.ban_after_ip_failures",
                guard.ban_after_ip_failures,
                &mut args.ban_after_ip_failures,
            ),
            (
                "guard.ban_after_user_failures",
                guard.ban_after_user_failures,
                &mut args.ban_after_user_failures,
            ),
        ] {
            m.put(setting, key, number(key, value, limits::BAN_FAILURES)?);
        }
        let key = "guard.ban_window";
        m.put(
            &mut args.ban_window,
            key,
            number(key, guard.ban_window, limits::BAN_WINDOW)?,
        );
        let key = "guard.ban_time";
        m.put(&mut args.ban_time, key, number(key, guard.ban_time, limits::BAN_TIME)?);
        // An empty list is allowed: no trusted network, no blocked User-Agent.
        let key = "guard.trusted_networks";
        let networks = parsed_list(key, guard.trusted_networks, cli::parse_network)?;
        m.put(&mut args.trusted_networks, key, networks);
        let key = "guard.blocked_user_agents";
        let agents = parsed_list(key, guard.blocked_user_agents, cli::parse_user_agent)?;
        m.put(&mut args.blocked_user_agents, key, agents);
        for (key, value, setting, range) in [
            (
                "guard.source_rate",
                guard.source_rate,
                &mut args.source_rate,
                limits::SOURCE_RATE,
            ),
            (
                "guard.source_burst",
                guard.source_burst,
                &mut args.source_burst,
                limits::SOURCE_RATE,
            ),
            (
                "guard.overload_queue_delay",
                guard.overload_queue_delay,
                &mut args.overload_queue_delay,
                limits::OVERLOAD_QUEUE_DELAY,
            ),
            (
                "guard.retry_after",
                guard.retry_after,
                &mut args.retry_after,
                limits::RETRY_AFTER,
            ),
            (
                "guard.max_calls_per_user",
                guard.max_calls_per_user,
                &mut args.max_calls_per_user,
                limits::MAX_CALLS_PER_USER,
            ),
        ] {
            m.put(setting, key, number(key, value, range)?);
        }
        Ok(())
    }
}

/// The entries of a list flag that say something (`--trusted-networks ""` is the empty list).
fn non_blank(list: &[String]) -> Vec<String> {
    list.iter().filter(|s| !s.trim().is_empty()).cloned().collect()
}

/// Checks what spans several settings and builds what `serve` runs with.
pub fn serve_options(args: &ServeArgs) -> Result<ServeOptions, ConfigError> {
    let (min, max, default) = (args.min_expires, args.max_expires, args.default_expires);
    let order = "min_expires <= default_expires <= max_expires";
    if min > default {
        return Err(ConfigError::general(format!(
            "registrar.min_expires (--min-expires) {min} is above registrar.default_expires \
             (--default-expires) {default}; {order}"
        )));
    }
    if default > max {
        return Err(ConfigError::general(format!(
            "registrar.default_expires (--default-expires) {default} is above registrar.max_expires \
             (--max-expires) {max}; {order}"
        )));
    }
    if !args.http_listen.ip().is_loopback() && args.http_token.is_none() {
        return Err(ConfigError::general(format!(
            "http.listen (--http-listen) {} is not a loopback address, so the admin API needs a \
             bearer token: set http.token (--http-token), or listen on 127.0.0.1",
            args.http_listen
        )));
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(ConfigError::general(
            "tls.cert (--tls-cert) and tls.key (--tls-key) go together: give both or neither",
        ));
    }
    if !args.tls_listen.is_empty() && args.tls_cert.is_none() {
        return Err(ConfigError::general(
            "tls.listen (--tls-listen) needs tls.cert (--tls-cert) and tls.key (--tls-key)",
        ));
    }
    let tls_listen = match (&args.tls_cert, args.tls_listen.is_empty()) {
        (Some(_), true) => vec![SocketAddr::from(([0, 0, 0, 0], 5061))],
        _ => args.tls_listen.clone(),
    };
    let as_u32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(ServeOptions {
        server: server::ServerConfig {
            sip_listen: args.sip_listen.clone(),
            tls_listen,
            tls_cert: args.tls_cert.clone(),
            tls_key: args.tls_key.clone(),
            domain: args.store.domain.clone().unwrap_or_else(crate::serve::host_name),
            tcp_idle_timeout: Duration::from_secs(args.tcp_idle_timeout),
            max_connections_per_source: args.max_connections_per_source as usize,
            max_message_size: args.max_message_size as usize,
            data_dir: Some(args.store.data_dir.clone()),
            stores: store::StoreUrls {
                subscribers: args.store.store_subscribers.clone(),
                locations: args.store_locations.clone(),
                records: args.store_records.clone(),
            },
            node_id: args.node_id.clone().unwrap_or_default(),
            registration: server::registrar::Intervals {
                min: as_u32(min),
                max: as_u32(max),
                default: as_u32(default),
            },
            nonce_lifetime: Duration::from_secs(args.nonce_lifetime),
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
            trace: server::config::TraceSettings {
                enabled: !args.no_trace,
                capacity: args.trace_capacity as usize,
                hep_collector: args.hep_collector,
                hep_agent_id: as_u32(args.hep_agent_id),
            },
            guard: server::GuardSettings {
                ban_after_ip_failures: as_u32(args.ban_after_ip_failures),
                ban_after_user_failures: as_u32(args.ban_after_user_failures),
                ban_window: Duration::from_secs(args.ban_window),
                ban_time: Duration::from_secs(args.ban_time),
                trusted_networks: non_blank(&args.trusted_networks),
                blocked_user_agents: non_blank(&args.blocked_user_agents),
                source_rate: as_u32(args.source_rate),
                source_burst: as_u32(args.source_burst),
                overload_queue_delay: Duration::from_millis(args.overload_queue_delay),
                retry_after: as_u32(args.retry_after),
                max_calls_per_user: as_u32(args.max_calls_per_user),
            },
            ..server::ServerConfig::default()
        },
        http: HttpSettings {
            listen: args.http_listen,
            token: args.http_token.as_ref().map(|t| t.expose().to_owned()),
        },
        log: LogSettings {
            format: args.log_format,
            level: args.log_level.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    const EXAMPLE: &str = include_str!("../../../switchboard.example.toml");

    /// The merged settings for a command line (after `serve`) and a config file text.
    fn settings(flags: &[&str], file: Option<&str>) -> Result<ServeArgs, ConfigError> {
        let mut argv = vec!["switchboard", "serve"];
        argv.extend_from_slice(flags);
        let matches = Cli::command().try_get_matches_from(argv).expect("valid flags");
        let Command::Serve(args) = Cli::from_arg_matches(&matches).expect("valid").command else {
            panic!("serve")
        };
        let serve = matches.subcommand_matches("serve").expect("serve");
        match file {
            None => merge_config_file(*args, serve),
            Some(text) => {
                let given = |key: &str| given_on_command_line(serve, key);
                let mut args = *args;
                parse(text)?.apply(&mut args, &given)?;
                Ok(args)
            }
        }
    }

    fn error(flags: &[&str], file: &str) -> ConfigError {
        match settings(flags, Some(file)) {
            Ok(_) => panic!("{file:?} was accepted"),
            Err(e) => e,
        }
    }

    fn options(args: &ServeArgs) -> String {
        format!("{:?}", serve_options(args).expect("valid settings"))
    }

    #[test]
    fn every_serve_flag_has_a_key() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").expect("serve");
        let ids: Vec<&str> = serve
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !["config", "help"].contains(id))
            .collect();
        for id in &ids {
            assert!(KEYS.iter().any(|(i, _)| i == id), "--{id} has no config key");
        }
        for (id, key) in KEYS {
            assert!(ids.contains(id), "{key}: no flag {id}");
        }
    }

    /// The example with its commented-out keys (`# key = value`) made active.
    fn example_with_every_key() -> String {
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_key_is_in_the_example_and_the_readme() {
        let full = example_with_every_key();
        let table: toml::Table = toml::from_str(&full).expect("the example is TOML");
        let readme = include_str!("../../../README.md");
        for (id, key) in KEYS {
            let found = match key.split_once('.') {
                Some((section, name)) => table.get(section).and_then(|s| s.get(name)),
                None => table.get(*key),
            };
            assert!(found.is_some(), "{key} is not in switchboard.example.toml");
            assert!(readme.contains(&format!("`{key}`")), "{key} is not in the README");
            let flag = format!("--{}", id.replace('_', "-"));
            assert!(readme.contains(&flag), "{flag} is not in the README");
        }
        // The values shown in comments are valid too.
        settings(&[], Some(&full)).expect("the example's commented values are valid");
    }

    #[test]
    fn the_example_gives_the_defaults() {
        let defaults = settings(&[], None).expect("defaults");
        let example = settings(&[], Some(EXAMPLE)).expect("the example loads");
        assert_eq!(options(&example), options(&defaults));
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let file = r#"
            domain = "file.example"
            [sip]
            listen = ["127.0.0.2:5060"]
            udp_sockets = 3
            [media]
            enabled = false
            rtp_ports = "30000-31000"
            [registrar]
            min_expires = 30
            [trace]
            enabled = false
            [log]
            format = "json"
        "#;
        let only_file = settings(&[], Some(file)).expect("valid");
        assert_eq!(only_file.store.domain.as_deref(), Some("file.example"));
        assert_eq!(
            only_file.sip_listen,
            ["127.0.0.2:5060".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(only_file.udp_sockets, 3);
        assert!(only_file.no_media && only_file.no_trace);
        assert_eq!(only_file.rtp_ports, (30000, 31000));
        assert_eq!(only_file.min_expires, 30);
        assert_eq!(only_file.max_expires, 3600, "untouched keys keep their defaults");
        assert_eq!(only_file.log_format, crate::serve::LogFormat::Json);

        let both = settings(
            &[
                "--domain",
                "flag.example",
                "--sip-listen",
                "127.0.0.1:0",
                "--udp-sockets",
                "0",
                "--rtp-ports",
                "40000-41000",
                "--log-format",
                "text",
            ],
            Some(file),
        )
        .expect("valid");
        assert_eq!(both.store.domain.as_deref(), Some("flag.example"));
        assert_eq!(both.sip_listen, ["127.0.0.1:0".parse::<SocketAddr>().expect("addr")]);
        assert_eq!(both.udp_sockets, 0, "a flag equal to the default still wins");
        assert_eq!(both.rtp_ports, (40000, 41000));
        assert_eq!(both.log_format, crate::serve::LogFormat::Text);
        assert!(
            both.no_media,
            "keys without a flag on the command line still come from the file"
        );

        let no_media = settings(&["--no-media"], Some("[media]\nenabled = true")).expect("valid");
        assert!(no_media.no_media);
    }

    #[test]
    fn errors_name_the_key() {
        for (file, key, why) in [
            (
                "[sip]\nlisten = [\"0.0.0.0:5060\", \"nowhere\"]",
                "sip.listen",
                "invalid socket address",
            ),
            ("[sip]\nlisten = []", "sip.listen", "the list is empty"),
            ("[sip]\nlisten = \"0.0.0.0:5060\"", "sip.listen", "expected a list"),
            ("[sip]\nlistn = [\"0.0.0.0:5060\"]", "sip.listn", "unknown key"),
            ("[sipp]\nlisten = 1", "sipp", "unknown key"),
            ("colour = \"blue\"", "colour", "unknown key"),
            (
                "[media]\nrtp_ports = \"100-200\"",
                "media.rtp_ports",
                "\"100-200\": the range must start at 1024",
            ),
            (
                "[media]\nrtp_ports = \"2000-1000\"",
                "media.rtp_ports",
                "LO must be below HI",
            ),
            (
                "[media]\ntimeout = \"60\"",
                "media.timeout",
                "invalid type: string \"60\", expected a whole number",
            ),
            ("[media]\ntimeout = 0", "media.timeout", "0 is not in 1..=86400"),
            ("[media]\ntimeout = -5", "media.timeout", "-5"),
            ("[media]\naddress = \"10.0.0\"", "media.address", "invalid IP address"),
            (
                "[media]\ncodecs = [\"PCMU\", \"bad codec\"]",
                "media.codecs",
                "\"bad codec\"",
            ),
            ("[media]\nenabled = \"yes\"", "media.enabled", "expected a boolean"),
            ("sip = 5", "sip", "expected a table of [sip] settings"),
            (
                "[registrar]\ndigest_algorithms = [\"SHA-512\"]",
                "registrar.digest_algorithms",
                "MD5 or SHA-256",
            ),
            ("[registrar]\nmin_expires = 0", "registrar.min_expires", "not in 1..="),
            (
                "[trace]\nhep_collector = \"homer\"",
                "trace.hep_collector",
                "invalid socket address",
            ),
            (
                "[trace]\nhep_agent_id = 4294967296",
                "trace.hep_agent_id",
                "not in 0..=4294967295",
            ),
            ("[log]\nformat = \"xml\"", "log.format", "text or json"),
            ("[log]\nlevel = \"info,,=x=\"", "log.level", "not a log filter"),
            (
                "[http]\nlisten = \"localhost\"",
                "http.listen",
                "invalid socket address",
            ),
            ("[http]\ntoken = \"has space\"", "http.token", "printable ASCII"),
            ("[store]\nsubscribers = \"\"", "store.subscribers", "empty"),
            ("data_dir = \"\"", "data_dir", "empty"),
            (
                "[sip]\nmax_message_size = 100",
                "sip.max_message_size",
                "not in 1024..=",
            ),
        ] {
            let e = error(&[], file);
            assert_eq!(e.key_name(), Some(key), "{file:?}: {e}");
            assert!(e.to_string().contains(why), "{file:?}: {e}");
        }
        let syntax = error(&[], "[sip]\nlisten = [");
        assert!(syntax.to_string().starts_with("line 2"), "{syntax}");
    }

    #[test]
    fn a_bad_value_is_refused_even_when_a_flag_overrides_it() {
        let e = error(&["--rtp-ports", "30000-31000"], "[media]\nrtp_ports = \"1-2\"");
        assert_eq!(e.key_name(), Some("media.rtp_ports"));
    }

    #[test]
    fn the_token_never_shows() {
        let e = error(&[], "[http]\ntoken = \"secret value\"");
        assert!(!e.to_string().contains("secret value"), "{e}");
        let args = settings(&[], Some("[http]\ntoken = \"s3cret-token\"")).expect("valid");
        assert!(!format!("{args:?}").contains("s3cret-token"));
        assert_eq!(
            serve_options(&args).expect("valid").http.token.as_deref(),
            Some("s3cret-token")
        );
    }

    #[test]
    fn settings_that_must_agree() {
        let expires = settings(&["--min-expires", "120", "--default-expires", "60"], None).expect("flags");
        let e = serve_options(&expires).expect_err("min above default");
        assert!(e.to_string().contains("registrar.min_expires"), "{e}");
        let expires = settings(&[], Some("[registrar]\ndefault_expires = 7200")).expect("file");
        assert!(serve_options(&expires).is_err(), "default above max");

        let open = settings(&["--http-listen", "0.0.0.0:8080"], None).expect("flags");
        let e = serve_options(&open).expect_err("no token");
        assert!(
            e.to_string().contains("http.token") && e.to_string().contains("--http-token"),
            "{e}"
        );
        let tokened = settings(&["--http-listen", "0.0.0.0:8080", "--http-token", "t0ken-t0ken"], None);
        assert!(serve_options(&tokened.expect("flags")).is_ok());
        let in_file = settings(&[], Some("[http]\nlisten = \"[::]:8080\"\ntoken = \"t0ken-t0ken\"")).expect("file");
        assert!(serve_options(&in_file).is_ok());

        let half_tls = settings(&[], Some("[tls]\ncert = \"c.pem\"")).expect("file");
        assert!(serve_options(&half_tls).is_err());
        let tls = settings(&[], Some("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"")).expect("file");
        let built = serve_options(&tls).expect("valid");
        assert_eq!(
            built.server.tls_listen,
            ["0.0.0.0:5061".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn guard_settings_from_flags_and_file() {
        let defaults = serve_options(&settings(&[], None).expect("defaults")).expect("valid");
        let g = &defaults.server.guard;
        let built_in = server::GuardSettings::default();
        assert_eq!(
            (
                g.ban_after_ip_failures,
                g.ban_after_user_failures,
                g.ban_window,
                g.ban_time
            ),
            (
                built_in.ban_after_ip_failures,
                built_in.ban_after_user_failures,
                built_in.ban_window,
                built_in.ban_time
            )
        );
        assert_eq!(g.trusted_networks, built_in.trusted_networks);
        assert_eq!(g.blocked_user_agents, built_in.blocked_user_agents);

        let flags = settings(
            &[
                "--ban-after-ip-failures",
                "5",
                "--ban-after-user-failures",
                "0",
                "--ban-window",
                "60",
                "--ban-time",
                "120",
                "--trusted-networks",
                "",
                "--blocked-user-agents",
                "",
            ],
            None,
        )
        .expect("valid");
        let built = serve_options(&flags).expect("valid");
        let g = &built.server.guard;
        assert_eq!((g.ban_after_ip_failures, g.ban_after_user_failures), (5, 0));
        assert_eq!(
            (g.ban_window, g.ban_time),
            (Duration::from_secs(60), Duration::from_secs(120))
        );
        assert!(g.trusted_networks.is_empty(), "an empty flag empties the list");
        assert!(g.blocked_user_agents.is_empty());

        let file = "[guard]\nban_time = 86400\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
                    blocked_user_agents = []\n";
        let from_file = serve_options(&settings(&[], Some(file)).expect("valid")).expect("valid");
        let g = &from_file.server.guard;
        assert_eq!(g.ban_time, Duration::from_secs(86_400));
        assert_eq!(g.trusted_networks, ["10.0.0.0/8", "2001:db8::/32"]);
        assert!(g.blocked_user_agents.is_empty());
        let both = settings(&["--trusted-networks", "192.0.2.0/24,198.51.100.1"], Some(file)).expect("valid");
        assert_eq!(both.trusted_networks, ["192.0.2.0/24", "198.51.100.1"]);

        for (file, key, why) in [
            ("[guard]\nban_window = 0", "guard.ban_window", "not in 1..="),
            ("[guard]\nban_time = 99999999", "guard.ban_time", "not in 1..="),
            (
                "[guard]\nban_after_ip_failures = -1",
                "guard.ban_after_ip_failures",
                "-1",
            ),
            (
                "[guard]\ntrusted_networks = [\"10.0.0.0/33\"]",
                "guard.trusted_networks",
                "prefix length",
            ),
            (
                "[guard]\ntrusted_networks = [\"office\"]",
                "guard.trusted_networks",
                "not an IP address",
            ),
            ("[guard]\nban_tme = 5", "guard.ban_tme", "unknown key"),
        ] {
            let e = error(&[], file);
            assert_eq!(e.key_name(), Some(key), "{file:?}: {e}");
            assert!(e.to_string().contains(why), "{file:?}: {e}");
        }
        for bad in [
            ["--trusted-networks", "10.0.0.0/40"],
            ["--ban-window", "0"],
            ["--ban-after-ip-failures", "x"],
        ] {
            let mut argv = vec!["switchboard", "serve"];
            argv.extend(bad);
            assert!(Cli::command().try_get_matches_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_flags_reach_the_server_settings() {
        let args = settings(
            &[
                "--no-trace",
                "--trace-capacity",
                "500",
                "--hep-collector",
                "127.0.0.1:9060",
                "--hep-agent-id",
                "7",
                "--min-expires",
                "30",
                "--max-expires",
                "7200",
                "--default-expires",
                "600",
                "--nonce-lifetime",
                "90",
                "--log-level",
                "debug",
            ],
            None,
        )
        .expect("valid");
        let built = serve_options(&args).expect("valid");
        let trace = &built.server.trace;
        assert!(!trace.enabled);
        assert_eq!((trace.capacity, trace.hep_agent_id), (500, 7));
        assert_eq!(trace.hep_collector, Some("127.0.0.1:9060".parse().expect("addr")));
        let r = built.server.registration;
        assert_eq!((r.min, r.max, r.default), (30, 7200, 600));
        assert_eq!(built.server.nonce_lifetime, Duration::from_secs(90));
        assert_eq!(built.log.level, "debug");
    }
}
