//! What FME's REST v3 and v4 token resources share: listing with FME's
//! `limit`/`offset` paging, and the translation of a token update onto
//! `UpdateToken`. The two versions differ only in field names and shapes
//! ([`super::rest_v3`], [`super::rest_v4`]).

use super::Face;
use super::answer::{Dialect, Problem};
use super::grpc::Origin;
use super::input::Params;
use super::shape::{self, Permission};
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Value, json};
use tessera_core::authorization::{self, Credentials};
use tessera_proto::v1;
use tonic::{Code, Status};

/// The most tokens one listing reads (every page of them): FME's paging
/// counts the whole list, and past this the caller must narrow it.
const MAX_LISTED: usize = 100_000;

/// Tokens read per `ListTokens` page.
const PAGE: i32 = 1_000;

/// Who calls, for a request whose query may hold only `allowed`.
pub(super) fn caller(face: &Face, parts: &Parts, allowed: &[&str]) -> Result<Origin, Problem> {
    let query = Params::of_query(parts);
    query.only(allowed)?;
    super::input::origin(face, parts, &query)
}

/// The user and token name of a `…/tokens/{user}/{name}` path.
pub(super) fn names(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), Problem> {
    path.map(|Path(names)| names).map_err(|_| {
        Problem::bad_request("the path's user and token name must be percent-encoded UTF-8")
    })
}

/// The user of a `…/tokens/{user}` path.
pub(super) fn user(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(user)| user)
        .map_err(|_| Problem::bad_request("the path's user must be percent-encoded UTF-8"))
}

/// The selector of `owner`'s token `name`.
pub(super) fn selector(owner: &str, name: &str) -> Option<v1::TokenSelector> {
    Some(v1::TokenSelector {
        owner: owner.to_owned(),
        name: name.to_owned(),
        ..Default::default()
    })
}

/// Every token of `owner` (a username, `-` for everyone's), every page.
async fn list_of(
    face: &Face,
    origin: &Origin,
    owner: &str,
    token_type: v1::TokenType,
) -> Result<Vec<v1::Token>, Status> {
    let mut tokens = Vec::new();
    let mut page_token = String::new();
    loop {
        let reply = face
            .grpc
            .tokens()
            .list_tokens(origin.request(v1::ListTokensRequest {
                page_size: PAGE,
                page_token,
                owner: owner.to_owned(),
                r#type: token_type as i32,
                ..Default::default()
            }))
            .await?
            .into_inner();
        tokens.extend(reply.tokens);
        if tokens.len() > MAX_LISTED {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_LISTED} tokens match: list one user's at a time"
            )));
        }
        if reply.next_page_token.is_empty() {
            return Ok(tokens);
        }
        page_token = reply.next_page_token;
    }
}

/// The tokens a listing without an owner shows, as FME does: every user's
/// to a caller who may manage them (FME's "All Tokens"), the caller's own
/// to anyone else. The service decides who may: its refusal of the first
/// is what sends the second.
pub(super) async fn list(
    face: &Face,
    origin: &Origin,
    owner: Option<&str>,
    token_type: v1::TokenType,
) -> Result<Vec<v1::Token>, Status> {
    if let Some(owner) = owner {
        return list_of(face, origin, owner, token_type).await;
    }
    match list_of(face, origin, "-", token_type).await {
        Err(status) if status.code() == Code::PermissionDenied => {
            list_of(face, origin, "", token_type).await
        }
        other => other,
    }
}

/// FME's paged list: `offset` items skipped and at most `limit` shown
/// (negative or absent: from the start, and all), with the total count.
pub(super) fn page(items: Vec<Value>, offset: Option<i64>, limit: Option<i64>) -> Value {
    let total = items.len();
    let skip = offset
        .filter(|o| *o > 0)
        .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX));
    let take = limit
        .filter(|l| *l >= 0)
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let items: Vec<Value> = items.into_iter().skip(skip).take(take).collect();
    json!({
        "offset": offset.unwrap_or(-1),
        "limit": limit.unwrap_or(-1),
        "totalCount": total,
        "items": items,
    })
}

/// The username the caller authenticates as: read from Basic credentials
/// (no second password check), or asked of the service for a token.
pub(super) async fn caller_name(face: &Face, origin: &Origin) -> Result<String, Status> {
    if let Some(Ok(Credentials::Basic { username, .. })) = origin
        .authorization
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(authorization::parse)
    {
        return Ok(username);
    }
    Ok(face
        .grpc
        .users()
        .get_user(origin.request(v1::GetUserRequest::default()))
        .await?
        .into_inner()
        .username)
}

/// Refuses a `user` (v3) or `owner` (v4) field naming someone other than
/// the caller: the service makes tokens for the caller only.
pub(super) async fn require_own(
    face: &Face,
    origin: &Origin,
    dialect: Dialect,
    field: &str,
    named: Option<&str>,
) -> Result<(), Problem> {
    let Some(named) = named.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let caller = caller_name(face, origin)
        .await
        .map_err(|s| Problem::from_status(dialect, &s))?;
    if caller == named {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "a token is made for the caller: `{field}` must be your own username or be left \
             out (Tessera does not make tokens on another user's behalf)"
        ),
    ))
}

/// The permissions of a token to be made: FME's `restricted` (v3) or
/// `customPermissions` (v4) flag, and its permissions.
pub(super) fn asked_grants(
    dialect: Dialect,
    flag: &str,
    restricted: bool,
    permissions: Option<&[Permission]>,
) -> Result<Vec<v1::Grant>, Problem> {
    match permissions {
        Some(p) if !p.is_empty() && !restricted => Err(Problem::invalid(
            dialect,
            format!(
                "`permissions` are for a token with `{flag}: true`; leave them out for a token \
                 with all your permissions"
            ),
        )),
        Some(p) => Ok(shape::grants(p)),
        None => Ok(Vec::new()),
    }
}

