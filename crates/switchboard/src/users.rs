//! `switchboard user add|passwd|remove|list|import`: provisions subscribers in the store a server
//! uses (the same `--data-dir`/`--store-subscribers` and `--domain` as `serve`). Works whether or
//! not a server runs on the same store: the embedded store is SQLite in WAL mode. `import` reads a
//! CSV of `ext,password` rows, shows its progress on stderr and never prints a password.
//! `--tls-only` on `add`/`passwd` keeps a user to TLS (see the registrar and proxy); `list` shows
//! such users with ` tls-only` after the address; a password change or import keeps the flag.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use store::{Put, StoreError, Subscriber, SubscriberStore};

use crate::cli::{StoreArgs, UserCommand};

/// Opens the subscriber store the flags name (the embedded one, or `--store-subscribers`).
pub fn open(args: &StoreArgs) -> Result<std::sync::Arc<dyn SubscriberStore>, StoreError> {
    store::open_subscribers(args.store_subscribers.as_deref(), &args.data_dir)
}

fn domain(args: &StoreArgs) -> String {
    args.domain.clone().unwrap_or_else(crate::serve::host_name)
}

pub fn run(cmd: UserCommand) -> ExitCode {
    let (what, args) = match &cmd {
        UserCommand::Add { store, .. } => ("user add", store),
        UserCommand::Passwd { store, .. } => ("user passwd", store),
        UserCommand::Remove { store, .. } => ("user remove", store),
        UserCommand::List { store } => ("user list", store),
        UserCommand::Import { store, .. } => ("user import", store),
    };
    let store = match open(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {what}: {e}");
            // A URL that names no usable store is a usage error; an unreachable one is not.
            return if matches!(e, StoreError::Invalid(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let domain = domain(args);
    if let UserCommand::Import { file, .. } = &cmd {
        return import(&store, &domain, file);
    }
    let result: Result<String, (String, StoreError)> = match &cmd {
        UserCommand::Add {
            ext,
            password,
            tls,
            allow,
            ..
        } => Subscriber::new(ext, &domain, password)
            .map(|s| {
                s.with_tls_only(tls.value().unwrap_or(false))
                    .with_allowed_networks(allow.value().unwrap_or_default())
            })
            .and_then(|s| store.add(&s).map(|()| s))
            .map(|s| format!("added {ext}@{domain}{}", flags(&s)))
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::Passwd {
            ext,
            password,
            tls,
            allow,
            ..
        } => passwd(&store, ext, &domain, password.as_deref(), tls.value(), allow.value())
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::Remove { ext, .. } => store
            .remove(ext, &domain)
            .map(|()| format!("removed {ext}@{domain}"))
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::List { store: args } => store
            .list(args.domain.as_deref())
            .map(|all| {
                all.iter()
                    .map(|s| format!("{}@{}{}", s.user, s.domain, flags(s)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .map_err(|e| (domain.clone(), e)),
        UserCommand::Import { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err((who, e)) => {
            eprintln!("switchboard: {what} {who}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `user passwd`: a new password, a new TLS-only flag, or both (the password first: an unknown
/// user is reported before anything changes).
fn passwd(
    store: &impl SubscriberStore,
    ext: &str,
    domain: &str,
    password: Option<&str>,
    tls_only: Option<bool>,
    allowed_networks: Option<Vec<String>>,
) -> Result<String, StoreError> {
    let mut done = Vec::new();
    if let Some(password) = password {
        store.update(&Subscriber::new(ext, domain, password)?)?;
        done.push("password changed");
    }
    if let Some(on) = tls_only {
        store.set_tls_only(ext, domain, on)?;
        done.push(if on { "tls-only on" } else { "tls-only off" });
    }
    if let Some(networks) = allowed_networks {
        store.set_allowed_networks(ext, domain, &networks)?;
        done.push(if networks.is_empty() {
            "allowed from anywhere"
        } else {
            "allowed networks set"
        });
    }
    Ok(format!("{} for {ext}@{domain}", done.join(", ")))
}

/// The flags of a user as `user list` and `user add` show them: ` tls-only`,
/// ` allow-from=198.51.100.0/24,...`.
fn flags(s: &Subscriber) -> String {
    let mut out = String::new();
    if s.tls_only {
        out += " tls-only";
    }
    if !s.allowed_networks.is_empty() {
        out += &format!(" allow-from={}", s.allowed_networks.join(","));
    }
    out
}

/// What an import did, row by row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ImportCounts {
    added: u64,
    updated: u64,
    /// Rows whose password the user has already.
    unchanged: u64,
    /// Bad rows, reported with their line number.
    skipped: u64,
}

impl ImportCounts {
    fn imported(&self) -> u64 {
        self.added + self.updated + self.unchanged
    }
}

/// Progress on stderr: one updating line on a terminal, else a line every `LINE_EVERY` users.
struct Progress {
    terminal: bool,
    /// Whether an updating line is on screen (to be cleared before other output).
    showing: bool,
    last_drawn: Instant,
    /// Lines printed so far when not on a terminal.
    lines_printed: u64,
}

impl Progress {
    const LINE_EVERY: u64 = 1000;
    const REDRAW: Duration = Duration::from_millis(100);

    fn new() -> Progress {
        Progress {
            lines_printed: 0,
            terminal: std::io::stderr().is_terminal(),
            showing: false,
            last_drawn: Instant::now(),
        }
    }

    /// After each imported row; `read` is the share of the file read so far, in percent.
    fn row_done(&mut self, counts: &ImportCounts, read: u64) {
        let done = counts.imported();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            if self.last_drawn.elapsed() >= Self::REDRAW {
                let skipped = counts.skipped;
                let _ = write!(
                    err,
                    "\r\x1b[2Kimported {done} users ({skipped} skipped), {read}% of the file"
                );
                let _ = err.flush();
                self.showing = true;
                self.last_drawn = Instant::now();
            }
        } else if done / Self::LINE_EVERY > self.lines_printed {
            // Counts move a batch at a time: one line per multiple passed.
            self.lines_printed = done / Self::LINE_EVERY;
            let _ = writeln!(err, "imported {} users", self.lines_printed * Self::LINE_EVERY);
        }
    }

    fn clear(&mut self) {
        if self.showing {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.showing = false;
        }
    }

    fn report(&mut self, line: u64, why: &str) {
        self.clear();
        eprintln!("switchboard: user import: line {line}: {why}; skipped");
    }
}

/// The header row `import` accepts and skips.
fn is_header(record: &csv::StringRecord) -> bool {
    record.len() == 2 && record[0].eq_ignore_ascii_case("ext") && record[1].eq_ignore_ascii_case("password")
}

/// Line numbers of CSV records: the csv crate places a record that follows blank or comment lines
/// at the first of them, so the record's own line is found from its start in the text.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Lines<'a> {
        Lines { text, pos: 0, line: 1 }
    }

    /// The line of the first byte at or after `start` (a line start) that is not on a blank or
    /// comment line.
    fn of_record_at(&mut self, start: usize) -> u64 {
        let mut at = start.min(self.text.len());
        while at < self.text.len() {
            match self.text[at] {
                b'\n' | b'\r' => at += 1,
                b'#' => {
                    at = self.text[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(self.text.len(), |nl| at + nl + 1)
                }
                _ => break,
            }
        }
        if at >= self.pos {
            self.line += self.text[self.pos..at].iter().filter(|&&b| b == b'\n').count() as u64;
            self.pos = at;
        }
        self.line
    }
}

/// `user import FILE`: adds the users of `file` that are new, changes the password of those that
/// exist. Bad rows are reported with their line number and skipped; the status is then 1.
fn import(store: &impl SubscriberStore, domain: &str, file: &Path) -> ExitCode {
    let started = Instant::now();
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("switchboard: user import: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let mut lines = Lines::new(&text);
    let mut counts = ImportCounts::default();
    let mut progress = Progress::new();
    let mut first_row = true;
    let mut record = csv::StringRecord::new();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    loop {
        let start = csv.position().byte() as usize;
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let start = e.position().map_or(start, |p| p.byte() as usize);
                counts.skipped += 1;
                progress.report(lines.of_record_at(start), "not a CSV row of text (ext,password)");
                continue;
            }
        }
        let line = lines.of_record_at(record.position().map_or(start, |p| p.byte() as usize));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if std::mem::take(&mut first_row) && is_header(&record) {
            continue;
        }
        if record.len() != 2 {
            counts.skipped += 1;
            let why = format!("expected 2 fields (ext,password), found {}", record.len());
            progress.report(line, &why);
            continue;
        }
        match Subscriber::new(&record[0], domain, &record[1]) {
            Ok(subscriber) => batch.push(subscriber),
            Err(e) => {
                counts.skipped += 1;
                progress.report(line, &e.to_string());
                continue;
            }
        }
        if batch.len() >= IMPORT_BATCH
            && let Err(e) = flush(store, &mut batch, &mut counts)
        {
            progress.clear();
            eprintln!("switchboard: user import: up to line {line}: {e}; stopped");
            print_summary(&counts, started);
            return ExitCode::FAILURE;
        }
        let read = csv.position().byte() * 100 / (text.len() as u64).max(1);
        progress.row_done(&counts, read);
    }
    if let Err(e) = flush(store, &mut batch, &mut counts) {
        progress.clear();
        eprintln!("switchboard: user import: {e}; stopped");
        print_summary(&counts, started);
        return ExitCode::FAILURE;
    }
    progress.clear();
    print_summary(&counts, started);
    if counts.skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_summary(counts: &ImportCounts, started: Instant) {
    println!(
        "imported {} users ({} added, {} updated, {} unchanged, {} skipped) in {:.1} s",
        counts.imported(),
        counts.added,
        counts.updated,
        counts.unchanged,
        counts.skipped,
        started.elapsed().as_secs_f64()
    );
}

/// Rows written per store transaction: one commit (fsync) per batch instead of per user.
const IMPORT_BATCH: usize = 500;

/// Writes the rows read so far.
fn flush(
    store: &impl SubscriberStore,
    batch: &mut Vec<Subscriber>,
    counts: &mut ImportCounts,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    for put in store.put_many(batch)? {
        match put {
            Put::Added => counts.added += 1,
            Put::Updated => counts.updated += 1,
            Put::Unchanged => counts.unchanged += 1,
        }
    }
    batch.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("switchboard-users-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn import_adds_updates_and_skips_bad_rows() {
        let dir = temp_dir("import");
        let store = store::SqliteStore::open_in(&dir).expect("store");
        store
            .add(&Subscriber::new("1001", "example.com", "old").expect("valid"))
            .expect("add");
        store
            .add(&Subscriber::new("1002", "example.com", "same").expect("valid"))
            .expect("add");
        let csv = dir.join("users.csv");
        std::fs::write(
            &csv,
            "ext,password\n# a comment\n1000,pw-1000\n\n1001,new\n1002,same\nno spaces,x\n1003\n1004, spaced \n1005,\n",
        )
        .expect("write");
        assert_eq!(import(&store, "example.com", &csv), ExitCode::FAILURE);
        let users: Vec<String> = store
            .list(Some("example.com"))
            .expect("list")
            .into_iter()
            .map(|s| s.user)
            .collect();
        assert_eq!(users, ["1000", "1001", "1002", "1004"]);
        let changed = store.get("1001", "example.com").expect("get").expect("there");
        assert_eq!(changed, Subscriber::new("1001", "example.com", "new").expect("valid"));
        let trimmed = store.get("1004", "example.com").expect("get").expect("there");
        assert_eq!(
            trimmed,
            Subscriber::new("1004", "example.com", "spaced").expect("valid")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_lines_skip_blank_and_comment_lines() {
        let text = b"a,b\n\n# note\n\r\nc,d\ne,f";
        let mut lines = Lines::new(text);
        assert_eq!(lines.of_record_at(0), 1);
        assert_eq!(lines.of_record_at(4), 5);
        assert_eq!(lines.of_record_at(text.len() - 3), 6);
    }

    #[test]
    fn only_a_first_row_is_a_header() {
        let header = csv::StringRecord::from(vec!["Ext", "Password"]);
        assert!(is_header(&header));
        assert!(!is_header(&csv::StringRecord::from(vec!["1000", "password"])));
    }
}
