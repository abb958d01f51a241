//! What each command does, and which exit code it ends with (numbers in [`crate::cli::exit`]).
//!
//! Messages go to standard error prefixed with `walkv:`; standard output carries only data (the
//! value bytes of `get`, the report of `check` and `repair`), so `walkv get k > file` is exact.

use crate::auth::{self, TokenSource};
use crate::cli::exit;
use crate::client::{self, ClientError, Reply};
use crate::error::Error;
use crate::server::{self, Config, Outcome};
use crate::store::{self, wal_path};
use crate::wal::{self, Op, Tail};
use std::io::{Read, Write};
use std::path::Path;

/// `println!` that ignores a closed stdout (`walkv check | head -1` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `walkv serve`. A token that cannot be loaded, or an open address without a token, is refused
/// before anything is opened (exit 2).
pub fn serve(config: &Config) -> u8 {
    let auth = match config.token.load() {
        Ok(auth) => auth,
        Err(e) => {
            crate::log!("{e}");
            return exit::USAGE;
        }
    };
    if let Err(e) = auth::check_bind(&config.bind, &auth, config.insecure_open) {
        crate::log!("{e}");
        return exit::USAGE;
    }
    match server::run(config, &auth) {
        Ok(Outcome::Stopped) => exit::OK,
        Ok(Outcome::ListenerFailed(_)) => exit::LISTENER_FAILED,
        Ok(Outcome::LogFailed) => exit::LOG_FAILED,
        Ok(Outcome::ThreadPanicked) => exit::PANICKED,
        Err(e) => {
            crate::log!("{e}");
            exit::for_error(&e)
        }
    }
}

/// The `Authorization` header a client command sends, or the exit code if the token is bad.
fn auth_header(token: &TokenSource) -> Result<Option<String>, u8> {
    token.load().map(|auth| auth.header_value()).map_err(|e| {
        crate::log!("{e}");
        exit::USAGE
    })
}

/// `walkv get KEY`: the value's exact bytes on standard output.
pub fn get(addr: &str, token: &TokenSource, key: &[u8]) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let target = format!("/v1/{}?raw", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "GET", &target, b""), |reply| {
        let mut out = std::io::stdout().lock();
        match out.write_all(&reply.body).and_then(|_| out.flush()) {
            Ok(()) => exit::OK,
            Err(e) => {
                crate::log!("cannot write to standard output: {e}");
                exit::FAILED
            }
        }
    })
}

/// `walkv set KEY VALUE` (`value: None` reads standard input).
pub fn set(addr: &str, token: &TokenSource, key: &[u8], value: Option<&[u8]>) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let stdin_value;
    let value = match value {
        Some(v) => v,
        None => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().lock().read_to_end(&mut buf) {
                crate::log!("cannot read the value from standard input: {e}");
                return exit::FAILED;
            }
            stdin_value = buf;
            &stdin_value
        }
    };
    let target = format!("/v1/{}", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "PUT", &target, value), |_| exit::OK)
}

/// `walkv delete KEY`.
pub fn delete(addr: &str, token: &TokenSource, key: &[u8]) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let target = format!("/v1/{}", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "DELETE", &target, b""), |_| exit::OK)
}

/// Maps a client result to an exit code, running `on_success` for a 2xx.
fn finish(result: Result<Reply, ClientError>, on_success: impl FnOnce(Reply) -> u8) -> u8 {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            crate::log!("{e}");
            return match e {
                ClientError::Connect { .. } => exit::UNAVAILABLE,
                _ => exit::SERVER_ERROR,
            };
        }
    };
    let message = String::from_utf8_lossy(&reply.body);
    match reply.status {
        200..=299 => on_success(reply),
        404 => {
            crate::log!("key not found");
            exit::NOT_FOUND
        }
        400..=499 => {
            crate::log!("the server refused the request ({}): {message}", reply.status);
            exit::REJECTED
        }
        status => {
            crate::log!("the server failed ({status}): {message}");
            exit::SERVER_ERROR
        }
    }
}

