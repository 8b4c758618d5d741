//! `switchboard user add|passwd|remove|list`: provisions subscribers in the store a server uses
//! (the same `--data-dir`/`--store-subscribers` and `--domain` as `serve`). Works whether or not
//! a server runs on the same store: the embedded store is SQLite in WAL mode.

use std::process::ExitCode;

use store::{SqliteStore, StoreError, Subscriber, SubscriberStore};

use crate::cli::{StoreArgs, UserCommand};

/// Opens the subscriber store the flags name.
pub fn open(args: &StoreArgs) -> Result<SqliteStore, String> {
    match args.store_subscribers.as_deref() {
        None => SqliteStore::open_in(&args.data_dir).map_err(|e| e.to_string()),
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) => SqliteStore::open(std::path::Path::new(path)).map_err(|e| e.to_string()),
            None => Err(format!(
                "--store-subscribers {url}: only sqlite:// is implemented yet (issue #9)"
            )),
        },
    }
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
    };
    let store = match open(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {what}: {e}");
            return if e.contains("issue #9") {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let domain = domain(args);
    let result: Result<String, (String, StoreError)> = match &cmd {
        UserCommand::Add { ext, password, .. } => Subscriber::new(ext, &domain, password)
            .and_then(|s| store.add(&s))
            .map(|()| format!("added {ext}@{domain}"))
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::Passwd { ext, password, .. } => Subscriber::new(ext, &domain, password)
            .and_then(|s| store.update(&s))
            .map(|()| format!("password changed for {ext}@{domain}"))
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::Remove { ext, .. } => store
            .remove(ext, &domain)
            .map(|()| format!("removed {ext}@{domain}"))
            .map_err(|e| (format!("{ext}@{domain}"), e)),
        UserCommand::List { store: args } => store
            .list(args.domain.as_deref())
            .map(|all| {
                all.iter()
                    .map(|s| format!("{}@{}", s.user, s.domain))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .map_err(|e| (domain.clone(), e)),
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
