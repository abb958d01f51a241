//! The `walkv` binary: parse the command line, run the command, exit with its code.
//! Each command lives in [`walkv::commands`]; the exit codes in [`walkv::cli::exit`].

use std::process::ExitCode;
use walkv::cli::{self, Command, exit};
use walkv::commands;

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    let command = match cli::parse(args, &|name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(e) => {
            walkv::log!("{e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = match &command {
        Command::Serve(config) => commands::serve(config),
        Command::Get { addr, token, key, etag, wait } => {
            commands::get(addr, token, key, *etag, *wait)
        }
        Command::Watch { addr, token, prefix, from, format } => {
            commands::watch(addr, token, prefix, *from, *format)
        }
        Command::Set { addr, token, key, value, condition, ttl } => {
            commands::set(addr, token, key, value.as_deref(), *condition, ttl.as_deref())
        }
        Command::Incr { addr, token, key, delta } => commands::incr(addr, token, key, *delta),
        Command::Txn { addr, token, file } => commands::txn(addr, token, file.as_deref()),
        Command::Delete { addr, token, key, condition } => {
            commands::delete(addr, token, key, *condition)
        }
        Command::List { addr, token, prefix, null } => commands::list(addr, token, prefix, *null),
        Command::Dump { data_dir, from_seq, limit } => commands::dump(data_dir, *from_seq, *limit),
        Command::Export { data_dir, format } => commands::export(data_dir, *format),
        Command::Import { addr, token, file } => commands::import(addr, token, file.as_deref()),
        Command::Compact { addr, token } => commands::compact(addr, token),
        Command::Check { data_dir } => commands::check(data_dir),
        Command::Repair { data_dir, mode } => commands::repair(data_dir, *mode),
        Command::Help(text) => print(text),
        Command::Version => print(&format!("walkv {}\n", env!("CARGO_PKG_VERSION"))),
    };
    ExitCode::from(code)
}

/// Prints to stdout; a closed stdout (`walkv --help | head -1`) is not an error worth a panic.
fn print(text: &str) -> u8 {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    exit::OK
}
