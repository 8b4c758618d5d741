//! The `switchboard` binary: parses the command line and runs the command. `serve` settings come
//! from the flags and the config file (`config_file.rs`); a bad setting stops start-up with
//! status 2, as does an option whose issue has not landed yet.

mod ban;
mod cert;
mod cli;
mod config_file;
mod serve;
mod users;

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use cli::{Cli, Command, ServeArgs};

/// mimalloc: messages are allocated on the receive threads and freed on the timer and commit
/// threads; glibc's malloc pays heavily for those cross-thread frees (about a fifth of the
/// server's CPU time under a REGISTER load, measured with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status of a refused start: bad flags or config, or an option not implemented yet.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    // The matches are kept: they tell a flag given on the command line from its default.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => match matches.subcommand_matches("serve") {
            Some(serve_matches) => serve(*args, serve_matches),
            None => unreachable!("the serve subcommand has its matches"),
        },
        Command::User(cmd) => users::run(cmd),
        Command::Cert(cmd) => cert::run(cmd),
        Command::Ban(cmd) => ban::run(cmd),
    }
}

fn serve(args: ServeArgs, matches: &ArgMatches) -> ExitCode {
    let args = match config_file::merge_config_file(args, matches) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    match config_file::serve_options(&args) {
        Ok(options) => serve::run(options),
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}
