//! FME's token fields and dates, and how FME's permissions map onto
//! Tessera's permission catalog.
//!
//! FME's `restricted: false` (v3) and `customPermissions: false` (v4) are
//! Tessera's `all_permissions`: a snapshot of the creator's grants. A
//! restricted token's `permissions` are grants, each
//! `{"name": "<type>[/<item>]", "actions": [...]}`, where the type may be a
//! catalog type (`repositories`) or FME's name for that category (`Run
//! Workspace`, `Database Connections`, …; [`catalog_type`]) and actions are
//! FME's words lower-cased. The catalog itself, the caller's ceiling and
//! the dependency rule are the gRPC service's to apply: nothing here checks
//! a grant.

use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_proto::v1;

/// A permission as FME clients send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Permission {
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// The catalog type FME's category `name` stands for; any other name is
/// passed on as it is (the catalog refuses it if it knows no such type).
pub(crate) fn catalog_type(name: &str) -> String {
    let folded: String = name
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect();
    let known = match folded.as_str() {
        "repository" | "repositories" => "repositories",
        "runworkspace" | "workspace" | "workspaces" | "transformation" | "transformations" => {
            "workspaces"
        }
        "job" | "jobs" => "jobs",
        "automation" | "automations" => "automations",
        "schedule" | "schedules" => "schedules",
        "resource" | "resources" => "resources",
        "connection" | "connections" | "databaseconnections" | "webconnections" => "connections",
        "usermanagement" | "user" | "users" | "security" => "users",
        "token" | "tokens" => "tokens",
        "key" | "keys" => "keys",
        _ => return name.trim().to_owned(),
    };
    known.to_owned()
}

/// FME's permissions as Tessera grants (type names mapped, actions
/// lower-cased).
pub(crate) fn grants(permissions: &[Permission]) -> Vec<v1::Grant> {
    permissions
        .iter()
        .map(|p| {
            let resource = match p.name.trim().split_once('/') {
                Some((kind, item)) => format!("{}/{item}", catalog_type(kind)),
                None => catalog_type(&p.name),
            };
            v1::Grant {
                resource,
                actions: p.actions.iter().map(|a| a.trim().to_lowercase()).collect(),
            }
        })
        .collect()
}

/// A token's grants in FME's permission shape.
pub(crate) fn permissions(grants: &[v1::Grant]) -> Value {
    grants
        .iter()
        .map(|g| json!({"name": g.resource, "actions": g.actions}))
        .collect()
}

/// Adds a restricted token's permissions to its fields. A token with all
/// permissions shows none, so its fields can be sent back in an update as
/// they were read.
fn with_permissions(mut value: Value, token: &v1::Token) -> Value {
    if !token.all_permissions
        && let Some(object) = value.as_object_mut()
    {
        object.insert("permissions".into(), permissions(&token.permissions));
    }
    value
}

/// FME's `type`: `USER` for an API token (made by a user), `SESSION` for a
/// session token.
pub(crate) fn token_type(token: &v1::Token) -> &'static str {
    if token.r#type == v1::TokenType::Session as i32 {
        "SESSION"
    } else {
        "USER"
    }
}

/// FME's `type` filter value as Tessera's.
pub(crate) fn parse_token_type(text: &str) -> Option<v1::TokenType> {
    match text.trim().to_ascii_uppercase().as_str() {
        "USER" | "API" => Some(v1::TokenType::Api),
        "SESSION" => Some(v1::TokenType::Session),
        _ => None,
    }
}

/// The judged state, as Tessera names it (an addition to FME's fields).
fn status(token: &v1::Token) -> &'static str {
    match v1::TokenStatus::try_from(token.status) {
        Ok(v1::TokenStatus::Active) => "active",
        Ok(v1::TokenStatus::Disabled) => "disabled",
        Ok(v1::TokenStatus::Expired) => "expired",
        Ok(v1::TokenStatus::Revoked) => "revoked",
        _ => "unknown",
    }
}

fn seconds(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds)
}

/// A date as REST v3 writes it: RFC 3339, UTC, whole seconds.
pub(crate) fn v3_date(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A date as REST v4 writes it: RFC 3339, UTC, milliseconds.
pub(crate) fn v4_date(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// An RFC 3339 date as Unix seconds (rounded down).
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

/// A token as REST v3 shows it (never its secret).
pub(crate) fn v3_token(token: &v1::Token) -> Value {
    let fields = json!({
        "name": token.name,
        "description": token.description,
        "type": token_type(token),
        "user": token.owner_name,
        "enabled": token.enabled,
        "restricted": !token.all_permissions,
        "createdDate": v3_date(seconds(token.create_time.as_ref())),
        "lastSaveDate": v3_date(seconds(token.update_time.as_ref())),
        "expirationDate": v3_date(seconds(token.expire_time.as_ref())),
        "status": status(token),
    });
    with_permissions(fields, token)
}

/// A token as REST v4 shows it (never its secret); `now` for
/// `secondsToExpiry`.
pub(crate) fn v4_token(token: &v1::Token, now: i64) -> Value {
    let expires = seconds(token.expire_time.as_ref());
    let fields = json!({
        "name": token.name,
        "description": token.description,
        "owner": token.owner_name,
        "type": token_type(token),
        "customPermissions": !token.all_permissions,
        "enabled": token.enabled,
        "created": v4_date(seconds(token.create_time.as_ref())),
        "updated": v4_date(seconds(token.update_time.as_ref())),
        "secondsToExpiry": (expires - now).max(0),
        "expiration": v4_date(expires),
        "status": status(token),
    });
    with_permissions(fields, token)
}

/// `value` (an object) with the token's secret added, as a creation answers.
pub(crate) fn with_secret(mut value: Value, secret: String) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("token".into(), Value::String(secret));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fme_category_names_map_onto_catalog_types() {
        let asked = [
            Permission {
                name: "Run Workspace".into(),
                actions: vec!["Run".into()],
            },
            Permission {
                name: "Repositories/Samples".into(),
                actions: vec!["Read".into(), " Download ".into()],
            },
            Permission {
                name: "Database Connections".into(),
                actions: vec!["Access".into()],
            },
            Permission {
                name: "gadgets".into(),
                actions: vec!["spin".into()],
            },
        ];
        let got: Vec<(String, Vec<String>)> = grants(&asked)
            .into_iter()
            .map(|g| (g.resource, g.actions))
            .collect();
        assert_eq!(
            got,
            [
                ("workspaces".into(), vec!["run".into()]),
                (
                    "repositories/Samples".into(),
                    vec!["read".into(), "download".into()]
                ),
                ("connections".into(), vec!["access".into()]),
                ("gadgets".into(), vec!["spin".into()]),
            ]
        );
    }

    #[test]
    fn dates_are_rfc_3339_utc() {
        assert_eq!(v3_date(1_668_713_444), "2022-11-17T19:30:44Z");
        assert_eq!(v4_date(1_668_713_444), "2022-11-17T19:30:44.000Z");
        assert_eq!(parse_date("2022-11-17T19:30:44.996Z"), Some(1_668_713_444));
        assert_eq!(parse_date("2022-11-17T20:30:44+01:00"), Some(1_668_713_444));
        assert_eq!(parse_date("tomorrow"), None);
    }
}
