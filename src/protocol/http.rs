//! Owns: the little HTTP/1.x the metrics endpoint speaks — reading one request head (bounded:
//! `MAX_HEAD` bytes), deciding its answer (`GET`/`HEAD /metrics`, else 400, 404, 405, 431, 505)
//! and writing a response head.
//! Does not: touch a socket or produce the metrics (see `server::metrics`, `exec::metrics`).
//!
//! Requests carry no body: one that announces one (`Content-Length` other than 0,
//! `Transfer-Encoding`) is answered 400 and the connection closed, so no body is ever read.

/// The largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (`head`: `HEAD /metrics`); `keep_alive`: the connection stays open after.
    Metrics { head: bool, keep_alive: bool },
    /// An error response; the connection is closed after it.
    Error(Status),
}

/// The error statuses the endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeaderTooLarge,
    VersionNotSupported,
}

impl Status {
    pub fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeaderTooLarge => "431 Request Header Fields Too Large",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }
}

/// The request whose head starts `buf` and the bytes it used, or `None` while incomplete.
/// A head longer than `MAX_HEAD` is `Status::HeaderTooLarge` (use all of `buf`).
pub fn parse(buf: &[u8]) -> Option<(Request, usize)> {
    let end = match find_end(buf) {
        Some(e) => e,
        None if buf.len() >= MAX_HEAD => {
            return Some((Request::Error(Status::HeaderTooLarge), buf.len()))
        }
        None => return None,
    };
    if end > MAX_HEAD {
        return Some((Request::Error(Status::HeaderTooLarge), end));
    }
    Some((decide(&buf[..end]), end))
}

/// The end of the head: just past the blank line (`\r\n\r\n`, or bare `\n\n`).
fn find_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn decide(head: &[u8]) -> Request {
    let Ok(head) = std::str::from_utf8(head) else {
        return Request::Error(Status::BadRequest);
    };
    let mut lines = head.lines();
    let line = lines.next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Request::Error(Status::BadRequest);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Request::Error(Status::VersionNotSupported),
        _ => return Request::Error(Status::BadRequest),
    };
    let mut keep_alive = http11;
    for h in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = h.split_once(':') else {
            return Request::Error(Status::BadRequest);
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Request::Error(Status::BadRequest);
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") && value != "0" {
            return Request::Error(Status::BadRequest);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Request::Error(Status::BadRequest);
        }
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if !target.starts_with('/') {
        return Request::Error(Status::BadRequest);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Request::Error(Status::MethodNotAllowed)
        }
        _ => return Request::Error(Status::BadRequest),
    };
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Request::Error(Status::NotFound);
    }
    Request::Metrics { head, keep_alive }
}

/// A response head: `status` (e.g. `200 OK`), a body of `len` bytes of `content_type`.
pub fn response_head(status: &str, content_type: &str, len: usize, keep_alive: bool) -> String {
    let mut h =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n");
    if status.starts_with("405") {
        h.push_str("Allow: GET, HEAD\r\n");
    }
    h.push_str(if keep_alive {
        "\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Option<Request> {
        parse(s.as_bytes()).map(|(r, _)| r)
    }

    #[test]
    fn get_and_head_of_metrics() {
        let ok = |head, keep_alive| Some(Request::Metrics { head, keep_alive });
        assert_eq!(
            req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            ok(false, true)
        );
        assert_eq!(req("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), ok(false, false));
        assert_eq!(req("HEAD /metrics HTTP/1.1\n\n"), ok(true, true));
        assert_eq!(
            req("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"),
            ok(false, false)
        );
        let two = b"GET /metrics HTTP/1.1\r\n\r\nGET /";
        assert_eq!(parse(two).map(|(_, used)| used), Some(25));
    }

    #[test]
    fn incomplete_until_the_blank_line() {
        assert_eq!(req("GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(req(""), None);
    }

    #[test]
    fn errors() {
        let e = |s| Some(Request::Error(s));
        assert_eq!(req("GET /other HTTP/1.1\r\n\r\n"), e(Status::NotFound));
        assert_eq!(
            req("POST /metrics HTTP/1.1\r\n\r\n"),
            e(Status::MethodNotAllowed)
        );
        assert_eq!(
            req("GET /metrics HTTP/2.0\r\n\r\n"),
            e(Status::VersionNotSupported)
        );
        for bad in [
            "GET /metrics\r\n\r\n",
            "GET  /metrics HTTP/1.1\r\n\r\n",
            "get /metrics HTTP/1.1\r\n\r\n",
            "GET metrics HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "\u{1}\r\n\r\n",
        ] {
            assert_eq!(req(bad), e(Status::BadRequest), "{bad:?}");
        }
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(
            parse(&long),
            Some((Request::Error(Status::HeaderTooLarge), MAX_HEAD))
        );
    }

    #[test]
    fn heads() {
        let h = response_head("200 OK", "text/plain", 5, true);
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        );
        assert!(
            response_head("405 Method Not Allowed", "text/plain", 0, false)
                .contains("Allow: GET, HEAD\r\nConnection: close\r\n\r\n")
        );
    }
}
