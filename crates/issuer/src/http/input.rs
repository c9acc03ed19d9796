//! Reading FME requests: query strings, form and JSON bodies, and the
//! caller's credentials, each with its limits and a clear refusal.
//!
//! Bodies are bounded ([`MAX_JSON_BYTES`], [`MAX_FORM_BYTES`]) and must say
//! what they are (`Content-Type`); JSON may nest at most [`MAX_JSON_DEPTH`]
//! levels (FME's token bodies need three) and may name only the fields an
//! endpoint knows. No refusal repeats a value it was given: a query string
//! or body may hold a password or a token.

use super::Face;
use super::answer::{Dialect, Problem};
use super::grpc::Origin;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use tonic::metadata::MetadataValue;

/// The largest JSON body read.
pub(crate) const MAX_JSON_BYTES: usize = 64 * 1024;

/// The largest form body read (the token service's parameters).
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;

/// How deeply JSON may nest (objects and arrays).
pub(crate) const MAX_JSON_DEPTH: usize = 8;

/// The query parameter FME clients put their token in.
pub(crate) const QUERY_TOKEN: &str = "fmetoken";

/// Name-value pairs of a query string or form body, decoded.
#[derive(Default)]
pub(crate) struct Params(Vec<(String, String)>);

/// Never shows the values (passwords, tokens).
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Params {
    pub fn parse(text: &str) -> Self {
        Self(
            form_urlencoded::parse(text.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The parameters of a request's query string.
    pub fn of_query(parts: &Parts) -> Self {
        Self::parse(parts.uri.query().unwrap_or_default())
    }

    /// Adds `other`'s parameters (a form body's to a query's).
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// The one value of `name`, if given; given twice is refused, since the
    /// two could be read differently by two readers.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Problem> {
        let mut values = self.0.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Problem::bad_request(format!(
                "the parameter `{name}` is given more than once: give it once"
            )));
        }
        Ok(first)
    }

    /// Refuses a parameter outside `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), Problem> {
        match self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            None => Ok(()),
            Some((name, _)) => Err(Problem::bad_request(format!(
                "unknown parameter `{}`: this endpoint takes {}",
                printable(name),
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// An integer parameter.
    pub fn integer(&self, dialect: Dialect, name: &str) -> Result<Option<i64>, Problem> {
        match self.one(name)? {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                Problem::invalid(
                    dialect,
                    format!("the parameter `{name}` must be an integer"),
                )
            }),
        }
    }
}

/// A parameter name fit for a message: at most 64 printable characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The media type of a request, lower-cased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Reads the whole body, at most `limit` bytes. A body declared larger
/// (`Content-Length`) is refused before a byte of it is read.
async fn bytes(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than this endpoint accepts ({limit} bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// A form body's parameters; an empty body has none. Anything but
/// `application/x-www-form-urlencoded` is refused (415).
pub(crate) async fn form(headers: &HeaderMap, body: Body) -> Result<Params, Problem> {
    let bytes = bytes(headers, body, MAX_FORM_BYTES).await?;
    if bytes.is_empty() {
        return Ok(Params::default());
    }
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the parameters in the query string, or as a form body with \
             `Content-Type: application/x-www-form-urlencoded`",
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Problem::bad_request("the form body is not UTF-8"))?;
    Ok(Params::parse(text))
}

/// How deeply `json` nests, stopping once past `max`.
fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A JSON body read as `T`, which names the fields it takes (unknown ones
/// are refused). Unreadable JSON is 400; JSON whose fields are wrong is
/// bad input in `dialect`'s terms (422 in v3).
pub(crate) async fn json<T: DeserializeOwned>(
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Problem> {
    let is_json =
        media_type(headers).is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with `Content-Type: application/json`",
        ));
    }
    let bytes = bytes(headers, body, MAX_JSON_BYTES).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "the body is empty: send a JSON object",
        ));
    }
    if nests_deeper_than(&bytes, MAX_JSON_DEPTH) {
        return Err(Problem::bad_request(format!(
            "the body nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Problem::invalid(dialect, format!("the body's fields: {e}")),
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::bad_request(format!("the body is not JSON: {e}"))
            }
        }
    })
}

/// Who the request comes from and the credentials it carries: its
/// `Authorization` header, or FME's `fmetoken` query parameter (when
/// `--fmetoken-query` allows it), not both.
pub(crate) fn origin(face: &Face, parts: &Parts, query: &Params) -> Result<Origin, Problem> {
    let mut headers = parts.headers.get_all(header::AUTHORIZATION).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(Problem::bad_request(
            "the Authorization header is given more than once: give it once",
        ));
    }
    let from_query = query.one(QUERY_TOKEN)?;
    let authorization = match (header, from_query) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request(
                "credentials are given twice, in the Authorization header and the `fmetoken` \
                 parameter: give them once",
            ));
        }
        (Some(value), None) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| MetadataValue::try_from(text.trim()).ok())
                .ok_or_else(|| {
                    Problem::unauthorized("the Authorization header is not readable text")
                })?,
        ),
        (None, Some(_)) if !face.fmetoken_query => {
            return Err(Problem::unauthorized(
                "this issuer does not take tokens in the `fmetoken` query parameter: send \
                 `Authorization: fmetoken token=<token>`",
            ));
        }
        (None, Some(token)) => Some(
            MetadataValue::try_from(format!("fmetoken token={}", token.trim()))
                .map_err(|_| Problem::unauthorized("the `fmetoken` parameter is not a token"))?,
        ),
        (None, None) => None,
    };
    Ok(Origin {
        authorization,
        ..peer(parts)
    })
}

/// Where the request comes from, without credentials: its peer, and the
/// `X-Forwarded-For` the services read only from a trusted proxy.
pub(crate) fn peer(parts: &Parts) -> Origin {
    Origin {
        authorization: None,
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        forwarded: parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| MetadataValue::try_from(v).ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nests_deeper_than(br#"{"a": [{"b": ["c"]}]}"#, 4));
        assert!(nests_deeper_than(br#"{"a": [{"b": [["c"]]}]}"#, 4));
        assert!(!nests_deeper_than(br#"{"a": "[[[[[[[[[[\"{{{{"}"#, 1));
        assert!(nests_deeper_than(&[b'['; 10_000], MAX_JSON_DEPTH));
    }

    #[test]
    fn parameters_are_decoded_once_and_never_shown() {
        let params = Params::parse("user=a%20b&password=p%26w+d&user2=x");
        assert_eq!(params.one("user").ok().flatten(), Some("a b"));
        assert_eq!(params.one("password").ok().flatten(), Some("p&w d"));
        assert_eq!(format!("{params:?}"), r#"["user", "password", "user2"]"#);
        let twice = Params::parse("user=a&user=b");
        assert!(twice.one("user").is_err());
        assert!(params.only(&["user", "password"]).is_err());
    }
}
