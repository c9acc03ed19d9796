//! Answers as text for people, or as JSON for scripts. The JSON shapes are
//! part of the CLI's contract: see docs/cli.md.

use crate::args::Output;
use chrono::{DateTime, Local, Utc};
use serde_json::{Value, json};
use std::io::{self, Write};
use std::path::Path;
use tessera_proto::v1;

/// Prints results in the chosen format.
pub struct Printer<'a> {
    out: &'a mut dyn Write,
    format: Output,
    now: DateTime<Utc>,
}

fn time(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
}

fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Value {
    time(ts).map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// "in 6 days", "3 hours ago": the largest unit, rounded to the nearest, so
/// a week-long token created a second ago reads "in 7 days".
pub fn relative(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (then - now).num_seconds();
    let abs = secs.unsigned_abs();
    if abs < 30 {
        // A moment the server set "now" lands a second or so ahead of this
        // machine's clock: that is now, not the future.
        return if secs > 2 {
            "in under a minute".into()
        } else {
            "just now".into()
        };
    }
    let minutes = (abs + 30) / 60;
    let (n, unit) = if minutes < 60 {
        (minutes, "minute")
    } else if minutes < 24 * 60 {
        ((minutes + 30) / 60, "hour")
    } else {
        ((minutes + 12 * 60) / (24 * 60), "day")
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs >= 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

fn status_name(status: i32) -> &'static str {
    match v1::TokenStatus::try_from(status) {
        Ok(v1::TokenStatus::Active) => "active",
        Ok(v1::TokenStatus::Disabled) => "disabled",
        Ok(v1::TokenStatus::Expired) => "expired",
        Ok(v1::TokenStatus::Revoked) => "revoked",
        _ => "unknown",
    }
}

fn type_name(t: i32) -> &'static str {
    match v1::TokenType::try_from(t) {
        Ok(v1::TokenType::Session) => "session",
        Ok(v1::TokenType::Api) => "api",
        _ => "unknown",
    }
}

fn session_kind(k: i32) -> Value {
    match v1::SessionKind::try_from(k) {
        Ok(v1::SessionKind::Web) => "web".into(),
        Ok(v1::SessionKind::TokenService) => "token_service".into(),
        Ok(v1::SessionKind::Api) => "api".into(),
        _ => Value::Null,
    }
}

fn grants_json(grants: &[v1::Grant]) -> Value {
    grants
        .iter()
        .map(|g| json!({ "resource": g.resource, "actions": g.actions }))
        .collect()
}

fn grants_text(grants: &[v1::Grant]) -> String {
    if grants.is_empty() {
        return "(none)".into();
    }
    grants
        .iter()
        .map(|g| format!("{}:{}", g.resource, g.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A token as JSON.
pub fn token_json(t: &v1::Token) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "owner": t.owner_name,
        "owner_id": t.owner_id,
        "type": type_name(t.r#type),
        "session_kind": session_kind(t.session_kind),
        "status": status_name(t.status),
        "enabled": t.enabled,
        "all_permissions": t.all_permissions,
        "permissions": grants_json(&t.permissions),
        "create_time": rfc3339(t.create_time.as_ref()),
        "expire_time": rfc3339(t.expire_time.as_ref()),
        "key_id": t.key_id,
        "last_used_time": rfc3339(t.last_used_time.as_ref()),
        "use_count": t.use_count,
        "last_caller_address": t.last_caller_address,
    })
}

fn user_json(u: &v1::User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "admin": u.admin,
        "enabled": u.enabled,
        "grants": grants_json(&u.grants),
        "create_time": rfc3339(u.create_time.as_ref()),
        "update_time": rfc3339(u.update_time.as_ref()),
    })
}

/// A token just given a secret: what `create`, `duplicate` and `rotate` print.
#[derive(Debug)]
pub struct Minted<'a> {
    pub token: Option<&'a v1::Token>,
    pub secret: &'a str,
    /// Grants added because `--grant-dependencies` asked for them.
    pub added: &'a [v1::Grant],
}

/// The width of a text column: its header or its longest value.
fn width<'a>(header: &str, values: impl Iterator<Item = &'a str>) -> usize {
    values
        .map(|v| v.chars().count())
        .chain([header.len()])
        .max()
        .unwrap_or(0)
}

/// A user's grants as they apply: an administrator holds everything,
/// whatever grants are also stored for them.
fn user_grants_text(u: &v1::User) -> String {
    if u.admin {
        "* (administrator)".into()
    } else {
        grants_text(&u.grants)
    }
}

