//! Answers for proxies: the one decision behind Envoy's ext_authz `Check`
//! ([`ext_authz`]) and HTTP forward auth ([`forward_auth`]), both made by
//! [`Shared::judge`] — the same view, cache and rule as `Verify`.
//!
//! A proxied request is asked about in three steps:
//!
//! 1. the credential: the `authorization` header (`Bearer <t>` or
//!    `fmetoken token=<t>`), or, when the operator turns it on, FME's
//!    `fmetoken` query parameter;
//! 2. the question: a (resource, action) the proxy's own per-route
//!    configuration names (context extensions, `X-Tessera-*` headers); or
//!    else the route rules file ([`rules`]), which refuses requests no route
//!    matches; or else, with neither, only whether the token is valid;
//! 3. the answer, as an HTTP status a proxy acts on: 200, 401 (with a
//!    challenge), 403, 503 (stale view: fail closed) or 400, with how long a
//!    proxy may keep it — never past the verifier's sync interval or the
//!    token's expiry.

pub mod ext_authz;
pub mod forward_auth;
pub mod rules;

use crate::service::Shared;
use rules::{Asked, Rules, Unmatched};
use std::sync::Arc;
use tessera_core::authorization;
use tessera_proto::v1::{self, VerifyReason};

/// Which front asked: the label of `gateway_answers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    ExtAuthz,
    ForwardAuth,
}

impl Front {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExtAuthz => "ext_authz",
            Self::ForwardAuth => "forward_auth",
        }
    }
}

/// The query parameter FME clients put their token in.
pub const QUERY_TOKEN: &str = "fmetoken";

/// The proxy-facing decision, shared by both fronts.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    rules: Option<Rules>,
    query_token: bool,
}

/// One proxied request, as a front read it.
#[derive(Debug, Default)]
pub struct Ask<'a> {
    pub method: &'a str,
    /// The original path, query string included.
    pub path: &'a str,
    pub authorization: &'a str,
    /// The proxy's own per-route question (both or neither).
    pub resource: &'a str,
    pub action: &'a str,
    /// Who is behind the request, recorded as the token's last caller.
    pub caller: Option<std::net::IpAddr>,
}

/// Who the token names, for the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub token_id: String,
    pub owner_id: String,
    /// `api` or `session`.
    pub token_type: &'static str,
    /// RFC 3339.
    pub expire_time: String,
}

/// The decision, in HTTP terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 200, 400, 401, 403 or 503.
    pub status: u16,
    /// A `VerifyReason` name (`OK`, `EXPIRED`…), or `PUBLIC`, `NO_ROUTE`,
    /// `BAD_REQUEST`.
    pub reason: &'static str,
    /// A sentence for a person; never the token.
    pub message: String,
    /// Set on 200 when a token was checked.
    pub identity: Option<Identity>,
    /// How long a proxy may keep this answer; 0: not at all.
    pub max_age_secs: u64,
    /// Whether the request carries the `fmetoken` query parameter and
    /// reading it is on (ext_authz then removes it from the upstream
    /// request, whether or not it was the credential used).
    pub query_token: bool,
    /// 401 only: whether a credential was given at all.
    pub credential_given: bool,
}

impl Answer {
    pub(crate) fn plain(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            identity: None,
            max_age_secs: 0,
            query_token: false,
            credential_given: false,
        }
    }

    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        self.status == 200
    }

    /// The `WWW-Authenticate` challenge (RFC 6750), for 401 and for a
    /// missing permission.
    pub fn challenge(&self) -> Option<&'static str> {
        match (self.status, self.reason) {
            (401, _) if !self.credential_given => Some("Bearer realm=\"tessera\""),
            (401, _) => Some("Bearer realm=\"tessera\", error=\"invalid_token\""),
            (403, "PERMISSION_DENIED") => {
                Some("Bearer realm=\"tessera\", error=\"insufficient_scope\"")
            }
            _ => None,
        }
    }

    /// The `Cache-Control` value.
    pub fn cache_control(&self) -> String {
        match self.max_age_secs {
            0 => "no-store".to_owned(),
            n => format!("private, max-age={n}"),
        }
    }

    /// The small JSON body a refused client gets.
    pub fn body(&self) -> String {
        serde_json::json!({ "reason": self.reason, "message": self.message }).to_string()
    }
}

/// A `VerifyReason`'s short name, as answers and metrics show it.
pub fn reason_name(reason: VerifyReason) -> &'static str {
    reason.as_str_name().trim_start_matches("VERIFY_REASON_")
}

impl Gateway {
    /// The gateway over `shared`, with the route rules file, if any.
    pub fn new(shared: Arc<Shared>, rules: Option<Rules>) -> Self {
        let query_token = shared.config.fmetoken_query;
        Self {
            shared,
            rules,
            query_token,
        }
    }

