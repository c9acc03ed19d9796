//! The input screen: one layer in front of every issuer RPC that refuses
//! unusable text before any handler or database sees it.
//!
//! It decodes each request with the API's own descriptors (the ones served
//! for reflection) and walks every string field, however nested, so a
//! field added to the API later is screened without anyone remembering to.
//! Refused, with INVALID_ARGUMENT naming each field:
//!
//! - NUL and other control characters anywhere (a description may hold
//!   tabs and line breaks);
//! - in names (token names, usernames, owners, actors): bidirectional
//!   overrides and zero-width characters, which make a name display as
//!   another;
//! - any string over [`MAX_CHARS`] characters.
//!
//! The handlers still check what each field means (lengths of names, the
//! grammar of grants…); this layer makes sure that none of them, and no
//! database, is handed text it cannot store.

use bytes::Bytes;
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

/// The longest string any request field may hold, in characters. Fields
/// with tighter limits (names, descriptions, passwords) are held to those
/// by their handlers.
pub const MAX_CHARS: usize = 8 * 1024;

/// The most a request body is read for screening: tonic's own limit for a
/// decoded message (4 MiB) plus its frame header.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024 + 5;

/// Field names that hold names a person reads.
const NAME_FIELDS: &[&str] = &["name", "username", "owner", "user", "actor"];

/// Whether `c` makes text display other than it reads: bidirectional
/// embeddings, overrides, isolates and marks, and zero-width characters.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// What is wrong with `text` in field `path`, if anything.
pub fn problem(path: &str, text: &str) -> Option<String> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let multiline = leaf == "description";
    if text.chars().count() > MAX_CHARS {
        return Some(format!("must be at most {MAX_CHARS} characters"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
    {
        return Some(format!(
            "must not contain control characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    if NAME_FIELDS.contains(&leaf)
        && let Some(c) = text.chars().find(|c| is_deceptive(*c))
    {
        return Some(format!(
            "must not contain bidirectional or zero-width characters (found U+{:04X}), \
             which make a name display as another",
            u32::from(c)
        ));
    }
    None
}

fn walk(message: &DynamicMessage, prefix: &str, out: &mut Vec<(String, String)>) {
    for (field, value) in message.fields() {
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        visit(value, &path, out);
    }
}

fn visit(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => {
            if let Some(why) = problem(path, text) {
                out.push((path.to_owned(), why));
            }
        }
        Value::Message(message) => walk(message, path, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                visit(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                if let MapKey::String(key) = key
                    && let Some(why) = problem(path, key)
                {
                    out.push((format!("{path}[key]"), why));
                }
                visit(item, &format!("{path}[value]"), out);
            }
        }
        _ => {}
    }
}

/// The problems in one encoded request of type `input`; `None` when the
/// bytes are not a message of that type (tonic then answers as usual).
pub fn screen(input: &MessageDescriptor, encoded: &[u8]) -> Option<Vec<(String, String)>> {
    let message = DynamicMessage::decode(input.clone(), encoded).ok()?;
    let mut out = Vec::new();
    walk(&message, "", &mut out);
    Some(out)
}

/// The layer, knowing every RPC's request type.
#[derive(Debug, Clone)]
pub struct ScreenLayer {
    inputs: Arc<HashMap<String, MessageDescriptor>>,
}

impl ScreenLayer {
    /// Reads the request types of every service in `descriptors` (an
    /// encoded file descriptor set).
    pub fn new(descriptors: &[u8]) -> Result<Self, String> {
        let pool = DescriptorPool::decode(descriptors).map_err(|e| e.to_string())?;
        let mut inputs = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                inputs.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    method.input(),
                );
            }
        }
        Ok(Self {
            inputs: Arc::new(inputs),
        })
    }
}

impl<S> Layer<S> for ScreenLayer {
    type Service = Screen<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Screen {
            inner,
            inputs: self.inputs.clone(),
        }
    }
}

/// The service the layer wraps.
#[derive(Debug, Clone)]
pub struct Screen<S> {
    inner: S,
    inputs: Arc<HashMap<String, MessageDescriptor>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn refusal(problems: Vec<(String, String)>) -> http::Response<Body> {
    let message = format!(
        "invalid request: {}",
        problems
            .iter()
            .map(|(f, d)| format!("{f}: {d}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut details = ErrorDetails::new();
    for (field, description) in problems {
        details.add_bad_request_violation(field, description);
    }
    Status::with_error_details(Code::InvalidArgument, message, details).into_http()
}

/// The first gRPC frame's message, if the body is one uncompressed frame.
fn message_of(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let message = rest.get(4..4 + usize::try_from(len).ok()?)?;
    (flag == 0).then_some(message)
}

impl<S> Service<http::Request<Body>> for Screen<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(input) = self.inputs.get(request.uri().path()).cloned() else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready handles this call; a clone
        // takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes: Bytes = match http_body_util::Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(Status::resource_exhausted(
                        "the request is larger than the issuer accepts (4 MiB)",
                    )
                    .into_http());
                }
            };
            if let Some(problems) = message_of(&bytes).and_then(|m| screen(&input, m))
                && !problems.is_empty()
            {
                return Ok(refusal(problems));
            }
            let request =
                http::Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)));
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tessera_proto::v1;

    fn layer() -> ScreenLayer {
        ScreenLayer::new(tessera_proto::FILE_DESCRIPTOR_SET).expect("descriptors")
    }

    fn problems<M: Message>(path: &str, message: &M) -> Vec<String> {
        let layer = layer();
        let input = layer.inputs.get(path).expect("a known RPC");
        screen(input, &message.encode_to_vec())
            .expect("decodes")
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn every_string_field_is_reached_however_nested() {
        let request = v1::UpdateTokenRequest {
            target: Some(v1::TokenSelector {
                owner: "al\u{0}ice".into(),
                ..Default::default()
            }),
            token: Some(v1::Token {
                name: "ci\u{202E}gpj".into(),
                description: "two\nlines\tfine".into(),
                permissions: vec![v1::Grant {
                    resource: "repositories".into(),
                    actions: vec!["read".into(), "ru\u{7}n".into()],
                }],
                ..Default::default()
            }),
            update_mask: None,
        };
        let mut found = problems("/tessera.v1.TokenService/UpdateToken", &request);
        found.sort();
        assert_eq!(
            found,
            [
                "target.owner",
                "token.name",
                "token.permissions[0].actions[1]"
            ]
        );
    }

    #[test]
    fn clean_requests_pass_and_zero_width_is_fine_outside_names() {
        let request = v1::CreateTokenRequest {
            name: "nightly build".into(),
            description: "zero\u{200B}width is only a name's problem".into(),
            ..Default::default()
        };
        assert!(problems("/tessera.v1.TokenService/CreateToken", &request).is_empty());
        let long = v1::GetUserRequest {
            user: "x".repeat(MAX_CHARS + 1),
        };
        assert_eq!(problems("/tessera.v1.UserService/GetUser", &long), ["user"]);
    }

    #[test]
    fn frames_are_read_only_when_whole_and_uncompressed() {
        assert_eq!(message_of(&[0, 0, 0, 0, 2, 8, 1]), Some(&[8, 1][..]));
        assert_eq!(message_of(&[1, 0, 0, 0, 1, 8]), None, "compressed");
        assert_eq!(message_of(&[0, 0, 0, 0, 9, 8]), None, "short");
        assert_eq!(message_of(&[]), None);
    }
}