fn key_state(state: i32) -> &'static str {
    match v1::KeyState::try_from(state) {
        Ok(v1::KeyState::Pending) => "pending",
        Ok(v1::KeyState::Active) => "active",
        Ok(v1::KeyState::Retired) => "retired",
        _ => "unknown",
    }
}

fn key_json(k: &v1::PublicKey) -> Value {
    json!({
        "kid": k.kid,
        "algorithm": k.algorithm,
        "public_key": k.public_key,
        "state": key_state(k.state),
        "create_time": rfc3339(k.create_time.as_ref()),
        "activate_time": rfc3339(k.activate_time.as_ref()),
        "retire_time": rfc3339(k.retire_time.as_ref()),
        "remove_time": rfc3339(k.remove_time.as_ref()),
    })
}

/// The stable name of a verification reason (`OK`, `REVOKED`…).
pub fn reason_name(reason: i32) -> String {
    v1::VerifyReason::try_from(reason)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("VERIFY_REASON_")
                .to_owned()
        })
        .unwrap_or_else(|_| "UNKNOWN".into())
}

impl<'a> Printer<'a> {
    pub fn new(out: &'a mut dyn Write, format: Output) -> Self {
        Self {
            out,
            format,
            now: Utc::now(),
        }
    }

    fn json(&mut self, value: &Value) -> io::Result<()> {
        writeln!(self.out, "{value}")
    }

    fn when(&self, ts: Option<&prost_types::Timestamp>) -> String {
        match time(ts) {
            Some(t) => format!(
                "{} ({})",
                t.with_timezone(&Local).format("%Y-%m-%d %H:%M"),
                relative(t, self.now)
            ),
            None => "-".into(),
        }
    }

    /// "2026-11-28 14:02 (3 days ago) from 10.0.0.7, 42 uses", or "never".
    fn last_used(&self, t: &v1::Token) -> String {
        if t.last_used_time.is_none() {
            return "never (as verifiers have reported)".into();
        }
        let mut text = self.when(t.last_used_time.as_ref());
        if !t.last_caller_address.is_empty() {
            text.push_str(&format!(" from {}", t.last_caller_address));
        }
        let plural = if t.use_count == 1 { "" } else { "s" };
        text.push_str(&format!(", {} use{plural}", t.use_count));
        text
    }

