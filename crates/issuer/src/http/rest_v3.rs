//! FME's REST v3 token resources under `/fmerest/v3/tokens`, with v3's
//! field names (`expirationTimeout`, `restricted`, `user`,
//! `expirationDate`…) and statuses (201 created, 204 changed or deleted,
//! 422 for bad input).
//!
//! | FME | Tessera |
//! |---|---|
//! | `GET /tokens` | `ListTokens`: everyone's (`owner: -`) for a caller who may manage tokens, else the caller's |
//! | `GET /tokens/{user}` | `ListTokens` of that user |
//! | `POST /tokens` | `CreateToken` |
//! | `GET /tokens/{user}/{name}` | `GetToken` |
//! | `PUT /tokens/{user}/{name}` | `UpdateToken` (a later `expirationTimeout` extends in place) |
//! | `DELETE /tokens/{user}/{name}` | `DeleteToken` |

use super::Face;
use super::answer::{self, Dialect, Problem};
use super::input::{self, Params};
use super::rest::{self, Change};
use super::shape::{self, Permission};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;
use tessera_proto::v1;

const BASE: &str = "/fmerest/v3/tokens";

/// Query parameters v3 takes: the token, paging, and FME's `detail` and
/// `accept`, which change nothing here (answers are JSON).
const LIST_PARAMETERS: &[&str] = &["fmetoken", "limit", "offset", "detail", "accept"];
const ONE_PARAMETERS: &[&str] = &["fmetoken", "detail", "accept"];

pub(super) fn routes() -> Router<Arc<Face>> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route("/fmerest/v3/tokens/{user}", get(list_user))
        .route(
            "/fmerest/v3/tokens/{user}/{name}",
            get(get_one).put(update).delete(delete),
        )
}

/// Runs a handler's body, answering its refusal in v3's shape.
async fn v3(work: impl std::future::Future<Output = Result<Response, Problem>>) -> Response {
    work.await.unwrap_or_else(|p| p.answer(Dialect::V3))
}

fn refused(status: tonic::Status) -> Problem {
    Problem::from_status(Dialect::V3, &status)
}

async fn list(State(face): State<Arc<Face>>, request: Request) -> Response {
    v3(listing(&face, request, None)).await
}

async fn list_user(
    State(face): State<Arc<Face>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    v3(async {
        let user = rest::user(path)?;
        listing(&face, request, Some(user)).await
    })
    .await
}

async fn listing(
    face: &Face,
    request: Request,
    owner: Option<String>,
) -> Result<Response, Problem> {
    let (parts, _) = request.into_parts();
    let query = Params::of_query(&parts);
    query.only(LIST_PARAMETERS)?;
    let offset = query.integer(Dialect::V3, "offset")?;
    let limit = query.integer(Dialect::V3, "limit")?;
    let origin = input::origin(face, &parts, &query)?;
    let tokens = rest::list(face, &origin, owner.as_deref(), v1::TokenType::Unspecified)
        .await
        .map_err(refused)?;
    let items = tokens.iter().map(shape::v3_token).collect();
    Ok(answer::json(
        StatusCode::OK,
        &rest::page(items, offset, limit),
    ))
}

/// `POST /tokens`, as v3 takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    name: String,
    #[serde(default)]
    description: String,
    /// Seconds from now; unset: the issuer's default API token lifetime.
    expiration_timeout: Option<i64>,
    /// The owner: the caller's own name, or left out.
    user: Option<String>,
    enabled: Option<bool>,
    /// `false` (the default): all the caller's permissions.
    #[serde(default)]
    restricted: bool,
    permissions: Option<Vec<Permission>>,
    /// Tessera's addition: add the grants the asked ones depend on (FME's
    /// "grant additional permissions" prompt) instead of refusing them.
    #[serde(default)]
    grant_dependencies: bool,
}

