//! The CLI's error type: one line each, and the exit code it maps to.

use tonic::Code;

/// What can go wrong running a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong in a way clap could not see.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached.
    #[error("cannot reach {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },
    /// The server refused or failed the call.
    #[error("{0}")]
    Rpc(String),
    /// Something on this machine failed (a file, a server started by `dev`).
    #[error("{0}")]
    Local(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        let hint = match status.code() {
            Code::Unauthenticated => " (log in with `tessera login`, or pass --token or --user)",
            Code::Unavailable => " (is the server running and ready? try again shortly)",
            Code::PermissionDenied => " (ask an administrator for the grant)",
            Code::Unimplemented => " (the server is older than this client)",
            _ => "",
        };
        // One line, whatever the server said.
        let message = status.message().replace('\n', " ");
        let message = if message.is_empty() {
            format!("the server answered {:?}", status.code())
        } else {
            message
        };
        CliError::Rpc(format!("{message}{hint}"))
    }
}