    fn token_text(&mut self, t: &v1::Token) -> io::Result<()> {
        let expires = self.when(t.expire_time.as_ref());
        writeln!(self.out, "id:          {}", t.id)?;
        writeln!(self.out, "name:        {}", t.name)?;
        writeln!(self.out, "owner:       {}", t.owner_name)?;
        writeln!(self.out, "type:        {}", type_name(t.r#type))?;
        writeln!(self.out, "status:      {}", status_name(t.status))?;
        writeln!(self.out, "expires:     {expires}")?;
        writeln!(self.out, "last used:   {}", self.last_used(t))?;
        writeln!(self.out, "permissions: {}", grants_text(&t.permissions))?;
        if !t.description.is_empty() {
            writeln!(self.out, "description: {}", t.description)?;
        }
        Ok(())
    }

    /// One token.
    pub fn token(&mut self, t: &v1::Token) -> io::Result<()> {
        match self.format {
            Output::Json => self.json(&token_json(t)),
            Output::Text => self.token_text(t),
        }
    }

    /// A token with its new secret (or where the secret was saved).
    pub fn token_with_secret(
        &mut self,
        minted: &Minted<'_>,
        saved_to: Option<&Path>,
    ) -> io::Result<()> {
        let (t, secret) = (minted.token, minted.secret);
        match self.format {
            Output::Json => {
                let value = json!({
                    "token": t.map_or(Value::Null, token_json),
                    "secret": if saved_to.is_some() { Value::Null } else { Value::String(secret.into()) },
                    "saved_to": saved_to.map(|p| p.display().to_string()),
                    "added_dependencies": grants_json(minted.added),
                });
                self.json(&value)
            }
            Output::Text => {
                if let Some(t) = t {
                    self.token_text(t)?;
                }
                if !minted.added.is_empty() {
                    writeln!(
                        self.out,
                        "added:       {} (dependencies of the grants asked for)",
                        grants_text(minted.added)
                    )?;
                }
                match saved_to {
                    Some(path) => writeln!(
                        self.out,
                        "secret:      saved to {} (owner-only)",
                        path.display()
                    ),
                    None => {
                        writeln!(self.out, "secret:      {secret}")?;
                        writeln!(self.out, "(the secret is shown only this once)")
                    }
                }
            }
        }
    }

    /// Tokens, one a line.
    pub fn tokens(&mut self, tokens: &[v1::Token]) -> io::Result<()> {
        if self.format == Output::Json {
            let list: Vec<Value> = tokens.iter().map(token_json).collect();
            return self.json(&json!({ "tokens": list }));
        }
        // Columns as wide as their longest value, so long names never
        // push the next column out of line.
        let name_w = width("NAME", tokens.iter().map(|t| t.name.as_str()));
        let owner_w = width("OWNER", tokens.iter().map(|t| t.owner_name.as_str()));
        writeln!(
            self.out,
            "{:<36}  {:<name_w$}  {:<owner_w$}  {:<8}  {:<8}  {:<14}  LAST USED",
            "ID", "NAME", "OWNER", "TYPE", "STATUS", "EXPIRES"
        )?;
        for t in tokens {
            let expires =
                time(t.expire_time.as_ref()).map_or_else(|| "-".into(), |e| relative(e, self.now));
            let used = time(t.last_used_time.as_ref())
                .map_or_else(|| "never".into(), |u| relative(u, self.now));
            writeln!(
                self.out,
                "{:<36}  {:<name_w$}  {:<owner_w$}  {:<8}  {:<8}  {expires:<14}  {used}",
                t.id,
                t.name,
                t.owner_name,
                type_name(t.r#type),
                status_name(t.status)
            )?;
        }
        Ok(())
    }

    /// One user.
    pub fn user(&mut self, u: &v1::User) -> io::Result<()> {
        if self.format == Output::Json {
            return self.json(&user_json(u));
        }
        writeln!(self.out, "id:       {}", u.id)?;
        writeln!(self.out, "username: {}", u.username)?;
        writeln!(self.out, "admin:    {}", u.admin)?;
        writeln!(self.out, "enabled:  {}", u.enabled)?;
        writeln!(self.out, "grants:   {}", user_grants_text(u))
    }

    /// Users, one a line.
    pub fn users(&mut self, users: &[v1::User]) -> io::Result<()> {
        if self.format == Output::Json {
            let list: Vec<Value> = users.iter().map(user_json).collect();
            return self.json(&json!({ "users": list }));
        }
        let name_w = width("USERNAME", users.iter().map(|u| u.username.as_str()));
        writeln!(
            self.out,
            "{:<name_w$}  {:<5}  {:<7}  GRANTS",
            "USERNAME", "ADMIN", "ENABLED"
        )?;
        for u in users {
            writeln!(
                self.out,
                "{:<name_w$}  {:<5}  {:<7}  {}",
                u.username,
                u.admin,
                u.enabled,
                user_grants_text(u)
            )?;
        }
        Ok(())
    }

    /// Keys, one a line.
    pub fn keys(&mut self, keys: &[v1::PublicKey]) -> io::Result<()> {
        if self.format == Output::Json {
            let list: Vec<Value> = keys.iter().map(key_json).collect();
            return self.json(&json!({ "keys": list }));
        }
        writeln!(
            self.out,
            "{:<16}  {:<8}  {:<36}  PUBLIC KEY",
            "KID", "STATE", "ACTIVE FROM"
        )?;
        for k in keys {
            let active = self.when(k.activate_time.as_ref());
            writeln!(
                self.out,
                "{:<16}  {:<8}  {:<36}  {}",
                k.kid,
                key_state(k.state),
                active,
                k.public_key
            )?;
        }
        Ok(())
    }

    /// Audit events, newest first.
    pub fn audit(&mut self, events: &[v1::AuditEvent]) -> io::Result<()> {
        if self.format == Output::Json {
            let list: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "time": rfc3339(e.time.as_ref()),
                        "actor": e.actor,
                        "action": e.action,
                        "target": e.target,
                        "outcome": e.outcome,
                        "detail": e.detail,
                    })
                })
                .collect();
            return self.json(&json!({ "events": list }));
        }
        writeln!(
            self.out,
            "{:<16}  {:<12}  {:<20}  {:<8}  TARGET",
            "TIME", "ACTOR", "ACTION", "OUTCOME"
        )?;
        for e in events {
            let at = time(e.time.as_ref())
                .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            writeln!(
                self.out,
                "{at:<16}  {:<12}  {:<20}  {:<8}  {}",
                e.actor, e.action, e.outcome, e.target
            )?;
        }
        Ok(())
    }

    /// A verifier's answer.
    pub fn verdict(&mut self, v: &v1::VerifyResponse) -> io::Result<()> {
        if self.format == Output::Json {
            // The identity is there whenever the signature checked, refused
            // or not; otherwise every identity field is null, never "".
            let known = !v.token_id.is_empty();
            let text = |s: &str| {
                if known {
                    Value::String(s.into())
                } else {
                    Value::Null
                }
            };
            let value = json!({
                "valid": v.valid,
                "reason": reason_name(v.reason),
                "message": v.message,
                "token_id": text(&v.token_id),
                "owner_id": text(&v.owner_id),
                "type": text(type_name(v.r#type)),
                "grants": grants_json(&v.grants),
                "expire_time": rfc3339(v.expire_time.as_ref()),
            });
            return self.json(&value);
        }
        let reason = reason_name(v.reason);
        if v.valid {
            writeln!(self.out, "valid ({reason})")?;
            writeln!(self.out, "token:   {}", v.token_id)?;
            writeln!(self.out, "owner:   {}", v.owner_id)?;
            writeln!(self.out, "expires: {}", self.when(v.expire_time.as_ref()))?;
            writeln!(self.out, "grants:  {}", grants_text(&v.grants))
        } else {
            writeln!(self.out, "invalid: {reason}: {}", v.message)?;
            if !v.token_id.is_empty() {
                writeln!(self.out, "token:   {} (owner {})", v.token_id, v.owner_id)?;
            }
            Ok(())
        }
    }

    /// A plain confirmation (`{"ok": true, …}` in JSON).
    pub fn done(&mut self, text: &str, extra: Value) -> io::Result<()> {
        match self.format {
            Output::Json => {
                let mut value = json!({ "ok": true });
                if let (Some(map), Value::Object(more)) = (value.as_object_mut(), extra) {
                    map.extend(more);
                }
                self.json(&value)
            }
            Output::Text => writeln!(self.out, "{text}"),
        }
    }

    /// The raw JSON text the server gave (JWKS).
    pub fn raw(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(format: Output, print: impl FnOnce(&mut Printer<'_>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        print(&mut Printer::new(&mut out, format)).expect("print");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn verify_json_names_the_token_whenever_the_signature_checked() {
        let unsigned = v1::VerifyResponse {
            reason: v1::VerifyReason::Malformed as i32,
            ..Default::default()
        };
        let doc: Value =
            serde_json::from_str(&printed(Output::Json, |p| p.verdict(&unsigned))).expect("json");
        for field in ["token_id", "owner_id", "type"] {
            assert_eq!(
                doc[field],
                Value::Null,
                "{field} without a checked signature"
            );
        }
        let refused = v1::VerifyResponse {
            reason: v1::VerifyReason::Disabled as i32,
            token_id: "t1".into(),
            owner_id: "u1".into(),
            r#type: v1::TokenType::Api as i32,
            ..Default::default()
        };
        let doc: Value =
            serde_json::from_str(&printed(Output::Json, |p| p.verdict(&refused))).expect("json");
        assert_eq!(
            doc["type"], "api",
            "a refused but signed token keeps its type"
        );
        assert_eq!(doc["token_id"], "t1");
    }

    #[test]
    fn long_names_keep_the_columns_in_line_and_administrators_hold_everything() {
        let token = |name: &str| v1::Token {
            id: "01a2".into(),
            name: name.into(),
            owner_name: "admin".into(),
            ..Default::default()
        };
        let text = printed(Output::Text, |p| {
            p.tokens(&[
                token("ci"),
                token("a-token-name-much-longer-than-twenty-four"),
            ])
        });
        let column = |line: &str| line.find("admin").expect("owner column");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(column(lines[1]), column(lines[2]), "{text}");
        assert_eq!(lines[0].find("OWNER"), Some(column(lines[1])), "{text}");

        let admin = v1::User {
            username: "root".into(),
            admin: true,
            grants: vec![v1::Grant {
                resource: "jobs".into(),
                actions: vec!["read".into()],
            }],
            ..Default::default()
        };
        let text = printed(Output::Text, |p| p.users(&[admin]));
        assert!(text.contains("* (administrator)"), "{text}");
        assert!(!text.contains("jobs"), "not the stored grants: {text}");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = DateTime::<Utc>::from_timestamp(1_000_000, 0).expect("time");
        let at = |secs: i64| DateTime::<Utc>::from_timestamp(1_000_000 + secs, 0).expect("time");
        assert_eq!(relative(at(6 * 86_400 + 5), now), "in 6 days");
        assert_eq!(relative(at(3_600), now), "in 1 hour");
        assert_eq!(relative(at(-120), now), "2 minutes ago");
        assert_eq!(relative(at(20), now), "in under a minute");
        assert_eq!(relative(at(1), now), "just now");
        assert_eq!(relative(at(-5), now), "just now");
        assert_eq!(relative(at(7 * 86_400 - 2), now), "in 7 days");
        assert_eq!(relative(at(3_599), now), "in 1 hour");
    }
}
