//! Writing answers: the status line, the fields walkv sends and the body, appended to a
//! buffer without formatting machinery (it was a tenth of a GET's cost).

use crate::http::Response;

/// The `Connection` field of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectionHeader {
    /// `Connection: close`: this is the last answer on the connection.
    Close,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to keep it, and it is kept. A 1.0
    /// client (`ab -k`) reuses the connection only when the answer says so.
    KeepAlive,
    /// Nothing: HTTP/1.1 keeps connections by default.
    Omit,
}

/// Appends the answer's bytes. Always `Content-Length`, never chunked: simpler clients, exact
/// HEAD answers. `connection` is the `Connection` field, if any; `request_id` (visible ASCII, checked by
/// [`crate::request_log::is_sane_id`] or made by walkv) is echoed as `X-Request-ID`.
pub(super) fn write_answer(
    out: &mut Vec<u8>,
    response: &Response,
    head_only: bool,
    connection: ConnectionHeader,
    request_id: Option<&str>,
) {
    // Plain appends rather than `write!`: formatting machinery was a tenth of a GET's cost.
    let body = if head_only { &[][..] } else { &response.body[..] };
    out.reserve(192 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(response.status));
    out.push(b' ');
    out.extend_from_slice(reason(response.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(&super::date::now());
    out.extend_from_slice(b"\r\nCache-Control: ");
    out.extend_from_slice(response.cache_control.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(response.content_type.as_bytes());
    out.extend_from_slice(b"\r\n");
    if response.status != 304 {
        // A 304 never has a body, and its Content-Length could only be the 200's (RFC 9110 8.6).
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, response.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(seq) = response.etag {
        out.extend_from_slice(b"ETag: \"");
        push_decimal(out, seq);
        out.extend_from_slice(b"\"\r\n");
    }
    if let Some(seq) = response.seq {
        out.extend_from_slice(b"X-Walkv-Seq: ");
        push_decimal(out, seq);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &response.headers {
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    end_head(out, connection, request_id);
    out.extend_from_slice(body);
}

/// Appends the head of a streamed answer (the change feed): status 200, `Transfer-Encoding:
/// chunked`, `X-Walkv-Seq: seq`. The body follows as chunks ([`push_chunk`]), as long as the
/// stream lasts, ended by [`LAST_CHUNK`].
pub(super) fn write_stream_head(
    out: &mut Vec<u8>,
    content_type: &str,
    seq: u64,
    connection: ConnectionHeader,
    request_id: Option<&str>,
) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: ");
    out.extend_from_slice(&super::date::now());
    out.extend_from_slice(b"\r\nCache-Control: no-store\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nTransfer-Encoding: chunked\r\nX-Walkv-Seq: ");
    push_decimal(out, seq);
    out.extend_from_slice(b"\r\n");
    end_head(out, connection, request_id);
}

/// Appends the last fields every answer may have, `X-Request-ID` and `Connection`, and the
/// blank line that ends the head.
fn end_head(out: &mut Vec<u8>, connection: ConnectionHeader, request_id: Option<&str>) {
    if let Some(id) = request_id {
        for part in [&b"X-Request-ID: "[..], id.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    match connection {
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnectionHeader::Omit => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `data` as one chunk of a chunked body (nothing for empty `data`, which would end
/// the body).
pub(super) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `n` in decimal.
pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_well_formed() {
        let mut out = Vec::new();
        let mut r = Response::error(404, "key not found");
        r.headers.push(("Allow", "GET".into()));
        write_answer(&mut out, &r, false, ConnectionHeader::Close, None);
        let text = String::from_utf8(out).unwrap();
        let (date, text) = text.split_at(text.find("Cache-Control").unwrap());
        assert!(date.starts_with("HTTP/1.1 404 Not Found\r\nDate: ") && date.ends_with(" GMT\r\n"));
        assert_eq!(
            text,
            "Cache-Control: no-store\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\
             Allow: GET\r\nConnection: close\r\n\r\n{\"error\":\"key not found\"}"
        );
        let mut out = Vec::new();
        write_answer(&mut out, &r, true, ConnectionHeader::Omit, None);
        assert!(out.ends_with(b"Allow: GET\r\n\r\n"), "HEAD: no body, length kept");
    }

    #[test]
    fn decimals_are_written_like_display() {
        for n in [0, 1, 9, 10, 99, 100, 413, 65_535, 1 << 20, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
