//! `tessera key …`, `tessera audit` and `tessera verify`.

use super::{authorized, connect};
use crate::args::{AuditArgs, Global, KeyCommand, VerifyArgs};
use crate::error::CliError;
use crate::output::Printer;
use tessera_proto::v1::{
    self, audit_service_client::AuditServiceClient, key_service_client::KeyServiceClient,
    verifier_service_client::VerifierServiceClient,
};

pub(crate) async fn keys(
    global: &Global,
    command: KeyCommand,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut client = KeyServiceClient::new(connect(global, &global.issuer).await?);
    match command {
        KeyCommand::List { jwks } => {
            let reply = client.list_keys(v1::ListKeysRequest {}).await?.into_inner();
            if jwks {
                printer.raw(&reply.jwks_json)?;
            } else {
                printer.keys(&reply.keys)?;
            }
        }
        KeyCommand::Rotate { immediate } => {
            let request = v1::RotateKeyRequest {
                immediate,
                activation_delay: None,
            };
            let reply = client
                .rotate_key(authorized(global, request)?)
                .await?
                .into_inner();
            printer.keys(reply.key.as_slice())?;
        }
    }
    Ok(())
}

pub(crate) async fn audit(
    global: &Global,
    args: AuditArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    if args.limit <= 0 {
        return Err(CliError::Usage("--limit must be positive".into()));
    }
    let request = v1::ListAuditEventsRequest {
        page_size: args.limit,
        page_token: String::new(),
        actor: args.actor.unwrap_or_default(),
        action: args.action.unwrap_or_default(),
    };
    let reply = AuditServiceClient::new(connect(global, &global.issuer).await?)
        .list_audit_events(authorized(global, request)?)
        .await?
        .into_inner();
    Ok(printer.audit(&reply.events)?)
}

/// Prints the verifier's answer; an invalid token is a failed operation (exit 1).
pub(crate) async fn verify(
    global: &Global,
    args: VerifyArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = v1::VerifyRequest {
        token: pasted_token(args.secret),
        resource: args.resource.unwrap_or_default(),
        action: args.action.unwrap_or_default(),
        ..Default::default()
    };
    let answer = VerifierServiceClient::new(connect(global, &global.verifier).await?)
        .verify(request)
        .await?
        .into_inner();
    printer.verdict(&answer)?;
    if answer.valid {
        Ok(())
    } else {
        Err(CliError::Answered(format!(
            "the token is not valid: {}",
            crate::output::reason_name(answer.reason)
        )))
    }
}

/// The token in what was pasted: a header value (`Bearer <t>`,
/// `fmetoken token=<t>`) means the token it carries.
fn pasted_token(text: String) -> String {
    match tessera_core::authorization::token(&text) {
        Ok(inner) if text.contains(char::is_whitespace) => inner.to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::pasted_token;

    #[test]
    fn a_pasted_header_value_means_its_token() {
        assert_eq!(pasted_token("Bearer abc.def.ghi".into()), "abc.def.ghi");
        assert_eq!(
            pasted_token("fmetoken token=abc.def.ghi".into()),
            "abc.def.ghi"
        );
        assert_eq!(pasted_token("abc.def.ghi".into()), "abc.def.ghi");
    }
}
