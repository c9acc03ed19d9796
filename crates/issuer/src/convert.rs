//! Store rows to API messages.

use crate::error::IssuerError;
use prost_types::Timestamp;
use tessera_core::Grant;
use tessera_proto::v1;
use tessera_store::entity::{audit_event, signing_key, user};
use tessera_store::users;

/// A Unix time as a protobuf timestamp.
pub fn timestamp(secs: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

pub fn grant(g: Grant) -> v1::Grant {
    v1::Grant {
        resource: g.resource,
        actions: g.actions,
    }
}

pub fn session_kind(kind: Option<&str>) -> v1::SessionKind {
    match kind {
        Some("web") => v1::SessionKind::Web,
        Some("token_service") => v1::SessionKind::TokenService,
        Some("api") => v1::SessionKind::Api,
        _ => v1::SessionKind::Unspecified,
    }
}

pub fn session_kind_name(kind: v1::SessionKind) -> &'static str {
    match kind {
        v1::SessionKind::Web => "web",
        v1::SessionKind::TokenService => "token_service",
        v1::SessionKind::Api | v1::SessionKind::Unspecified => "api",
    }
}

/// A user as the API shows it (never the password hash).
pub fn user(row: user::Model) -> Result<v1::User, IssuerError> {
    let grants = users::grants_of(&row)?;
    Ok(v1::User {
        id: row.id,
        username: row.username,
        admin: row.admin,
        enabled: row.enabled,
        grants: grants.into_iter().map(grant).collect(),
        create_time: timestamp(row.create_time),
        update_time: timestamp(row.update_time),
    })
}

/// A signing key as published, judged at `now`.
pub fn public_key(row: signing_key::Model, now: i64) -> v1::PublicKey {
    let state = if row.retire_time.is_some_and(|t| t <= now) {
        v1::KeyState::Retired
    } else if row.activate_time > now {
        v1::KeyState::Pending
    } else {
        v1::KeyState::Active
    };
    v1::PublicKey {
        kid: row.kid,
        algorithm: tessera_core::keys::ALGORITHM.into(),
        public_key: row.public_key,
        state: state as i32,
        create_time: timestamp(row.create_time),
        activate_time: timestamp(row.activate_time),
        retire_time: row.retire_time.and_then(timestamp),
        remove_time: row.remove_time.and_then(timestamp),
    }
}

pub fn audit_event(row: audit_event::Model) -> v1::AuditEvent {
    v1::AuditEvent {
        id: row.id,
        time: timestamp(row.time),
        actor: row.actor,
        action: row.action,
        target: row.target,
        outcome: row.outcome,
        detail: row.detail,
    }
}