/// `walkv check`: reads the log, reports, changes nothing.
pub fn check(data_dir: &Path) -> u8 {
    let Some(path) = existing_log(data_dir) else {
        return exit::FAILED;
    };
    let (mut sets, mut deletes) = (0u64, 0u64);
    let scan = match wal::scan(&path, |r| match r.op {
        Op::Set => sets += 1,
        Op::Delete => deletes += 1,
    }) {
        Ok(scan) => scan,
        Err(e) => {
            crate::log!("{e}");
            return if matches!(e, Error::Corrupt { .. }) { exit::CORRUPT } else { exit::FAILED };
        }
    };
    say!(
        "{}: format {}, {} records ({sets} sets, {deletes} deletes), last seq {}, {} bytes",
        path.display(),
        wal::VERSION,
        scan.records,
        scan.last_seq,
        scan.file_len
    );
    let dir = data_dir.display();
    match &scan.tail {
        Tail::Clean => {
            say!("ok: the log is clean");
            exit::OK
        }
        Tail::Reserved => {
            say!(
                "ok: the log is clean; the {} bytes after offset {} are zeros a server reserved \
                 ahead of it (released at the next start)",
                scan.file_len - scan.end,
                scan.end
            );
            exit::OK
        }
        Tail::Torn { reason } => {
            say!(
                "torn tail: {} bytes after offset {} hold no valid record ({reason}); the server \
                 trims them at startup (they were never acknowledged), or run `walkv repair \
                 --data-dir {dir}`",
                scan.file_len - scan.end,
                scan.end
            );
            exit::TORN
        }
        Tail::Corrupt { reason, next_valid } => {
            let next = next_valid.map(|at| format!("; a valid record follows at offset {at}"));
            say!(
                "corrupt at offset {}: {reason}{}; the server will not start. Run `walkv repair \
                 --data-dir {dir}` to cut the log there (the cut bytes are kept in a side file)",
                scan.end,
                next.unwrap_or_default()
            );
            exit::CORRUPT
        }
    }
}

/// The log's path in `data_dir`, or `None` (having said so) if there is no log there.
fn existing_log(data_dir: &Path) -> Option<std::path::PathBuf> {
    let path = wal_path(data_dir);
    if !path.exists() {
        crate::log!("there is no log at {}", path.display());
        return None;
    }
    Some(path)
}

/// `walkv repair`: cuts the log at its first damage and says what was dropped.
pub fn repair(data_dir: &Path) -> u8 {
    let Some(path) = existing_log(data_dir) else {
        return exit::FAILED;
    };
    let result = store::lock_data_dir(data_dir).and_then(|_lock| wal::repair(&path));
    let repair = match result {
        Ok(repair) => repair,
        Err(e) => {
            crate::log!("{e}");
            return exit::FAILED;
        }
    };
    let scan = &repair.scan;
    let Some(side) = &repair.side_file else {
        say!("{}: clean ({} records); nothing to repair", path.display(), scan.records);
        return exit::OK;
    };
    let cut = match std::fs::read(side) {
        Ok(bytes) => bytes,
        Err(e) => {
            crate::log!("cut the log but cannot read back {}: {e}", side.display());
            return exit::FAILED;
        }
    };
    say!(
        "{}: cut at offset {} after {} valid records (last seq {}); dropped {} bytes, saved in {}",
        path.display(),
        scan.end,
        scan.records,
        scan.last_seq,
        cut.len(),
        side.display()
    );
    let found = wal::records_in(&cut);
    say!("the dropped bytes hold {} record(s) that still check out:", found.len());
    for (at, r) in &found {
        say!(
            "  offset {}: seq {} {:?} key {:?} ({} value bytes)",
            scan.end + *at as u64,
            r.seq,
            r.op,
            String::from_utf8_lossy(r.key),
            r.value.len()
        );
    }
    exit::OK
}
