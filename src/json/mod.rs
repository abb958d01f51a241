//! Just enough JSON: a strict RFC 8259 parser and a string encoder.
//!
//! Hand-written because the runtime dependency budget has no room for serde. The server needs
//! JSON in two places only: reading the body of `POST /v1/write` and writing `{"value":"..."}` and
//! `{"error":"..."}`. Small as it is, the parser is complete and strict, because "bad input gets
//! a clear error" starts here:
//!
//! - the input must be UTF-8, and must hold exactly one value with optional whitespace
//!   (space, tab, CR, LF) around it;
//! - strings decode every escape exactly, including `\uXXXX` surrogate pairs; a lone surrogate is
//!   an error, because it has no UTF-8 form and the value would not round-trip;
//! - numbers are checked against the grammar and kept as text (walkv never needs their value);
//! - nesting deeper than [`MAX_DEPTH`] is an error, so hostile input cannot exhaust the stack.
//!
//! Errors carry the byte offset and say what was expected. Proven against `serde_json` as an
//! oracle, against the JSONTestSuite corpus, and on mutated inputs that must never panic.

use std::fmt;

/// How deeply arrays and objects may nest. Our own documents nest one level; 128 is generous for
/// any real client and keeps the recursive parser's stack use to a few kilobytes.
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON value. Object members keep their order and duplicates; the caller decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text, already checked against the JSON grammar.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Names the kind of value, for error messages ("`value` must be a string, not a number").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Why a document is not valid JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset into the input where the problem was found.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for Error {}

/// Parses one complete JSON document.
///
/// ```
/// use walkv::json::{parse, Value};
/// let v = parse(br#"{"key":"k","value":"\ud83d\ude00"}"#).unwrap();
/// let Value::Object(members) = v else { panic!() };
/// assert_eq!(members[1], ("value".to_string(), Value::String("😀".to_string())));
/// assert!(parse(b"[1,]").unwrap_err().to_string().contains("byte 3"));
/// ```
pub fn parse(input: &[u8]) -> Result<Value, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error {
        offset: e.valid_up_to(),
        message: "the body is not valid UTF-8".to_string(),
    })?;
    let mut parser = Parser { text: text.as_bytes(), pos: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.text.len() {
        return Err(parser.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

/// A top-level member [`pick_members`] was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Missing,
    String(String),
    /// A number: its text, checked against the JSON grammar.
    Number(String),
    /// Present, but neither a string nor a number: its kind ("an array", as [`Value::kind`]
    /// says).
    Other(&'static str),
    /// Present more than once.
    Repeated,
}

/// What [`pick_members`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked<const N: usize> {
    /// The members asked for, in the order of `names`.
    Members([Member; N]),
    /// The document is valid JSON, but not an object: its kind.
    NotAnObject(&'static str),
    /// `strict`, and a member not among `names` (the first one).
    Unknown(String),
}

/// Validates one complete JSON document (exactly as [`parse`] does) and takes from its
/// top-level object only the members in `names`. Every other value is checked and skipped
/// without being built, so a body of a million members costs time (on the caller's thread) but
/// no memory: a write body is read this way on its connection's thread, and the main thread
/// gets only the key and the value. With `strict`, a member not in `names` is reported.
pub fn pick_members<const N: usize>(
    input: &[u8],
    names: [&str; N],
    strict: bool,
) -> Result<Picked<N>, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error {
        offset: e.valid_up_to(),
        message: "the body is not valid UTF-8".to_string(),
    })?;
    let mut parser = Parser { text: text.as_bytes(), pos: 0 };
    parser.skip_whitespace();
    if parser.peek() != Some(b'{') {
        let kind = parser.skip_value(0)?;
        parser.end()?;
        return Ok(Picked::NotAnObject(kind));
    }
    let mut found: [Member; N] = std::array::from_fn(|_| Member::Missing);
    let mut unknown = None;
    parser.members(1, |parser, name| {
        let Some(at) = names.iter().position(|n| *n == name) else {
            if strict && unknown.is_none() {
                unknown = Some(name);
            }
            return parser.skip_value(1).map(drop);
        };
        let member = match parser.peek() {
            Some(b'"') => Member::String(parser.string()?),
            Some(b'-' | b'0'..=b'9') => match parser.number()? {
                Value::Number(text) => Member::Number(text),
                other => Member::Other(other.kind()),
            },
            _ => Member::Other(parser.skip_value(1)?),
        };
        found[at] = match found[at] {
            Member::Missing => member,
            _ => Member::Repeated,
        };
        Ok(())
    })?;
    parser.end()?;
    Ok(match unknown {
        Some(name) => Picked::Unknown(name),
        None => Picked::Members(found),
    })
}

/// Appends `s` to `out` as a quoted JSON string. Escapes `"`, `\` and the control characters
/// U+0000..U+001F; everything else is written as UTF-8, which JSON allows.
pub fn write_string(out: &mut String, s: &str) {
    write_escaped(out, s, false);
}

/// [`write_string`] that also escapes DEL and the C1 controls (U+007F..U+009F) as `\u00XX`, so
/// that no byte of `s` reaches a terminal as a control sequence: for text a person may read
/// (the request log, `walkv export`). Still plain JSON; a parser reads back exactly `s`.
pub fn write_string_for_terminal(out: &mut String, s: &str) {
    write_escaped(out, s, true);
}

// Inlined into both callers, so that the test of `c1_too` is decided at compile time: as a
// call, it cost about 200 instructions per GET of a 100-byte value (callgrind).
#[inline(always)]
fn write_escaped(out: &mut String, s: &str, c1_too: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if c < ' ' || (c1_too && ('\u{7f}'..='\u{9f}').contains(&c)) => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the member `"<name>":"<text>"` for `bytes` that are UTF-8, else
/// `"<name>_base64":"<base64>"`: how `walkv export`, `bulk` lines and the change feed carry keys
/// and values, which may be any bytes. Strings are escaped for a terminal
/// ([`write_string_for_terminal`]).
pub fn write_bytes_member(out: &mut String, name: &str, bytes: &[u8]) {
    out.push('"');
    out.push_str(name);
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            out.push_str("\":");
            write_string_for_terminal(out, text);
        }
        Err(_) => {
            out.push_str("_base64\":\"");
            crate::base64::encode_into(out, bytes);
            out.push('"');
        }
    }
}

