//! The audit log: who did what, when, with what outcome.

use crate::entity::audit_event;
use crate::{Store, StoreError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// An audit event about to be written. Never put a secret in any field.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// Username of the caller, or `-` when unauthenticated.
    pub actor: String,
    /// `token.create`, `session.login`, …
    pub action: String,
    /// What was acted on.
    pub target: String,
    /// `ok`; for a refused call the gRPC code name (`FAILED_PRECONDITION`);
    /// `denied` for a failed login.
    pub outcome: String,
    /// Free text a person can read.
    pub detail: String,
}

impl NewAudit {
    /// A successful action.
    pub fn ok(actor: &str, action: &str, target: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome: "ok".into(),
            detail: String::new(),
        }
    }

    /// The same event with another outcome.
    pub fn with_outcome(mut self, outcome: &str, detail: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self.detail = detail.into();
        self
    }
}

/// The longest values the columns hold (in characters, as PostgreSQL
/// counts them): longer ones are cut rather than failing the change they
/// record.
const ACTOR_CHARS: usize = 128;
const ACTION_CHARS: usize = 64;
const TARGET_CHARS: usize = 256;
const OUTCOME_CHARS: usize = 32;

/// `text` cut to `chars` characters, with control characters (which
/// PostgreSQL cannot store, in NUL's case) shown as U+FFFD: an audit event
/// records what was tried, even when what was tried was garbage.
fn clip(text: String, chars: usize) -> String {
    text.chars()
        .take(chars)
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\t') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

pub(crate) async fn insert(
    conn: &impl ConnectionTrait,
    time: i64,
    event: NewAudit,
) -> Result<(), StoreError> {
    audit_event::ActiveModel {
        id: NotSet,
        time: Set(time),
        actor: Set(clip(event.actor, ACTOR_CHARS)),
        action: Set(clip(event.action, ACTION_CHARS)),
        target: Set(clip(event.target, TARGET_CHARS)),
        outcome: Set(clip(event.outcome, OUTCOME_CHARS)),
        detail: Set(clip(event.detail, usize::MAX)),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events with an id below this (newest first paging).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u64,
}

impl Store {
    /// Records an event on its own, for actions that change nothing else
    /// (a failed login, say).
    pub async fn record_audit(&self, time: i64, event: NewAudit) -> Result<(), StoreError> {
        insert(&self.db, time, event).await
    }

    /// Audit events, newest first.
    pub async fn list_audit(
        &self,
        filter: AuditFilter,
    ) -> Result<Vec<audit_event::Model>, StoreError> {
        let mut query = audit_event::Entity::find();
        if let Some(actor) = filter.actor {
            query = query.filter(audit_event::Column::Actor.eq(actor));
        }
        if let Some(action) = filter.action {
            query = query.filter(audit_event::Column::Action.eq(action));
        }
        if let Some(before) = filter.before_id {
            query = query.filter(audit_event::Column::Id.lt(before));
        }
        Ok(query
            .order_by_desc(audit_event::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?)
    }
}
