//! The issuer's error type, and the one place it becomes a `tonic::Status`.
//!
//! Messages are written for the person calling: they say what to change.
//! None contains a password, token string or key.

use tessera_core::CoreError;
use tessera_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `type` of each `PreconditionFailure` violation listing a missing
/// dependency; its `subject` is the grant, `resource:action`.
pub const MISSING_DEPENDENCY: &str = "MISSING_DEPENDENCY";

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path, as in the proto (`name`, `permissions[0].resource`).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// No, or wrong, credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Fields that are wrong; each is named.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The thing does not exist, or the caller may not know it does.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the system's state refuses it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Grants that need other grants the request lacks (the permission
    /// catalog's dependencies): each missing grant is listed in the
    /// status's `PreconditionFailure` details.
    #[error("{message}")]
    MissingDependencies {
        message: String,
        missing: Vec<tessera_core::Grant>,
    },
    /// A concurrent change won a race (a rotation of the same token); read
    /// the current state and retry.
    #[error("{0}")]
    Aborted(String),
    /// The store or another dependency cannot answer now; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Too much at once (password checks beyond the memory budget), or too
    /// many failed sign-ins: retry after `retry_after` (sent as a
    /// `google.rpc.RetryInfo` detail).
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A fault on the issuer's side. The detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl IssuerError {
    /// A single bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        IssuerError::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }
}

impl IssuerError {
    /// The gRPC code name of the status this error becomes, as audit events
    /// record a refused call's outcome.
    pub fn code_name(&self) -> &'static str {
        match self {
            IssuerError::Unauthenticated(_) => "UNAUTHENTICATED",
            IssuerError::InvalidArgument(_) => "INVALID_ARGUMENT",
            IssuerError::PermissionDenied(_) => "PERMISSION_DENIED",
            IssuerError::NotFound(_) => "NOT_FOUND",
            IssuerError::AlreadyExists(_) => "ALREADY_EXISTS",
            IssuerError::FailedPrecondition(_) | IssuerError::MissingDependencies { .. } => {
                "FAILED_PRECONDITION"
            }
            IssuerError::Aborted(_) => "ABORTED",
            IssuerError::Unavailable(_) => "UNAVAILABLE",
            IssuerError::ResourceExhausted { .. } => "RESOURCE_EXHAUSTED",
            IssuerError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<StoreError> for IssuerError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                IssuerError::Unavailable("the token store is unavailable; try again shortly".into())
            }
            StoreError::AlreadyExists => IssuerError::AlreadyExists("already exists".into()),
            StoreError::NotFound => IssuerError::NotFound("not found".into()),
            other => IssuerError::Internal(other.to_string()),
        }
    }
}

impl From<CoreError> for IssuerError {
    fn from(err: CoreError) -> Self {
        IssuerError::Internal(err.to_string())
    }
}

impl From<IssuerError> for Status {
    fn from(err: IssuerError) -> Self {
        match err {
            IssuerError::Unauthenticated(m) => Status::unauthenticated(m),
            IssuerError::InvalidArgument(violations) => {
                let message = format!("invalid request: {}", describe(&violations));
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            IssuerError::PermissionDenied(m) => Status::permission_denied(m),
            IssuerError::NotFound(m) => Status::not_found(m),
            IssuerError::AlreadyExists(m) => Status::already_exists(m),
            IssuerError::FailedPrecondition(m) => Status::failed_precondition(m),
            IssuerError::MissingDependencies { message, missing } => {
                let mut details = ErrorDetails::new();
                for g in missing {
                    details.add_precondition_failure_violation(
                        MISSING_DEPENDENCY,
                        format!("{}:{}", g.resource, g.actions.join(",")),
                        "the requested grants depend on this one",
                    );
                }
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            IssuerError::Aborted(m) => Status::aborted(m),
            IssuerError::Unavailable(m) => Status::unavailable(m),
            IssuerError::ResourceExhausted {
                message,
                retry_after,
            } => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            IssuerError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error; the issuer's log has the details")
            }
        }
    }
}