/// Builds `{"<name>":"<text>"}`, the shape of every walkv value and error body.
pub fn object_with_string(name: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + name.len() + 8);
    out.push('{');
    write_string(&mut out, name);
    out.push(':');
    write_string(&mut out, text);
    out.push('}');
    out
}

struct Parser<'a> {
    /// The input, already known to be valid UTF-8.
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> Error {
        Error { offset: self.pos, message: message.to_string() }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &str, value: Value) -> Result<Value, Error> {
        if self.text[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error(&format!("expected `{literal}`")))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        match self.peek() {
            None => Err(self.error("expected a value, found the end of the input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect_literal("true", Value::Bool(true)),
            Some(b'f') => self.expect_literal("false", Value::Bool(false)),
            Some(b'n') => self.expect_literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    /// After the document: only whitespace may follow.
    fn end(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        if self.pos != self.text.len() {
            return Err(self.error("unexpected data after the JSON value"));
        }
        Ok(())
    }

    /// Checks one value and moves past it, building nothing (strings and numbers are decoded
    /// to be checked, then dropped); its kind.
    fn skip_value(&mut self, depth: usize) -> Result<&'static str, Error> {
        match self.peek() {
            Some(b'{') => {
                self.members(depth + 1, |parser, _| parser.skip_value(depth + 1).map(drop))?;
                Ok("an object")
            }
            Some(b'[') => {
                self.items(depth + 1, |parser| parser.skip_value(depth + 1).map(drop))?;
                Ok("an array")
            }
            _ => self.value(depth).map(|v| v.kind()),
        }
    }

    /// Reads an object's members (the parser at its `{`), calling `member` with each name
    /// when the parser is at the member's value, which `member` must consume.
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.delimited(depth, b'}', "object", |parser| {
            if parser.peek() != Some(b'"') {
                return Err(parser.error("expected a string as object key"));
            }
            let name = parser.string()?;
            parser.skip_whitespace();
            if parser.peek() != Some(b':') {
                return Err(parser.error("expected `:` after object key"));
            }
            parser.pos += 1;
            parser.skip_whitespace();
            member(parser, name)
        })
    }

    /// Reads an array's items (the parser at its `[`), calling `item` at each, which must
    /// consume it.
    fn items(
        &mut self,
        depth: usize,
        item: impl FnMut(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.delimited(depth, b']', "array", item)
    }

    /// The loop that objects and arrays share: the parser at the opening bracket, `each`
    /// called at every element (whitespace skipped), elements separated by `,` up to `close`.
    fn delimited(
        &mut self,
        depth: usize,
        close: u8,
        what: &str,
        mut each: impl FnMut(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.check_depth(depth)?;
        self.pos += 1; // the opening bracket
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            each(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    let message = format!("expected `,` or `{}` in {what}", close as char);
                    return Err(self.error(&message));
                }
            }
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        let mut items = Vec::new();
        self.items(depth, |parser| {
            items.push(parser.value(depth)?);
            Ok(())
        })?;
        Ok(Value::Array(items))
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        let mut members = Vec::new();
        self.members(depth, |parser, name| {
            members.push((name, parser.value(depth)?));
            Ok(())
        })?;
        Ok(Value::Object(members))
    }

    /// Consumes a run of ASCII digits and returns how many there were.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit in number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        // Only ASCII was consumed, so this slice is valid UTF-8 at both ends.
        let text = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
        Ok(Value::Number(text))
    }

    fn string(&mut self) -> Result<String, Error> {
        self.pos += 1; // opening '"'
        let mut out = String::new();
        loop {
            // Copy the longest run that needs no decoding in one step.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run starts and ends at ASCII bytes (or the input's end) of valid UTF-8 input.
            out.push_str(&String::from_utf8_lossy(&self.text[run_start..self.pos]));
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => {
                    return Err(self.error("control character in string (must be escaped)"));
                }
            }
        }
    }

    /// Decodes the escape after a backslash; `\uXXXX` pairs are joined into one character.
    fn escape(&mut self) -> Result<char, Error> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated escape"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{08}',
            b'f' => '\u{0C}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => {
                self.pos -= 1;
                return Err(self.error("unknown escape"));
            }
        })
    }

    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with(b"\\u") {
                    return Err(self.error("lone high surrogate (no UTF-8 form)"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("high surrogate not followed by a low surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone low surrogate (no UTF-8 form)")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode escape"))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| (b as char).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error("expected four hex digits in \\u escape"));
            };
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests;