/// A token update as FME asks for it.
#[derive(Debug, Default)]
pub(super) struct Change {
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// The new expiry, Unix seconds: earlier narrows, later extends in
    /// place (the service decides whether it may).
    pub expire_time: Option<i64>,
    /// `restricted` (v3) or `customPermissions` (v4).
    pub restricted: Option<bool>,
    pub permissions: Option<Vec<Permission>>,
}

/// Applies `change` to `owner`'s token `name` with `UpdateToken`.
pub(super) async fn update(
    face: &Face,
    origin: &Origin,
    dialect: Dialect,
    flag: &str,
    (owner, name): (&str, &str),
    change: Change,
) -> Result<(), Problem> {
    let refused = |s: Status| Problem::from_status(dialect, &s);
    let mut paths = Vec::new();
    let mut token = v1::Token::default();
    if let Some(restricted) = change.restricted {
        if change.permissions.is_some() && !restricted {
            return Err(Problem::invalid(
                dialect,
                format!("`permissions` are for a token with `{flag}: true`"),
            ));
        }
        if change.permissions.is_none() {
            let current = face
                .grpc
                .tokens()
                .get_token(origin.request(v1::GetTokenRequest {
                    token: selector(owner, name),
                }))
                .await
                .map_err(refused)?
                .into_inner();
            match (current.all_permissions, restricted) {
                (false, false) => {
                    return Err(Problem::new(
                        StatusCode::CONFLICT,
                        "a token with all permissions would hold more than this one: that \
                         widens its secret, so rotate the token (RotateToken) instead",
                    ));
                }
                (true, true) => {
                    return Err(Problem::invalid(
                        dialect,
                        "to restrict a token give the `permissions` it keeps",
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(description) = change.description {
        token.description = description;
        paths.push("description");
    }
    if let Some(enabled) = change.enabled {
        token.enabled = enabled;
        paths.push("enabled");
    }
    if let Some(at) = change.expire_time {
        token.expire_time = Some(prost_types::Timestamp {
            seconds: at,
            nanos: 0,
        });
        paths.push("expire_time");
    }
    if let Some(permissions) = &change.permissions {
        token.permissions = shape::grants(permissions);
        paths.push("permissions");
    }
    if paths.is_empty() {
        // Only a `restricted` flag matching the token's: nothing to do.
        if change.restricted.is_some() {
            return Ok(());
        }
        return Err(Problem::invalid(
            dialect,
            "the body changes nothing: give the fields to change",
        ));
    }
    face.grpc
        .tokens()
        .update_token(origin.request(v1::UpdateTokenRequest {
            target: selector(owner, name),
            token: Some(token),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.into_iter().map(str::to_owned).collect(),
            }),
        }))
        .await
        .map_err(refused)?;
    Ok(())
}

/// Deletes `owner`'s token `name`.
pub(super) async fn delete(
    face: &Face,
    origin: &Origin,
    (owner, name): (&str, &str),
) -> Result<(), Status> {
    face.grpc
        .tokens()
        .delete_token(origin.request(v1::DeleteTokenRequest {
            token: selector(owner, name),
        }))
        .await?;
    Ok(())
}

/// `owner`'s token `name`.
pub(super) async fn get(
    face: &Face,
    origin: &Origin,
    (owner, name): (&str, &str),
) -> Result<v1::Token, Status> {
    Ok(face
        .grpc
        .tokens()
        .get_token(origin.request(v1::GetTokenRequest {
            token: selector(owner, name),
        }))
        .await?
        .into_inner())
}

/// The `Location` of a token's resource under `base`, its user and name
/// percent-encoded.
pub(super) fn location(base: &str, owner: &str, name: &str) -> String {
    let encode = |s: &str| {
        form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!("{base}/{}/{}", encode(owner), encode(name))
}

/// The `201 Created` answer to a create in either version: `body` (the
/// token as that version shows it, with its secret), the dependencies the
/// issuer added, and a `Location` where the token now is.
pub(super) fn created(
    base: &str,
    token: &v1::Token,
    mut body: Value,
    added: &[v1::Grant],
) -> axum::response::Response {
    if !added.is_empty()
        && let Some(object) = body.as_object_mut()
    {
        object.insert("addedDependencies".into(), shape::permissions(added));
    }
    let mut response = super::answer::json(StatusCode::CREATED, &body);
    if let Ok(location) =
        axum::http::HeaderValue::from_str(&location(base, &token.owner_name, &token.name))
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_everything_and_show_a_slice() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        assert_eq!(
            page(items.clone(), Some(-1), Some(-1)),
            json!({"offset": -1, "limit": -1, "totalCount": 5, "items": [0, 1, 2, 3, 4]})
        );
        assert_eq!(
            page(items.clone(), Some(1), Some(2))["items"],
            json!([1, 2])
        );
        assert_eq!(page(items.clone(), Some(9), None)["items"], json!([]));
        assert_eq!(page(items, None, Some(0))["totalCount"], json!(5));
    }

    #[test]
    fn locations_encode_names() {
        assert_eq!(
            location("/fmerest/v3/tokens", "ann", "ci token/1"),
            "/fmerest/v3/tokens/ann/ci%20token%2F1"
        );
    }
}
