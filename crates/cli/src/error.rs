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
    /// The command printed its answer, and that answer is a refusal
    /// (`verify` of an invalid token): exit 1, print nothing more on stdout.
    #[error("{0}")]
    Answered(String),
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
        let mut message = in_cli_terms(status.message());
        if message.is_empty() {
            message = format!("the server answered {:?}", status.code());
        }
        // A plaintext client talking to a TLS port gets garbage back, which
        // the HTTP/2 layer reports in its own words.
        if message.contains("h2 protocol error") {
            message = format!(
                "the connection broke at the HTTP/2 level ({message}): if the server serves \
                 TLS, use an https:// address"
            );
        } else if std::error::Error::source(&status).is_some()
            || TRANSPORT_WORDS.iter().any(|w| message == *w)
        {
            // Made on this side from a failed connection (a server's answer
            // carries no source): the cause is in the chain.
            let cause = causes(&status).pop().unwrap_or_default();
            message = format!(
                "the connection failed ({}): is the address right? a TLS server needs an \
                 https:// address",
                if cause.is_empty() {
                    message.as_str()
                } else {
                    cause.as_str()
                }
            );
        }
        let hint = match status.code() {
            Code::Unauthenticated => " (log in with `tessera login`, or pass --token or --user)",
            // The issuer said why it cannot start; "try again" would not help.
            Code::Unavailable if message.contains("cannot start") => "",
            Code::Unavailable => " (is the server running and ready? try again shortly)",
            // A refusal about the caller's own password is not about grants.
            Code::PermissionDenied if message.contains("--current") => "",
            Code::PermissionDenied => " (ask an administrator for the grant)",
            Code::Unimplemented => " (the server is older than this client)",
            _ => "",
        };
        CliError::Rpc(format!("{message}{hint}"))
    }
}

impl CliError {
    /// A refused `tessera login`: the credentials themselves were wrong, so
    /// pointing back at `tessera login` would send the user in a circle.
    pub fn login_refused(status: tonic::Status) -> Self {
        if status.code() == Code::Unauthenticated {
            CliError::Rpc(format!(
                "{} (check --user and --password, or TESSERA_USER and TESSERA_PASSWORD)",
                in_cli_terms(status.message())
            ))
        } else {
            status.into()
        }
    }
}

/// The messages of `error`'s sources, outermost first (not its own).
pub(crate) fn causes(error: &dyn std::error::Error) -> Vec<String> {
    std::iter::successors(error.source(), |e| e.source())
        .map(ToString::to_string)
        .collect()
}

/// What tonic says when the connection itself failed mid-call (a plaintext
/// client at a TLS port sees any of these, depending on timing).
const TRANSPORT_WORDS: &[&str] = &[
    "transport error",
    "operation was canceled",
    "connection reset",
    "broken pipe",
    "connection closed",
];

/// The server's message on one line, with the API's names for things (RPCs,
/// request fields) replaced by the commands and flags a CLI user types.
fn in_cli_terms(message: &str) -> String {
    const TERMS: &[(&str, &str)] = &[
        ("with RotateToken", "with `tessera token rotate`"),
        ("(RotateToken)", "(`tessera token rotate`)"),
        ("set grant_dependencies", "pass --grant-dependencies"),
        ("in current_password", "with --current"),
        ("replace_permissions", "--replace-grants"),
    ];
    let mut message = message.replace('\n', " ");
    for (api, cli) in TERMS {
        message = message.replace(api, cli);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(code: Code, message: &str) -> String {
        CliError::from(tonic::Status::new(code, message)).to_string()
    }

    #[test]
    fn api_names_become_commands_and_flags() {
        assert_eq!(
            shown(
                Code::FailedPrecondition,
                "add them, or set grant_dependencies to have them added"
            ),
            "add them, or pass --grant-dependencies to have them added"
        );
        assert_eq!(
            shown(
                Code::FailedPrecondition,
                "rotate the token (RotateToken) with the new expiry"
            ),
            "rotate the token (`tessera token rotate`) with the new expiry"
        );
        assert_eq!(
            shown(
                Code::PermissionDenied,
                "to change your own password, give the current one in current_password"
            ),
            "to change your own password, give the current one with --current"
        );
        assert_eq!(
            shown(Code::PermissionDenied, "needs users: manage"),
            "needs users: manage (ask an administrator for the grant)"
        );
    }

    #[test]
    fn a_refused_login_does_not_point_at_login() {
        let text = CliError::login_refused(tonic::Status::unauthenticated(
            "wrong user name or password",
        ))
        .to_string();
        assert!(!text.contains("tessera login"), "{text}");
        assert!(text.contains("--password"), "{text}");
    }
}
