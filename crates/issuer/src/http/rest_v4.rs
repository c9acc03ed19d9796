//! FME's REST v4 token resources under `/fmeapiv4/tokens`, with v4's field
//! names (`secondsToExpiry`, `expiration`, `customPermissions`, `owner`,
//! `type`…) and statuses (201 created, 204 changed or deleted, 400 for bad
//! input). `fmeflow login` (Safe Software's own client) makes its token
//! here.
//!
//! | FME | Tessera |
//! |---|---|
//! | `GET /tokens` (`owner`, `type`, `limit`, `offset`) | `ListTokens` |
//! | `POST /tokens` | `CreateToken` |
//! | `GET /tokens/{owner}/{name}` | `GetToken` |
//! | `PUT /tokens/{owner}/{name}` | `UpdateToken` (a later expiry extends in place) |
//! | `DELETE /tokens/{owner}/{name}` | `DeleteToken` |

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

const BASE: &str = "/fmeapiv4/tokens";

const LIST_PARAMETERS: &[&str] = &["fmetoken", "limit", "offset", "owner", "type"];
const ONE_PARAMETERS: &[&str] = &["fmetoken"];

pub(super) fn routes() -> Router<Arc<Face>> {
    Router::new().route(BASE, get(list).post(create)).route(
        "/fmeapiv4/tokens/{owner}/{name}",
        get(get_one).put(update).delete(delete),
    )
}

async fn v4(work: impl std::future::Future<Output = Result<Response, Problem>>) -> Response {
    work.await.unwrap_or_else(|p| p.answer(Dialect::V4))
}

fn refused(status: tonic::Status) -> Problem {
    Problem::from_status(Dialect::V4, &status)
}

/// The expiry a v4 body asks for: `secondsToExpiry` from `now`, or the
/// date `expiration`, not both.
fn expiry(
    seconds_to_expiry: Option<i64>,
    expiration: Option<&str>,
    now: i64,
) -> Result<Option<i64>, Problem> {
    match (seconds_to_expiry, expiration) {
        (Some(_), Some(_)) => Err(Problem::invalid(
            Dialect::V4,
            "give `secondsToExpiry` or `expiration`, not both",
        )),
        (Some(secs), None) => Ok(Some(now.saturating_add(secs))),
        (None, Some(date)) => shape::parse_date(date).map(Some).ok_or_else(|| {
            Problem::invalid(
                Dialect::V4,
                "`expiration` must be an RFC 3339 date, such as 2026-01-31T12:00:00Z",
            )
        }),
        (None, None) => Ok(None),
    }
}

async fn list(State(face): State<Arc<Face>>, request: Request) -> Response {
    v4(async {
        let (parts, _) = request.into_parts();
        let query = Params::of_query(&parts);
        query.only(LIST_PARAMETERS)?;
        let offset = query.integer(Dialect::V4, "offset")?;
        let limit = query.integer(Dialect::V4, "limit")?;
        let token_type = match query.one("type")? {
            None => v1::TokenType::Unspecified,
            Some(text) => shape::parse_token_type(text)
                .ok_or_else(|| Problem::invalid(Dialect::V4, "`type` must be USER or SESSION"))?,
        };
        let owner = query.one("owner")?.map(str::to_owned);
        let origin = input::origin(&face, &parts, &query)?;
        let tokens = rest::list(&face, &origin, owner.as_deref(), token_type)
            .await
            .map_err(refused)?;
        let now = face.shared.now();
        let items = tokens.iter().map(|t| shape::v4_token(t, now)).collect();
        Ok(answer::json(
            StatusCode::OK,
            &rest::page(items, offset, limit),
        ))
    })
    .await
}

/// `POST /tokens`, as v4 takes it (and `fmeflow login` sends it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    name: String,
    #[serde(default)]
    description: String,
    enabled: Option<bool>,
    /// `false` (the default): all the caller's permissions.
    #[serde(default)]
    custom_permissions: bool,
    seconds_to_expiry: Option<i64>,
    expiration: Option<String>,
    permissions: Option<Vec<Permission>>,
    /// The owner: the caller's own name, or left out.
    owner: Option<String>,
    /// Tessera's addition, as in v3.
    #[serde(default)]
    grant_dependencies: bool,
}

