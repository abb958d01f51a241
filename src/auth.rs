//! Access control: an optional shared secret, and the rule that an open server is a choice.
//!
//! Exposed key-value servers are a well-worn target (open Redis instances were mass-exploited
//! until Redis added protected mode). So walkv is safe by default:
//!
//! - It listens on 127.0.0.1 unless told otherwise.
//! - With a token (`--auth-token-file PATH`, or env `WALKV_AUTH_TOKEN`), every request must carry
//!   `Authorization: Bearer <token>`; anything else gets 401. The comparison takes the same time
//!   whatever the guess, so the token cannot be found byte by byte by timing answers.
//! - Asked to listen on an address that is not loopback without a token, the server refuses to
//!   start, unless `--insecure-open` says that an open server is really wanted ([`check_bind`]).
//!
//! The token travels in clear text: on a network you do not trust, put walkv behind TLS.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

/// Where the token comes from: `--auth-token-file` beats env `WALKV_AUTH_TOKEN`. Used by the
/// server (to check requests) and by the client commands (to send it).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum TokenSource {
    #[default]
    None,
    File(PathBuf),
    Env(String),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("None"),
            TokenSource::File(path) => write!(f, "File({})", path.display()),
            TokenSource::Env(_) => f.write_str("Env(<redacted>)"),
        }
    }
}

impl TokenSource {
    /// Reads and checks the token (reading the file, if it is one).
    pub fn load(&self) -> Result<Auth, String> {
        match self {
            TokenSource::None => Ok(Auth::none()),
            TokenSource::File(path) => Auth::from_file(path),
            TokenSource::Env(token) => Auth::from_token(token)
                .map_err(|e| format!("{e} (in the WALKV_AUTH_TOKEN environment variable)")),
        }
    }
}

/// The secret every request must present, if one is configured.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Auth {
    token: Option<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.write_str(if self.token.is_some() { "Auth(token)" } else { "Auth(none)" })
    }
}

impl Auth {
    /// No token: every request is allowed.
    pub fn none() -> Auth {
        Auth { token: None }
    }

    /// A token given directly (from the environment). Surrounding whitespace is not part of it.
    pub fn from_token(token: &str) -> Result<Auth, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the auth token is empty".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the auth token must be printable ASCII without spaces".into());
        }
        Ok(Auth { token: Some(token.as_bytes().to_vec()) })
    }

    /// A token read from a file (its first line, without the line ending).
    pub fn from_file(path: &Path) -> Result<Auth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the auth token file {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or_default();
        Auth::from_token(first).map_err(|e| format!("{e} (in {})", path.display()))
    }

    pub fn is_required(&self) -> bool {
        self.token.is_some()
    }

    /// The `Authorization` header value a client sends, if a token is configured.
    pub fn header_value(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {}", String::from_utf8_lossy(t)))
    }

    /// True if the request may proceed: no token is configured, or its `Authorization` header
    /// is `Bearer <token>` (the scheme name in any case).
    pub fn allows(&self, headers: &[(&str, &str)]) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| bearer_token(value));
        // Compare even when nothing was presented, so that the time taken says nothing.
        constant_time_eq(presented.unwrap_or_default().as_bytes(), token) && presented.is_some()
    }
}

/// The token from an `Authorization: Bearer <token>` value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two byte strings in time that depends only on their lengths, not on where they
/// first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// `bind` without the brackets of `[::1]`: the resolver takes IPv6 addresses bare.
pub fn unbracketed(bind: &str) -> &str {
    bind.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(bind)
}

/// Refuses to serve an open network without a token, unless the operator said so explicitly.
/// `bind` is an address or host name; it counts as loopback only if everything it resolves to
/// is loopback.
pub fn check_bind(bind: &str, auth: &Auth, insecure_open: bool) -> Result<(), String> {
    if auth.is_required() || insecure_open {
        return Ok(());
    }
    let addrs: Vec<_> = match (unbracketed(bind), 0).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("cannot resolve --bind {bind}: {e}")),
    };
    if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {bind} without an auth token: anyone who can reach it could read \
         and change every key. Set --auth-token-file PATH or WALKV_AUTH_TOKEN, or pass \
         --insecure-open if an open server is really what you want"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal strings compare equal; any difference, including length, does not.
    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(constant_time_eq(b"", b""));
        for other in [&b"secreT"[..], b"secre", b"secrets", b"", b"Secret"] {
            assert!(!constant_time_eq(b"secret", other), "{other:?}");
        }
    }

    /// Only `Bearer <token>` with the exact token passes; no token configured lets all through.
    #[test]
    fn bearer_token_is_required_when_configured() {
        let auth = Auth::from_token(" s3cr3t\n").unwrap();
        let with = |v: &'static str| vec![("Authorization", v)];
        assert!(auth.allows(&with("Bearer s3cr3t")));
        assert!(auth.allows(&[("authorization", "bearer  s3cr3t ")]));
        for bad in ["Bearer s3cr3", "Bearer s3cr3tt", "Basic s3cr3t", "s3cr3t", "Bearer", ""] {
            assert!(!auth.allows(&with(bad)), "{bad:?}");
        }
        assert!(!auth.allows(&[]));
        assert!(Auth::none().allows(&[]));
        assert!(Auth::from_token("  ").is_err());
        assert!(Auth::from_token("has space").is_err());
        assert_eq!(format!("{auth:?}"), "Auth(token)", "Debug must not print the token");
    }

    /// Loopback needs nothing; anything else needs a token or --insecure-open.
    #[test]
    fn open_bind_needs_a_token_or_an_explicit_flag() {
        let token = Auth::from_token("t").unwrap();
        for loopback in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(check_bind(loopback, &Auth::none(), false).is_ok(), "{loopback}");
        }
        for open in ["0.0.0.0", "::", "[::]", "192.0.2.1"] {
            let refused = check_bind(open, &Auth::none(), false).unwrap_err();
            assert!(refused.contains("--insecure-open"), "{refused}");
            assert!(check_bind(open, &token, false).is_ok());
            assert!(check_bind(open, &Auth::none(), true).is_ok());
        }
    }
}
