//! Refused management calls in the audit log.
//!
//! A successful change writes its audit event in its own transaction. A call
//! that an authenticated caller made and that was refused (bad input, not
//! allowed, a rule of the token lifecycle) changed nothing, so its event is
//! written on its own here, with the gRPC code name as the outcome.

use crate::auth::Caller;
use crate::error::IssuerError;
use crate::state::Shared;
use tessera_store::audit::NewAudit;

/// Hands `result` back, recording it first when it is a refusal.
pub(crate) async fn outcome<T>(
    shared: &Shared,
    caller: &Caller,
    action: &str,
    target: &str,
    result: Result<T, IssuerError>,
) -> Result<T, IssuerError> {
    let err = match result {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    // With the store unavailable, there is nowhere to write.
    if matches!(err, IssuerError::Unavailable(_)) {
        return Err(err);
    }
    let detail = match &err {
        // The detail of a fault is for the issuer's log only.
        IssuerError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    };
    let event = NewAudit::ok(caller.actor(), action, target).with_outcome(err.code_name(), detail);
    match shared.store() {
        Ok(store) => {
            if let Err(e) = store.record_audit(shared.now(), event).await {
                tracing::warn!(error = %e, action, "could not record a refused call");
            }
        }
        Err(e) => tracing::warn!(error = %e, action, "could not record a refused call"),
    }
    Err(err)
}
