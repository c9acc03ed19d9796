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

/// What a call does with the tokens it names, as far as a call made with
/// an API token is concerned: passwords and sessions act for their user,
/// who manages their own tokens, but an API token acts within its grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// GetToken, ListTokens: the grant `tokens: read`, or the token itself.
    Read,
    /// CreateToken, DuplicateToken: `tokens: create` (and `read` to copy
    /// another token).
    Create,
    /// RotateToken: `tokens: write`, or the token itself.
    Rotate,
    /// UpdateToken, EnableToken, DisableToken, DeleteToken: `tokens: write`.
    Change,
}

impl Use {
    fn action(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Rotate | Self::Change => "write",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Self::Read => "read other tokens",
            Self::Create => "create tokens",
            Self::Rotate => "rotate other tokens",
            Self::Change => "change or delete tokens",
        }
    }

    /// Whether the token a call is made with may do this to itself
    /// without a `tokens` grant: read itself and renew its own secret.
    fn allowed_on_self(self) -> bool {
        matches!(self, Self::Read | Self::Rotate)
    }
}

/// The API token the call is made with, if it was one (not a session).
fn calling_api_token(caller: &Caller) -> Option<&token::Model> {
    caller.token.as_ref().filter(|t| !is_session(t))
}

/// Whether the caller holds what `use_` takes of a token caller.
/// `tokens: manage` covers every use: whoever may manage other users'
/// tokens may manage their own.
fn holds_use(caller: &Caller, use_: Use) -> Result<bool, IssuerError> {
    Ok(calling_api_token(caller).is_none()
        || caller.may("tokens", use_.action())?
        || manages_tokens(caller)?)
}

/// Refuses a call made with an API token that `use_` needs a `tokens`
/// grant for, when the token does not hold it. `target` is the token
/// the call names, when it names one.
pub(crate) fn require_use(
    caller: &Caller,
    use_: Use,
    target: Option<&token::Model>,
) -> Result<(), IssuerError> {
    let on_self = target.is_some_and(|row| is_self(caller, row));
    if (on_self && use_.allowed_on_self()) || holds_use(caller, use_)? {
        return Ok(());
    }
    Err(IssuerError::PermissionDenied(format!(
        "an API token may only read and rotate itself unless it holds a `tokens` grant: to {} \
         it needs `tokens: {}`; call with a password, a session, or a token that holds it",
        use_.doing(),
        use_.action()
    )))
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

/// Finds the token a selector names, as the caller may see it and use it
/// for `use_`. Someone else's token is visible only with `tokens: manage`;
/// to any other caller it is "not found", so its existence is not revealed.
/// An API token without the `tokens` grant `use_` takes is refused whether
/// or not the token it names exists, for the same reason.
pub(crate) async fn resolve(
    store: &Store,
    caller: &Caller,
    selector: Option<&v1::TokenSelector>,
    field: &str,
    use_: Use,
) -> Result<(token::Model, user::Model), IssuerError> {
    let found = find(store, caller, selector, field).await;
    match &found {
        Ok((row, _)) => require_use(caller, use_, Some(row))?,
        Err(IssuerError::NotFound(_)) => require_use(caller, use_, None)?,
        Err(_) => {}
    }
    found
}

async fn find(
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
        let own = calling_api_token(caller).ok_or_else(|| {
            let made_with = if caller.session().is_some() {
                "a session token"
            } else {
                "a password"
            };
            IssuerError::invalid(
                field,
                format!(
                    "`self` names the API token a call is made with, and this call was made \
                     with {made_with}: name the token by id, or by name"
                ),
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
