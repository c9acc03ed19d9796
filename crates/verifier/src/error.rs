//! The verifier's error type. A token that fails verification is *not* an
//! error: it is a normal answer with a reason. These are failures to serve.

use tessera_store::StoreError;
use tonic::Status;

/// What can go wrong serving, starting or syncing.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The request is shaped wrong (not the token in it: that is an answer).
    #[error("{0}")]
    InvalidArgument(String),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Start-up could not proceed.
    #[error("{0}")]
    Startup(String),
}

impl From<VerifierError> for Status {
    fn from(err: VerifierError) -> Self {
        match err {
            VerifierError::InvalidArgument(m) => Status::invalid_argument(m),
            VerifierError::Store(e) => {
                tracing::warn!(error = %e, "store unavailable");
                Status::unavailable("the verifier cannot read its store; try again shortly")
            }
            VerifierError::Startup(m) => Status::unavailable(m),
        }
    }
}