async fn create(State(face): State<Arc<Face>>, request: Request) -> Response {
    v3(async {
        let (parts, body) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let asked: NewToken = input::json(Dialect::V3, &parts.headers, body).await?;
        let permissions = rest::asked_grants(
            Dialect::V3,
            "restricted",
            asked.restricted,
            asked.permissions.as_deref(),
        )?;
        rest::require_own(&face, &origin, Dialect::V3, "user", asked.user.as_deref()).await?;
        let created = face
            .grpc
            .tokens()
            .create_token(origin.request(v1::CreateTokenRequest {
                name: asked.name,
                description: asked.description,
                expiration: asked.expiration_timeout.map(|secs| {
                    v1::create_token_request::Expiration::ExpiresIn(prost_types::Duration {
                        seconds: secs,
                        nanos: 0,
                    })
                }),
                enabled: asked.enabled,
                all_permissions: !asked.restricted,
                permissions,
                grant_dependencies: asked.grant_dependencies,
            }))
            .await
            .map_err(refused)?
            .into_inner();
        let token = created.token.unwrap_or_default();
        let body = shape::with_secret(shape::v3_token(&token), created.secret);
        Ok(rest::created(
            BASE,
            &token,
            body,
            &created.added_dependencies,
        ))
    })
    .await
}

async fn get_one(
    State(face): State<Arc<Face>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    v3(async {
        let (owner, name) = rest::names(path)?;
        let (parts, _) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let token = rest::get(&face, &origin, (&owner, &name))
            .await
            .map_err(refused)?;
        Ok(answer::json(StatusCode::OK, &shape::v3_token(&token)))
    })
    .await
}

/// `PUT /tokens/{user}/{name}`, as v3 takes it. The fields a `GET` shows
/// may be sent back unchanged; the output-only ones are ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenChange {
    description: Option<String>,
    enabled: Option<bool>,
    /// Seconds from now: earlier narrows the token, later extends it in
    /// place (its secret keeps working until then).
    expiration_timeout: Option<i64>,
    restricted: Option<bool>,
    permissions: Option<Vec<Permission>>,
    /// Must match the path when sent.
    name: Option<String>,
    user: Option<String>,
    /// The expiry as a date, when `expirationTimeout` is not sent: what a
    /// token read back whole carries (unchanged, it changes nothing).
    expiration_date: Option<String>,
    #[serde(rename = "type")]
    _type: Option<serde_json::Value>,
    #[serde(rename = "createdDate")]
    _created_date: Option<serde_json::Value>,
    #[serde(rename = "lastSaveDate")]
    _last_save_date: Option<serde_json::Value>,
    #[serde(rename = "status")]
    _status: Option<serde_json::Value>,
}

async fn update(
    State(face): State<Arc<Face>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    v3(async {
        let (owner, name) = rest::names(path)?;
        let (parts, body) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let asked: TokenChange = input::json(Dialect::V3, &parts.headers, body).await?;
        if asked.name.as_deref().is_some_and(|n| n != name)
            || asked.user.as_deref().is_some_and(|u| u != owner)
        {
            return Err(Problem::invalid(
                Dialect::V3,
                "`name` and `user` name the token in the path and cannot change here",
            ));
        }
        let now = face.shared.now();
        let expire_time = match (asked.expiration_timeout, asked.expiration_date.as_deref()) {
            (Some(secs), _) => Some(now.saturating_add(secs)),
            (None, Some(date)) => Some(shape::parse_date(date).ok_or_else(|| {
                Problem::invalid(
                    Dialect::V3,
                    "`expirationDate` must be an RFC 3339 date, such as 2026-01-31T12:00:00Z \
                     (or set `expirationTimeout`, in seconds from now)",
                )
            })?),
            (None, None) => None,
        };
        let change = Change {
            description: asked.description,
            enabled: asked.enabled,
            expire_time,
            restricted: asked.restricted,
            permissions: asked.permissions,
        };
        rest::update(
            &face,
            &origin,
            Dialect::V3,
            "restricted",
            (&owner, &name),
            change,
        )
        .await?;
        Ok(answer::no_content())
    })
    .await
}

async fn delete(
    State(face): State<Arc<Face>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    v3(async {
        let (owner, name) = rest::names(path)?;
        let (parts, _) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        rest::delete(&face, &origin, (&owner, &name))
            .await
            .map_err(refused)?;
        Ok(answer::no_content())
    })
    .await
}
