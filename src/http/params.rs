//! Query parameters, read strictly: each endpoint names the parameters it takes, and a request
//! with any other parameter, with one of them twice, or with a value a parameter does not take
//! is refused with 400 naming it, before anything is read or written.
//!
//! Why strict: a parameter that is silently ignored is a promise silently broken. `?snyc` (a
//! typo of `?sync`) that is accepted as if it were absent drops the fsync its writer asked for,
//! and the writer cannot tell; a refusal costs one corrected request. A repeated parameter is
//! refused because nothing says which of the two was meant.
//!
//! Names are compared as sent (`?r%61w` is not `raw`); values are the raw text after `=`, still
//! percent-encoded, for the endpoint to decode as it needs. Empty parts (`?&raw`, a bare `?`)
//! are nothing.

/// The parameters of one request, checked against the names its endpoint takes.
#[derive(Debug, Default)]
pub struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    /// Splits `query` and checks every name against `takes`; `endpoint` (such as
    /// `PUT /v1/{key}`) names the endpoint in the error.
    pub fn parse(query: Option<&'a str>, takes: &[&str], endpoint: &str) -> Result<Self, String> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for part in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            if !takes.contains(&name) {
                return Err(unknown(name, takes, endpoint));
            }
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(format!("parameter `{}` is given more than once", shown(name)));
            }
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    /// The raw value of `name`, if it was given (`""` for a bare `?name`).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|&(_, value)| value)
    }

    /// A switch: `name`, `name=1` or `name=true` is on; `name=0`, `name=false` or its absence
    /// is off; any other value is an error (`?raw=no` must not mean yes).
    pub fn switch(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None | Some("0" | "false") => Ok(false),
            Some("" | "1" | "true") => Ok(true),
            Some(other) => Err(format!(
                "`{name}` is a switch: `?{name}`, `{name}=1` or `{name}=true` for on, \
                 `{name}=0` or `{name}=false` for off; got `{name}={}`",
                shown(other)
            )),
        }
    }
}

/// The refusal of a parameter the endpoint does not take.
fn unknown(name: &str, takes: &[&str], endpoint: &str) -> String {
    let name = shown(name);
    match takes {
        [] => format!("unknown parameter `{name}`; {endpoint} takes no parameters"),
        [one] => format!("unknown parameter `{name}`; {endpoint} takes only `{one}`"),
        _ => format!("unknown parameter `{name}`; {endpoint} takes `{}`", takes.join("`, `")),
    }
}

/// Client text for an error message: at most 40 characters, control characters escaped.
pub fn shown(text: &str) -> String {
    text.chars().take(40).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, knob};

    #[test]
    fn reads_the_parameters_an_endpoint_takes() {
        let p = Params::parse(Some("sync&raw=0&&x=a%20b"), &["sync", "raw", "x"], "E").unwrap();
        assert_eq!((p.get("sync"), p.get("raw"), p.get("x")), (Some(""), Some("0"), Some("a%20b")));
        assert_eq!(
            (p.switch("sync"), p.switch("raw"), p.switch("y")),
            (Ok(true), Ok(false), Ok(false))
        );
        for query in [None, Some(""), Some("&"), Some("&&")] {
            assert_eq!(Params::parse(query, &[], "E").unwrap().pairs, vec![]);
        }
        for on in ["sync", "sync=1", "sync=true"] {
            assert_eq!(Params::parse(Some(on), &["sync"], "E").unwrap().switch("sync"), Ok(true));
        }
    }

    /// A typo, a repeat, a parameter of another endpoint, a bad switch: each a message naming it.
    #[test]
    fn refuses_what_it_does_not_understand() {
        let put = ["sync"];
        for (query, takes, says) in [
            ("snyc", &put[..], "unknown parameter `snyc`; PUT /v1/{key} takes only `sync`"),
            ("sync&sync", &put[..], "parameter `sync` is given more than once"),
            ("sync=1&sync=0", &put[..], "`sync` is given more than once"),
            ("raw", &put[..], "unknown parameter `raw`"),
            ("foo=bar", &[][..], "takes no parameters"),
            ("SYNC", &put[..], "unknown parameter `SYNC`"),
            ("s%79nc", &put[..], "unknown parameter `s%79nc`"),
            ("a\u{1}b", &[][..], "unknown parameter `a\\u{1}b`"),
            ("prefx=a", &["prefix", "after"][..], "takes `prefix`, `after`"),
        ] {
            let err = Params::parse(Some(query), takes, "PUT /v1/{key}").unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
        let p = Params::parse(Some("sync=yes"), &put, "E").unwrap();
        assert!(p.switch("sync").unwrap_err().contains("got `sync=yes`"));
    }

    #[test]
    fn random_queries_never_panic() {
        let mut rng = Rng::new(knob("WALKV_FUZZ_SEED", 1));
        let alphabet = "sync=&raw%\u{e9}\u{0}10";
        let chars: Vec<char> = alphabet.chars().collect();
        for _ in 0..knob("WALKV_FUZZ_ITERS", 20_000) {
            let query: String = (0..rng.below(12)).map(|_| chars[rng.below(chars.len())]).collect();
            if let Ok(p) = Params::parse(Some(&query), &["sync", "raw"], "E") {
                let _ = (p.switch("sync"), p.switch("raw"));
            }
        }
    }
}
