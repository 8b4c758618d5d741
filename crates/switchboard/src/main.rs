//! The `switchboard` binary: parses the command line and runs the command. Commands whose issue
//! has not landed yet say so and exit with status 2.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, UserCommand};

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
                (args.store.store_subscribers.is_some(), "--store-subscribers", "#5/#9"),
                (args.store_locations.is_some(), "--store-locations", "#5/#9"),
                (args.store_records.is_some(), "--store-records", "#6/#9"),
            ] {
                if given {
                    return not_implemented(&format!("serve {what}"), &format!("issue {issue}"));
                }
            }
            let _ = args;
            not_implemented("serve", "issue #4: transports and transactions")
        }
        Command::User(cmd) => {
            let what = match cmd {
                UserCommand::Add { .. } => "user add",
                UserCommand::Passwd { .. } => "user passwd",
                UserCommand::Remove { .. } => "user remove",
                UserCommand::List { .. } => "user list",
            };
            not_implemented(what, "issue #5: registrar and subscriber store")
        }
    }
}
