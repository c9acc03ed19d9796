//! The feed's wire forms of stored rows: events, keys and token uses.

use tessera_proto::v1;
use tessera_store::entity::signing_key;
use tessera_store::revocation::EventRow;
use tessera_store::usage::TokenUse;

/// An event in its wire form.
pub fn to_wire(row: EventRow) -> v1::RevocationEvent {
    v1::RevocationEvent {
        seq: row.seq,
        kind: row.kind,
        token_id: row.token_id.unwrap_or_default(),
        user_id: row.user_id.unwrap_or_default(),
        issued_before: row.issued_before,
        detail: row.detail,
        prune_after: row.prune_after,
    }
}

/// An event from its wire form.
pub fn from_wire(event: &v1::RevocationEvent) -> EventRow {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    EventRow {
        seq: event.seq,
        kind: event.kind.clone(),
        token_id: text(&event.token_id),
        user_id: text(&event.user_id),
        issued_before: event.issued_before,
        detail: event.detail.clone(),
        prune_after: event.prune_after,
    }
}

/// A published key's public half in its wire form.
pub fn key_to_wire(row: &signing_key::Model) -> v1::FeedKey {
    v1::FeedKey {
        kid: row.kid.clone(),
        public_key: row.public_key.clone(),
        issuer: row.issuer.clone().unwrap_or_default(),
    }
}

/// A token use as the store merges it; `None` for a use no verifier
/// could have counted (a negative count or time).
pub fn use_from_wire(token_use: v1::TokenUse) -> Option<TokenUse> {
    Some(TokenUse {
        token_id: token_use.token_id,
        last_used_time: (token_use.last_used_time >= 0).then_some(token_use.last_used_time)?,
        count: u64::try_from(token_use.count).ok()?,
        caller: (!token_use.last_caller.is_empty()).then_some(token_use.last_caller),
    })
}

/// A token use in its wire form.
pub fn use_to_wire(token_use: &TokenUse) -> v1::TokenUse {
    v1::TokenUse {
        token_id: token_use.token_id.clone(),
        last_used_time: token_use.last_used_time,
        count: i64::try_from(token_use.count).unwrap_or(i64::MAX),
        last_caller: token_use.caller.clone().unwrap_or_default(),
    }
}