async fn create(State(face): State<Arc<Face>>, request: Request) -> Response {
    v4(async {
        let (parts, body) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let asked: NewToken = input::json(Dialect::V4, &parts.headers, body).await?;
        let permissions = rest::asked_grants(
            Dialect::V4,
            "customPermissions",
            asked.custom_permissions,
            asked.permissions.as_deref(),
        )?;
        let expiration = match (asked.seconds_to_expiry, asked.expiration.as_deref()) {
            (Some(secs), None) => Some(v1::create_token_request::Expiration::ExpiresIn(
                prost_types::Duration {
                    seconds: secs,
                    nanos: 0,
                },
            )),
            (seconds, date) => expiry(seconds, date, face.shared.now())?.map(|at| {
                v1::create_token_request::Expiration::ExpireTime(prost_types::Timestamp {
                    seconds: at,
                    nanos: 0,
                })
            }),
        };
        rest::require_own(&face, &origin, Dialect::V4, "owner", asked.owner.as_deref()).await?;
        let created = face
            .grpc
            .tokens()
            .create_token(origin.request(v1::CreateTokenRequest {
                name: asked.name,
                description: asked.description,
                expiration,
                enabled: asked.enabled,
                all_permissions: !asked.custom_permissions,
                permissions,
                grant_dependencies: asked.grant_dependencies,
            }))
            .await
            .map_err(refused)?
            .into_inner();
        let token = created.token.unwrap_or_default();
        let now = face.shared.now();
        let body = shape::with_secret(shape::v4_token(&token, now), created.secret);
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
    v4(async {
        let (owner, name) = rest::names(path)?;
        let (parts, _) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let token = rest::get(&face, &origin, (&owner, &name))
            .await
            .map_err(refused)?;
        Ok(answer::json(
            StatusCode::OK,
            &shape::v4_token(&token, face.shared.now()),
        ))
    })
    .await
}

/// `PUT /tokens/{owner}/{name}`, as v4 takes it. The fields a `GET` shows
/// may be sent back; the output-only ones are ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenChange {
    description: Option<String>,
    enabled: Option<bool>,
    seconds_to_expiry: Option<i64>,
    expiration: Option<String>,
    custom_permissions: Option<bool>,
    permissions: Option<Vec<Permission>>,
    /// Must match the path when sent.
    name: Option<String>,
    owner: Option<String>,
    #[serde(rename = "type")]
    _type: Option<serde_json::Value>,
    #[serde(rename = "created")]
    _created: Option<serde_json::Value>,
    #[serde(rename = "updated")]
    _updated: Option<serde_json::Value>,
    #[serde(rename = "status")]
    _status: Option<serde_json::Value>,
}

async fn update(
    State(face): State<Arc<Face>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    v4(async {
        let (owner, name) = rest::names(path)?;
        let (parts, body) = request.into_parts();
        let origin = rest::caller(&face, &parts, ONE_PARAMETERS)?;
        let asked: TokenChange = input::json(Dialect::V4, &parts.headers, body).await?;
        if asked.name.as_deref().is_some_and(|n| n != name)
            || asked.owner.as_deref().is_some_and(|o| o != owner)
        {
            return Err(Problem::invalid(
                Dialect::V4,
                "`name` and `owner` name the token in the path and cannot change here",
            ));
        }
        // A token read back whole carries both; its date is what counts
        // then, since `secondsToExpiry` was only a reading of it.
        let seconds = asked
            .seconds_to_expiry
            .filter(|_| asked.expiration.is_none());
        let change = Change {
            description: asked.description,
            enabled: asked.enabled,
            expire_time: expiry(seconds, asked.expiration.as_deref(), face.shared.now())?,
            restricted: asked.custom_permissions,
            permissions: asked.permissions,
        };
        rest::update(
            &face,
            &origin,
            Dialect::V4,
            "customPermissions",
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
    v4(async {
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
