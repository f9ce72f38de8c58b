//! The request and response as the API's logic sees them: plain data taken
//! from hyper's request (method, decoded path and query, headers, the peer),
//! so `api.rs` stays free of the server's types and its tests build requests
//! by hand. `server.rs` converts between these and axum's types.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::Stream;

/// The other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client and its address.
    Tcp(SocketAddr),
    /// A unix-socket client, as the kernel vouches for it (`SO_PEERCRED`, taken when it
    /// connected).
    Unix { uid: u32, pid: i32 },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix { uid, pid } => write!(f, "unix(uid={uid},pid={pid})"),
        }
    }
}

/// A request, without its body (no endpoint takes one).
#[derive(Clone, Debug)]
pub struct Request {
    /// "GET", "POST", ... as sent (HTTP methods are case-sensitive).
    pub method: String,
    /// Percent-decoded path without the query, e.g. "/v1/events".
    pub path: String,
    /// Percent-decoded (`+` as space) query pairs, in order; `?flag` gives `("flag", "")`.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, in order (repeated headers stay repeated).
    pub headers: Vec<(String, String)>,
    pub peer: Peer,
    /// The server upgrades it to a WebSocket (a GET with the headers an upgrade
    /// needs, all valid): only then may a token come as a subprotocol.
    pub websocket: bool,
}

impl Request {
    /// Builds a request from its target (`/path?query`), not a WebSocket upgrade;
    /// `Err` names what is wrong.
    pub fn from_target(
        method: &str,
        target_path: &str,
        target_query: Option<&str>,
        headers: Vec<(String, String)>,
        peer: Peer,
    ) -> Result<Request, String> {
        let path = percent_encoding::percent_decode_str(target_path)
            .decode_utf8()
            .map_err(|_| format!("the path of request target {target_path:?} is not UTF-8"))?
            .into_owned();
        let query = target_query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Request {
            method: method.to_owned(),
            path,
            query,
            headers,
            peer,
            websocket: false,
        })
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `key`, in order.
    pub fn query_all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of query parameter `key`.
    pub fn query_one(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header_all("authorization").next()?.trim();
        let (scheme, token) = value.split_once([' ', '\t'])?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// One message of a server-sent event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// `: text` (ignored by clients).
    Comment(&'static str),
    /// `id: id` then `data: text`: an event a client can resume after.
    Event { id: String, data: String },
    /// `event: name` then `data: text`.
    Named(&'static str, String),
}

/// The events of a live stream; the stream ends when the server stops, and
/// dropping it (the client went away) releases what it holds.
pub type SseStream = Pin<Box<dyn Stream<Item = SseItem> + Send>>;

/// What runs over a WebSocket once the request is upgraded; the receiver
/// turns true when the server stops.
pub type Session = Box<
    dyn FnOnce(
            axum::extract::ws::WebSocket,
            tokio::sync::watch::Receiver<bool>,
        ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send,
>;

/// A response body.
pub enum Body {
    Bytes(Vec<u8>),
    /// Server-sent events (`text/event-stream`), with keep-alive comments added by the server.
    Events(SseStream),
    /// A WebSocket session (the request must ask for `Upgrade: websocket`).
    Session(Session),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Events(_) => f.write_str("Events(..)"),
            Body::Session(_) => f.write_str("Session(..)"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers beyond `Content-Type`, names lower-cased. The server adds the API's
    /// security headers to a response that sets no `content-security-policy` of its own.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    /// `value` as JSON, `Content-Type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        // Serializing a `Value` cannot fail (its map keys are strings).
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Response::text(status, "application/json", body)
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
        }
    }

    /// `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({ "error": message, "status": status }),
        )
    }

    /// Adds header `name` (lower-case) with `value`.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name` (lower-case), if set.
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A WebSocket session: `101` once upgraded.
    pub fn session(session: Session) -> Response {
        Response {
            status: 101,
            content_type: "application/octet-stream",
            headers: Vec::new(),
            body: Body::Session(session),
        }
    }

    /// A `200` stream of server-sent events.
    pub fn events(stream: SseStream) -> Response {
        Response {
            status: 200,
            content_type: "text/event-stream",
            headers: Vec::new(),
            body: Body::Events(stream),
        }
    }
}