    /// Whether a route rules file decides.
    pub fn has_rules(&self) -> bool {
        self.rules.is_some()
    }

    /// The shared state the fronts read settings from.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Decides on `ask`, counting the answer under `front`.
    pub async fn answer(&self, front: Front, ask: &Ask<'_>) -> Answer {
        self.counted(front, self.decide(ask).await)
    }

    /// `answer`, counted under `front`: every answer a front gives passes
    /// here, including those it makes before asking (a malformed request).
    pub fn counted(&self, front: Front, answer: Answer) -> Answer {
        self.shared.metrics.gateway_answered(front, answer.reason);
        answer
    }

    async fn decide(&self, ask: &Ask<'_>) -> Answer {
        let bad = |m: String| Answer::plain(400, "BAD_REQUEST", m);
        let (resource, action) = (ask.resource.trim(), ask.action.trim());
        let asked = match (resource.is_empty(), action.is_empty(), &self.rules) {
            (false, false, _) => Asked::Grant {
                resource: resource.to_owned(),
                action: action.to_owned(),
            },
            (true, true, None) => Asked::Token,
            (true, true, Some(rules)) => match rules.decide(ask.method, ask.path) {
                Ok(asked) => asked,
                Err(Unmatched::BadPath(why)) => return bad(why),
                Err(Unmatched::NoRoute) => {
                    let path = ask.path.split(['?', '#']).next().unwrap_or_default();
                    return Answer::plain(
                        403,
                        "NO_ROUTE",
                        format!("no route rule matches {} {path}", ask.method),
                    );
                }
            },
            _ => return bad("give both a resource and an action, or neither".into()),
        };
        let (resource, action) = match asked {
            Asked::Public => return Answer::plain(200, "PUBLIC", "a public route"),
            Asked::Token => (String::new(), String::new()),
            Asked::Grant { resource, action } => (resource, action),
        };
        let mut request = v1::VerifyRequest {
            resource,
            action,
            ..Default::default()
        };
        // The header, when it carries a Tessera credential; else, when it is
        // on, the query parameter (an app's own `Basic` header, say, does
        // not hide it). Whenever the parameter is there it is removed
        // upstream, used or not: it is a credential in a URL.
        let query = if self.query_token {
            rules::query_param(ask.path, QUERY_TOKEN)
        } else {
            None
        };
        let header = ask.authorization.trim();
        let query_token = query.is_some();
        match query {
            Some(token) if header.is_empty() || authorization::token(header).is_err() => {
                request.token = token;
            }
            _ => header.clone_into(&mut request.authorization),
        }
        let credential_given = !request.authorization.is_empty() || !request.token.is_empty();
        if !credential_given {
            return Answer::plain(401, "MALFORMED", "no token given");
        }
        match self.shared.judge(&request).await {
            Ok(verdict) => {
                self.shared.record_use(&verdict, || ask.caller);
                self.http(&verdict, query_token)
            }
            Err(e) => bad(e.to_string()),
        }
    }

    /// A Verify answer in HTTP terms.
    fn http(&self, verdict: &v1::VerifyResponse, query_token: bool) -> Answer {
        let reason = VerifyReason::try_from(verdict.reason).unwrap_or(VerifyReason::Unspecified);
        let status = match reason {
            VerifyReason::Ok => 200,
            VerifyReason::PermissionDenied => 403,
            VerifyReason::Stale => 503,
            _ => 401,
        };
        let now = self.shared.clock.now().timestamp();
        let expires = verdict.expire_time.as_ref().map(|t| t.seconds);
        // A proxy may keep an answer while the verifier itself would not
        // have learnt anything new: one sync interval, and never past the
        // token's expiry. A stale view's answer is not kept at all, nor one
        // about a token whose signature was not checked (a key reload may
        // yet make it good).
        let bound = self.shared.config.sync_interval.as_secs();
        let max_age_secs = match (status, expires) {
            (503, _) | (_, None) => 0,
            (_, Some(exp)) => bound.min(u64::try_from(exp - now).unwrap_or(0)),
        };
        let identity = verdict.valid.then(|| Identity {
            token_id: verdict.token_id.clone(),
            owner_id: verdict.owner_id.clone(),
            token_type: match v1::TokenType::try_from(verdict.r#type) {
                Ok(v1::TokenType::Session) => "session",
                _ => "api",
            },
            expire_time: expires
                .map(tessera_core::duration::instant)
                .unwrap_or_default(),
        });
        Answer {
            status,
            reason: reason_name(reason),
            message: if verdict.valid {
                "OK".to_owned()
            } else {
                verdict.message.replace(['\r', '\n'], " ")
            },
            identity,
            max_age_secs,
            query_token,
            credential_given: true,
        }
    }
}
