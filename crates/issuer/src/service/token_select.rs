//! Finding the token a request names, as the caller may see it, and what
//! the caller may grant it.

use crate::auth::{self, Caller};
use crate::error::IssuerError;
use tessera_core::{Grant, TokenType, grants};
use tessera_proto::v1;
use tessera_store::Store;
use tessera_store::entity::{token, user};

/// What a caller who may not see a token is told: the same as when it does
/// not exist, so existence is not revealed.
pub(crate) const NOT_VISIBLE: &str = "no such token is visible to you";

/// The selector id naming the API token the call is made with.
pub(crate) const SELF: &str = "self";

/// Whether the call is about the token it is made with.
pub(crate) fn is_self(caller: &Caller, row: &token::Model) -> bool {
    caller.token.as_ref().is_some_and(|t| t.id == row.id)
}

pub(crate) fn not_found() -> IssuerError {
    IssuerError::NotFound(NOT_VISIBLE.into())
}

/// A token deleted between finding it and changing it is "not found" too.
pub(crate) fn gone_is_not_found(err: IssuerError) -> IssuerError {
    match err {
        IssuerError::NotFound(_) => not_found(),
        other => other,
    }
}

/// The grants in `wanted` that `ceiling` does not cover, one action at a time.
pub(crate) fn excess(ceiling: &[Grant], wanted: &[Grant]) -> Vec<String> {
    wanted
        .iter()
        .flat_map(|g| {
            g.actions
                .iter()
                .map(move |a| (g.resource.as_str(), a.as_str()))
        })
        .filter(|(resource, action)| !grants::allows(ceiling, resource, action))
        .map(|(resource, action)| format!("{resource}:{action}"))
        .collect()
}

/// The most the caller may give a token owned by `owner`: the owner's
/// grants, held to the caller's own ceiling (its grants, or its token's).
/// A manager of other users' tokens receives the secrets it duplicates or
/// rotates, so it must never mint more than it could hold itself.
pub(crate) fn ceiling_for(caller: &Caller, owner: &user::Model) -> Result<Vec<Grant>, IssuerError> {
    if caller.user.id == owner.id {
        return caller.ceiling();
    }
    let owners = auth::user_grants(owner)?;
    Ok(grants::intersect(&owners, &caller.ceiling()?))
}

/// Whether the caller may see and manage other users' tokens.
pub(crate) fn manages_tokens(caller: &Caller) -> Result<bool, IssuerError> {
    caller.may("tokens", "manage")
}

/// Refuses to issue a secret for a disabled owner: the verifiers know a
/// disabled user only by the revocation of the tokens issued until then, so
/// a secret issued later would pass them.
pub(crate) fn require_enabled_owner(owner: &user::Model) -> Result<(), IssuerError> {
    if owner.enabled {
        return Ok(());
    }
    Err(IssuerError::FailedPrecondition(format!(
        "the token's owner {:?} is disabled: enable the user before issuing a new secret",
        owner.username
    )))
}

/// Whether the row is a session token.
pub(crate) fn is_session(row: &token::Model) -> bool {
    TokenType::parse(&row.token_type) == Some(TokenType::Session)
}

/// The audit target a selector names, before it is resolved.
pub(crate) fn target(caller: &Caller, selector: Option<&v1::TokenSelector>) -> String {
    match selector {
        Some(s) if s.id == SELF => match &caller.token {
            Some(own) => format!("tokens/{}", own.id),
            None => "tokens/self".to_owned(),
        },
        Some(s) if !s.id.is_empty() => format!("tokens/{}", s.id),
        Some(s) => {
            let owner = if s.owner.is_empty() {
                caller.actor()
            } else {
                s.owner.as_str()
            };
            format!("users/{owner}/tokens/{}", s.name)
        }
        None => String::new(),
    }
}

/// Finds the token a selector names, as the caller may see it. Someone
/// else's token is visible only with `tokens: manage`; to any other caller
/// it is "not found", so its existence is not revealed.
pub(crate) async fn resolve(
    store: &Store,
    caller: &Caller,
    selector: Option<&v1::TokenSelector>,
    field: &str,
) -> Result<(token::Model, user::Model), IssuerError> {
    let Some(sel) = selector.filter(|s| !s.id.is_empty() || !s.name.is_empty()) else {
        return Err(IssuerError::invalid(
            field,
            "name a token by id, or by name (and owner)",
        ));
    };
    let row = if sel.id == SELF {
        let own = caller
            .token
            .as_ref()
            .filter(|t| !is_session(t))
            .ok_or_else(|| {
                IssuerError::invalid(
                    field,
                    "`self` names the API token the call is made with: call with that token",
                )
            })?;
        store.token_by_id(&own.id).await?
    } else if !sel.id.is_empty() {
        store.token_by_id(&sel.id).await?
    } else {
        let owner = if sel.owner.is_empty() || sel.owner == caller.user.username {
            Some(caller.user.clone())
        } else if manages_tokens(caller)? {
            store.user_by_username(&sel.owner).await?
        } else {
            None
        };
        match owner {
            Some(owner) => store.token_by_name(&owner.id, &sel.name).await?,
            None => None,
        }
    };
    let row = row.ok_or_else(not_found)?;
    if row.owner_id == caller.user.id {
        return Ok((row, caller.user.clone()));
    }
    if !manages_tokens(caller)? {
        return Err(not_found());
    }
    let owner = store
        .user_by_id(&row.owner_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((row, owner))
}
