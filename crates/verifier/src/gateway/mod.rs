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
//!    proxy may keep it: an allowed answer never past the verifier's sync
//!    interval or the token's expiry, a refusal not at all.
//!
//! Before any of it, the request's path is put in its one normal form
//! ([`rules::NormalPath`]), whoever asks the question: a path an
//! application could read as another path is refused (400 `BAD_PATH`), so
//! what reaches the application is what was decided on.

pub mod ext_authz;
pub mod forward_auth;
pub mod rules;

use crate::service::Shared;
use rules::{Asked, NormalPath, Rules, Unmatched};
use std::sync::Arc;
use tessera_core::authorization;
use tessera_proto::v1::{self, VerifyReason};

pub use crate::metrics::Front;

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
    /// `BAD_PATH`, `BAD_REQUEST`.
    pub reason: &'static str,
    /// A sentence for a person; never the token.
    pub message: String,
    /// Set on 200 when a token was checked.
    pub identity: Option<Identity>,
    /// How long a proxy may keep this answer, if it is allowed; 0: not at
    /// all. See [`Answer::keep_secs`].
    pub max_age_secs: u64,
    /// Whether the answer is allowed, reading the `fmetoken` query
    /// parameter is on, and the request carries it (ext_authz then removes
    /// it from the upstream request, whatever the route and whether or not
    /// it was the credential used).
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

    /// How long a proxy may keep this answer. A refusal not at all,
    /// whatever it says: a later change (EnableToken, a new grant, a fresh
    /// view, a key reload) may lift it at once, and a proxy that kept it
    /// would go on refusing.
    pub fn keep_secs(&self) -> u64 {
        if self.allowed() { self.max_age_secs } else { 0 }
    }

    /// The `Cache-Control` value.
    pub fn cache_control(&self) -> String {
        match self.keep_secs() {
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
        // A credential in a URL: wherever it is read, every allowed answer
        // takes it out of the upstream request, public routes included and
        // whether or not it was the credential used.
        let query = if self.query_token {
            rules::query_value(ask.path, QUERY_TOKEN)
        } else {
            None
        };
        let mut answer = self.decide_with(ask, query).await;
        answer.query_token = answer.allowed() && query.is_some();
        answer
    }

    async fn decide_with(&self, ask: &Ask<'_>, query: Option<&str>) -> Answer {
        let bad = |m: String| Answer::plain(400, "BAD_REQUEST", m);
        // The one normal form, whoever asks the question: the application
        // acts on this path, so a path it could read as another is refused
        // before any route or question looks at it. A front that was given
        // no path (forward auth without X-Forwarded-Uri) has nothing to
        // refuse; only the route rules need one.
        let path = if ask.path.is_empty() {
            None
        } else {
            match NormalPath::parse(ask.path) {
                Ok(path) => Some(path),
                Err(why) => return Answer::plain(400, "BAD_PATH", why),
            }
        };
        let (resource, action) = (ask.resource.trim(), ask.action.trim());
        let asked = match (resource.is_empty(), action.is_empty(), &self.rules) {
            (false, false, _) => Asked::Grant {
                resource: resource.to_owned(),
                action: action.to_owned(),
            },
            (true, true, None) => Asked::Token,
            (true, true, Some(rules)) => {
                let Some(path) = &path else {
                    return bad("no original path given: the route rules need it".into());
                };
                match rules.decide(ask.method, path) {
                    Ok(asked) => asked,
                    Err(Unmatched::BadPath(why)) => return Answer::plain(400, "BAD_PATH", why),
                    Err(Unmatched::NoRoute) => {
                        let path = ask.path.split(['?', '#']).next().unwrap_or_default();
                        return Answer::plain(
                            403,
                            "NO_ROUTE",
                            format!("no route rule matches {} {path}", ask.method),
                        );
                    }
                }
            }
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
        // not hide it).
        let header = ask.authorization.trim();
        let from_query = query
            .filter(|_| header.is_empty() || authorization::token(header).is_err())
            .and_then(rules::decode_query);
        match from_query {
            Some(token) => request.token = token,
            None => header.clone_into(&mut request.authorization),
        }
        let credential_given = !request.authorization.is_empty() || !request.token.is_empty();
        if !credential_given {
            return Answer::plain(401, "MALFORMED", "no token given");
        }
        match self.shared.judge(&request).await {
            Ok(verdict) => {
                self.shared.record_use(&verdict, || ask.caller);
                self.http(&verdict)
            }
            Err(e) => bad(e.to_string()),
        }
    }

    /// A Verify answer in HTTP terms.
    fn http(&self, verdict: &v1::VerifyResponse) -> Answer {
        let reason = VerifyReason::try_from(verdict.reason).unwrap_or(VerifyReason::Unspecified);
        let status = match reason {
            VerifyReason::Ok => 200,
            VerifyReason::PermissionDenied => 403,
            VerifyReason::Stale => 503,
            _ => 401,
        };
        let now = self.shared.clock.now().timestamp();
        let expires = verdict.expire_time.as_ref().map(|t| t.seconds);
        // A proxy may keep an allowed answer while the verifier itself
        // would not have learnt anything new: one sync interval, and never
        // past the token's expiry. A refusal is not kept at all (see
        // `Answer::keep_secs`).
        let bound = self.shared.config.sync_interval.as_secs();
        let max_age_secs = match (status, expires) {
            (200, Some(exp)) => bound.min(u64::try_from(exp - now).unwrap_or(0)),
            _ => 0,
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
            query_token: false,
            credential_given: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VerifierConfig;
    use std::time::Duration;
    use tessera_core::SystemClock;

    const RULES: &str = r#"
        [[route]]
        path = "/healthz"
        public = true

        [[route]]
        path = "/repositories/{name}/**"
        resource = "repositories/{name}"
        action = "read"

        [[route]]
        path = "/jobs/*"

        [[route]]
        path = "/whoami"
    "#;

    /// A gateway whose view is never loaded: every answer that needs a
    /// token checked is STALE, so those that are not show they were made
    /// before any check.
    fn gateway(rules: Option<&str>, tweak: impl FnOnce(&mut VerifierConfig)) -> Gateway {
        let mut config =
            VerifierConfig::new("127.0.0.1:0".parse().expect("address"), "sqlite::memory:");
        tweak(&mut config);
        let shared = Arc::new(Shared::new(config, Arc::new(SystemClock)));
        Gateway::new(
            shared,
            rules.map(|text| Rules::parse(text).expect("the rules parse")),
        )
    }

    fn ask<'a>(path: &'a str, authorization: &'a str) -> Ask<'a> {
        Ask {
            method: "GET",
            path,
            authorization,
            ..Ask::default()
        }
    }

    /// The normal form is applied once, before the question, on every
    /// path: with rules (each capture kind), and without them whether the
    /// proxy asks its own question or only for a valid token.
    #[tokio::test(flavor = "current_thread")]
    async fn paths_outside_the_normal_form_are_bad_path_whoever_asks() {
        let ruled = gateway(Some(RULES), |_| {});
        let unruled = gateway(None, |_| {});
        for path in [
            "/repositories/Samples/a%2F..%2F..%2Fadmin",
            "/repositories/a%2Fb/x",
            "/jobs/a%2Fb",
            "/jobs/a%5Cb",
            "/repositories/Samples/%2E%2E/x",
            "/repositories/Samples/x%00",
            "/repositories//x",
            "/repositories/Samples//x",
            "/healthz/",
        ] {
            for (gateway, resource, action) in [
                (&ruled, "", ""),
                (&unruled, "", ""),
                (&unruled, "repositories/Samples", "read"),
            ] {
                let answer = gateway
                    .decide(&Ask {
                        resource,
                        action,
                        ..ask(path, "Bearer a.b.c")
                    })
                    .await;
                assert_eq!(
                    (answer.status, answer.reason),
                    (400, "BAD_PATH"),
                    "{path} ({resource} {action}): {answer:?}"
                );
                assert_eq!(answer.cache_control(), "no-store");
                assert!(answer.challenge().is_none());
            }
        }
        // Without a path (forward auth without X-Forwarded-Uri) there is
        // nothing to refuse, unless the rules need it.
        let no_path = unruled.decide(&ask("", "")).await;
        assert_eq!((no_path.status, no_path.reason), (401, "MALFORMED"));
        let no_path = ruled.decide(&ask("", "")).await;
        assert_eq!((no_path.status, no_path.reason), (400, "BAD_REQUEST"));
        // A capture that would not name one resource is a bad path too.
        let colon = ruled.decide(&ask("/repositories/a:b/x", "")).await;
        assert_eq!((colon.status, colon.reason), (400, "BAD_PATH"));
    }

    /// The `fmetoken` parameter is taken out of every allowed answer,
    /// public routes included; only when reading it is on and it is there.
    #[tokio::test(flavor = "current_thread")]
    async fn the_query_credential_is_removed_from_public_answers_too() {
        let on = gateway(Some(RULES), |c| c.fmetoken_query = true);
        let public = on.decide(&ask("/healthz?fmetoken=secret", "")).await;
        assert_eq!((public.status, public.reason), (200, "PUBLIC"));
        assert!(public.query_token, "{public:?}");
        let undecodable = on.decide(&ask("/healthz?a=1&fmetoken=%zz", "")).await;
        assert!(undecodable.query_token, "{undecodable:?}");
        let without = on.decide(&ask("/healthz?fmetokens=1", "")).await;
        assert!(!without.query_token, "{without:?}");
        let off = gateway(Some(RULES), |_| {});
        let public = off.decide(&ask("/healthz?fmetoken=secret", "")).await;
        assert_eq!(public.status, 200);
        assert!(!public.query_token, "not read, not touched: {public:?}");
        // A refusal lets nothing through, so it removes nothing.
        let stale = on.decide(&ask("/whoami?fmetoken=secret", "")).await;
        assert_eq!((stale.status, stale.reason), (503, "STALE"));
        assert!(!stale.query_token);
    }

    /// Only an allowed answer may be kept, for at most one sync interval:
    /// a refusal a later change can lift is never kept, whatever the
    /// token's expiry.
    #[tokio::test(flavor = "current_thread")]
    async fn only_allowed_answers_may_be_kept() {
        let gateway = gateway(None, |c| c.sync_interval = Duration::from_secs(5));
        let in_an_hour = gateway.shared.clock.now().timestamp() + 3_600;
        let verdict = |reason: VerifyReason| v1::VerifyResponse {
            valid: reason == VerifyReason::Ok,
            reason: reason as i32,
            token_id: "t".into(),
            owner_id: "o".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: in_an_hour,
                nanos: 0,
            }),
            ..Default::default()
        };
        let ok = gateway.http(&verdict(VerifyReason::Ok));
        assert_eq!(ok.cache_control(), "private, max-age=5");
        assert_eq!(ok.keep_secs(), 5);
        for reason in [
            VerifyReason::Disabled,
            VerifyReason::PermissionDenied,
            VerifyReason::Stale,
            VerifyReason::Revoked,
            VerifyReason::Expired,
            VerifyReason::Malformed,
            VerifyReason::UnknownKey,
        ] {
            let refused = gateway.http(&verdict(reason));
            assert!(!refused.allowed(), "{reason:?}");
            assert_eq!(refused.cache_control(), "no-store", "{reason:?}");
            assert_eq!(refused.keep_secs(), 0, "{reason:?}");
        }
        // Refusals made before a token is checked.
        let missing = gateway.decide(&ask("/x", "")).await;
        assert_eq!(
            (missing.status, missing.cache_control().as_str()),
            (401, "no-store")
        );
        // Whatever a refusal's bound says, it is not kept.
        let refused = Answer {
            max_age_secs: 5,
            ..Answer::plain(403, "PERMISSION_DENIED", "no")
        };
        assert_eq!(refused.cache_control(), "no-store");
    }
}
