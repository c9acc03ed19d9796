//! `AuditService`: read the audit log. Callers holding `users: manage`
//! (administrators do) see every event, others only their own.

use crate::auth;
use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use tessera_proto::v1::{self, audit_service_server::AuditService};
use tessera_store::audit::AuditFilter;
use tonic::{Request, Response, Status};

pub(crate) struct Audit(pub Arc<Shared>);

impl Audit {
    async fn list(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<v1::ListAuditEventsResponse, IssuerError> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let store = shared.store()?;
        let body = request.into_inner();
        let mut v = Violations::default();
        let limit = validate::page_size(&mut v, body.page_size);
        // A page token carries the filters it was issued for, so one reused
        // with other filters is refused instead of skipping events.
        let filters = format!("{:?}|{:?}", body.actor, body.action);
        let before_id = match validate::page_cursor(&mut v, &body.page_token) {
            Some(cursor) => match cursor.split_once('\n') {
                Some((issued_for, last)) if issued_for == filters => match last.parse::<i64>() {
                    Ok(id) => Some(id),
                    Err(_) => {
                        v.add("page_token", "is not a page token this service returned");
                        None
                    }
                },
                _ => {
                    v.add(
                        "page_token",
                        "was issued for other filters: repeat the same filters, or start again \
                         without a page token",
                    );
                    None
                }
            },
            None => None,
        };
        v.finish()?;
        let actor = if caller.may("users", "manage")? {
            Some(body.actor).filter(|a| !a.is_empty())
        } else if body.actor.is_empty() || body.actor == caller.user.username {
            Some(caller.user.username.clone())
        } else {
            caller.require("users", "manage", "read other users' audit events")?;
            None
        };
        let mut rows = store
            .list_audit(AuditFilter {
                actor,
                action: Some(body.action).filter(|a| !a.is_empty()),
                before_id,
                limit: limit + 1,
            })
            .await?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            rows.last()
                .map(|r| validate::page_token(&format!("{filters}\n{}", r.id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(v1::ListAuditEventsResponse {
            events: rows.into_iter().map(convert::audit_event).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }
}
