//! The issuer's own answer about a token: the rule the verifiers apply
//! ([`RevocationSet::check`]), over the events of the revocation log that
//! touch the token and its owner. The issuer keeps no second set of rules,
//! so `GetToken`, `ListTokens`, its filters and the authentication of
//! callers always say what a verifier says.

use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use std::collections::HashMap;
use tessera_core::revocation::{Judge, Refusal, RevocationSet};
use tessera_core::{Claims, Grant, TokenType};
use tessera_proto::v1;
use tessera_store::Store;
use tessera_store::entity::token;
use tessera_store::tokens;

/// A token's current secret as the rule judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    pub status: v1::TokenStatus,
    /// The grants in force (empty when refused).
    pub grants: Vec<Grant>,
    /// The expiry in force.
    pub expire_time: i64,
}

/// The claims of the row's current secret, as they were signed (its grants
/// and expiry as narrowed since, which judge the same: narrowing again by
/// the same events changes nothing).
pub(crate) fn current_claims(shared: &Shared, row: &token::Model) -> Result<Claims, IssuerError> {
    Ok(Claims {
        iss: shared.config.issuer_name.clone(),
        sub: row.owner_id.clone(),
        jti: row.id.clone(),
        iat: row.issue_time,
        nbf: row.issue_time,
        exp: row.expire_time,
        typ: TokenType::parse(&row.token_type).unwrap_or(TokenType::Api),
        grants: tokens::grants_of(row)?,
        ver: tokens::version_of(row),
        generation: tokens::generation_of(row),
    })
}

/// The issuer names this issuer accepts: its own.
pub(crate) fn judge_at(shared: &Shared, now: i64, leeway_secs: i64) -> Judge<'_> {
    Judge {
        now,
        leeway_secs,
        issuers: std::slice::from_ref(&shared.config.issuer_name),
    }
}

/// The clock leeway callers' tokens are allowed, as the verifiers allow it.
pub(crate) fn leeway(shared: &Shared) -> i64 {
    i64::try_from(shared.config.clock_leeway.as_secs()).unwrap_or(i64::MAX)
}

/// The revocation set for these tokens and their owners.
pub(crate) async fn set_for(
    store: &Store,
    token_ids: &[&str],
    owner_ids: &[&str],
) -> Result<RevocationSet, IssuerError> {
    let events = store.events_touching(token_ids, owner_ids).await?;
    Ok(RevocationSet::from_events(&events))
}

/// The status a refusal of a current secret shows as.
fn status_of(refusal: Refusal) -> v1::TokenStatus {
    match refusal {
        Refusal::Expired => v1::TokenStatus::Expired,
        Refusal::Disabled => v1::TokenStatus::Disabled,
        // A current secret is refused for good only by an owner change (a
        // deleted token has no row); the other refusals cannot happen to a
        // recorded secret signed by this issuer, and are shown as revoked
        // rather than as usable.
        Refusal::OwnerChanged
        | Refusal::Revoked
        | Refusal::UntrustedIssuer
        | Refusal::NotYetValid
        | Refusal::Malformed => v1::TokenStatus::Revoked,
    }
}

/// Judges the current secret of `row` at `now` (no leeway: a status says
/// what is true now, not what a lenient clock would still accept).
pub(crate) fn judge_row(
    shared: &Shared,
    set: &RevocationSet,
    row: &token::Model,
    now: i64,
) -> Result<Judged, IssuerError> {
    let claims = current_claims(shared, row)?;
    Ok(match set.check(&claims, judge_at(shared, now, 0)) {
        Ok(effective) => Judged {
            status: v1::TokenStatus::Active,
            grants: effective.grants.into_owned(),
            expire_time: effective.expire_time,
        },
        Err(refusal) => Judged {
            status: status_of(refusal),
            grants: claims.grants,
            expire_time: row.expire_time,
        },
    })
}

/// Judges `rows` (one query for all of them) and shows them as the API
/// does; `owners` maps owner ids to usernames.
pub(crate) async fn tokens(
    shared: &Shared,
    store: &Store,
    rows: Vec<token::Model>,
    owners: &HashMap<String, String>,
    now: i64,
) -> Result<Vec<(v1::Token, Judged)>, IssuerError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut owner_ids: Vec<&str> = rows.iter().map(|r| r.owner_id.as_str()).collect();
    owner_ids.sort_unstable();
    owner_ids.dedup();
    let set = set_for(store, &ids, &owner_ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let judged = judge_row(shared, &set, &row, now)?;
        let owner = owners.get(&row.owner_id).cloned().unwrap_or_default();
        out.push((shown(row, &owner, &judged)?, judged));
    }
    Ok(out)
}

/// One token, judged, as the API shows it.
pub(crate) async fn token(
    shared: &Shared,
    store: &Store,
    row: token::Model,
    owner_name: &str,
    now: i64,
) -> Result<v1::Token, IssuerError> {
    let owners = HashMap::from([(row.owner_id.clone(), owner_name.to_owned())]);
    let mut shown = tokens(shared, store, vec![row], &owners, now).await?;
    shown
        .pop()
        .map(|(token, _)| token)
        .ok_or_else(|| IssuerError::Internal("a judged token went missing".into()))
}

/// A token row as the API shows it, with its status, grants and expiry as
/// the revocation rule judged them.
fn shown(row: token::Model, owner_name: &str, judged: &Judged) -> Result<v1::Token, IssuerError> {
    let grants = judged.grants.clone();
    let status = judged.status;
    let token_type = match TokenType::parse(&row.token_type) {
        Some(TokenType::Api) => v1::TokenType::Api,
        Some(TokenType::Session) => v1::TokenType::Session,
        None => v1::TokenType::Unspecified,
    };
    Ok(v1::Token {
        session_kind: convert::session_kind(row.session_kind.as_deref()) as i32,
        id: row.id,
        name: row.name,
        description: row.description,
        owner_id: row.owner_id,
        owner_name: owner_name.into(),
        r#type: token_type as i32,
        enabled: row.enabled,
        all_permissions: row.all_permissions,
        permissions: grants.into_iter().map(convert::grant).collect(),
        create_time: convert::timestamp(row.create_time),
        expire_time: convert::timestamp(judged.expire_time),
        key_id: row.key_id,
        status: status as i32,
        update_time: convert::timestamp(row.update_time),
        last_used_time: row.last_used_time.and_then(convert::timestamp),
        use_count: row.use_count,
        last_caller_address: row.last_caller.unwrap_or_default(),
    })
}
