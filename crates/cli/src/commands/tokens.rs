//! `tessera token …`.

use super::{authorized, connect, grants, proto_duration};
use crate::args::{Global, Selector, StatusArg, TokenCommand, TypeArg};
use crate::error::CliError;
use crate::output::{Minted, Printer};
use crate::session_file;
use std::path::Path;
use tessera_proto::v1::{self, token_service_client::TokenServiceClient};
use tonic::transport::Channel;

fn selector(s: &Selector) -> Result<Option<v1::TokenSelector>, CliError> {
    if s.itself {
        return Ok(Some(v1::TokenSelector {
            id: "self".into(),
            ..Default::default()
        }));
    }
    if s.id.is_none() && s.name.is_none() {
        return Err(CliError::Usage(
            "name the token, or give --id (or --self for the token you call with)".into(),
        ));
    }
    Ok(Some(v1::TokenSelector {
        id: s.id.clone().unwrap_or_default(),
        name: s.name.clone().unwrap_or_default(),
        owner: s.owner.clone().unwrap_or_default(),
    }))
}

/// Refuses a `--save-to` that cannot take a new secret, before anything is
/// asked of the issuer: a secret is shown once, so it must never be minted
/// into a file that cannot be written, nor overwrite one.
fn check_save_to(save_to: Option<&Path>) -> Result<(), CliError> {
    let Some(path) = save_to else {
        return Ok(());
    };
    if path.is_dir() {
        return Err(CliError::Usage(format!(
            "--save-to {} is a directory: give the path of a new file in it",
            path.display()
        )));
    }
    if path.exists() {
        return Err(CliError::Usage(format!(
            "--save-to {} already exists: choose another file, or remove it first",
            path.display()
        )));
    }
    Ok(())
}

/// Prints a new secret, or writes it to `save_to` with owner-only
/// permissions. Should the write fail all the same, the secret is printed
/// instead of lost.
fn secret(
    printer: &mut Printer<'_>,
    minted: Minted<'_>,
    save_to: Option<&Path>,
) -> Result<(), CliError> {
    if let Some(path) = save_to
        && let Err(e) = session_file::write_private(path, &format!("{}\n", minted.secret))
    {
        // The secret is shown after all, since it exists only once.
        printer.token_with_secret(&minted, None)?;
        return Err(CliError::Answered(e.to_string()));
    }
    printer.token_with_secret(&minted, save_to)?;
    Ok(())
}

pub(crate) async fn run(
    global: &Global,
    command: TokenCommand,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let save_to = match &command {
        TokenCommand::Create(args) => args.secret.save_to.as_deref(),
        TokenCommand::Duplicate(args) => args.secret.save_to.as_deref(),
        TokenCommand::Rotate(args) => args.secret.save_to.as_deref(),
        _ => None,
    };
    check_save_to(save_to)?;
    let mut client = TokenServiceClient::new(connect(global, &global.issuer).await?);
    match command {
        TokenCommand::Create(args) => {
            let request = v1::CreateTokenRequest {
                name: args.name,
                description: args.description,
                expiration: args
                    .expires_in
                    .map(|d| v1::create_token_request::Expiration::ExpiresIn(proto_duration(d))),
                enabled: Some(!args.disabled),
                all_permissions: args.all_permissions,
                permissions: grants(&args.grants.grants),
                grant_dependencies: args.grants.grant_dependencies,
            };
            let reply = client
                .create_token(authorized(global, request)?)
                .await?
                .into_inner();
            secret(
                printer,
                Minted {
                    token: reply.token.as_ref(),
                    secret: &reply.secret,
                    added: &reply.added_dependencies,
                },
                args.secret.save_to.as_deref(),
            )
        }
        TokenCommand::List(args) => list(global, &mut client, args, printer).await,
        TokenCommand::Get(which) => {
            let token = client
                .get_token(authorized(
                    global,
                    v1::GetTokenRequest {
                        token: selector(&which)?,
                    },
                )?)
                .await?
                .into_inner();
            Ok(printer.token(&token)?)
        }
        TokenCommand::Update(args) => {
            let mut paths = Vec::new();
            let mut token = v1::Token::default();
            if let Some(description) = args.description {
                token.description = description;
                paths.push("description".to_owned());
            }
            if let Some(d) = args.expires_in {
                let end = chrono::Utc::now().timestamp()
                    + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
                token.expire_time = Some(prost_types::Timestamp {
                    seconds: end,
                    nanos: 0,
                });
                paths.push("expire_time".to_owned());
            }
            if !args.grants.is_empty() {
                token.permissions = grants(&args.grants);
                paths.push("permissions".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to update: give --description, --expires-in or --grant".into(),
                ));
            }
            let request = v1::UpdateTokenRequest {
                target: selector(&args.which)?,
                token: Some(token),
                update_mask: Some(prost_types::FieldMask { paths }),
            };
            let token = client
                .update_token(authorized(global, request)?)
                .await?
                .into_inner();
            Ok(printer.token(&token)?)
        }
        TokenCommand::Duplicate(args) => {
            let request = v1::DuplicateTokenRequest {
                source: selector(&args.which)?,
                name: args.new_name,
                description: args.description.unwrap_or_default(),
            };
            let reply = client
                .duplicate_token(authorized(global, request)?)
                .await?
                .into_inner();
            secret(
                printer,
                Minted {
                    token: reply.token.as_ref(),
                    secret: &reply.secret,
                    added: &[],
                },
                args.secret.save_to.as_deref(),
            )
        }
        TokenCommand::Enable(which) => {
            let token = client
                .enable_token(authorized(
                    global,
                    v1::EnableTokenRequest {
                        token: selector(&which)?,
                    },
                )?)
                .await?
                .into_inner();
            Ok(printer.token(&token)?)
        }
        TokenCommand::Disable(which) => {
            let token = client
                .disable_token(authorized(
                    global,
                    v1::DisableTokenRequest {
                        token: selector(&which)?,
                    },
                )?)
                .await?
                .into_inner();
            Ok(printer.token(&token)?)
        }
        TokenCommand::Rotate(args) => {
            let request = v1::RotateTokenRequest {
                token: selector(&args.which)?,
                expiration: args
                    .expires_in
                    .map(|d| v1::rotate_token_request::Expiration::ExpiresIn(proto_duration(d))),
                permissions: grants(&args.grants.grants),
                replace_permissions: args.replace_grants,
                overlap: args.overlap.map(proto_duration),
                grant_dependencies: args.grants.grant_dependencies,
            };
            let reply = client
                .rotate_token(authorized(global, request)?)
                .await?
                .into_inner();
            secret(
                printer,
                Minted {
                    token: reply.token.as_ref(),
                    secret: &reply.secret,
                    added: &reply.added_dependencies,
                },
                args.secret.save_to.as_deref(),
            )
        }
        TokenCommand::Delete(which) => {
            client
                .delete_token(authorized(
                    global,
                    v1::DeleteTokenRequest {
                        token: selector(&which)?,
                    },
                )?)
                .await?;
            Ok(printer.done("deleted", serde_json::json!({}))?)
        }
    }
}

async fn list(
    global: &Global,
    client: &mut TokenServiceClient<Channel>,
    args: crate::args::ListArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let hygiene = args.expiring_within.is_some() || args.unused_for.is_some();
    if args.expiring_within.is_some() && matches!(args.status, Some(StatusArg::Expired)) {
        return Err(CliError::Usage(
            "--expiring-within lists tokens that have not expired yet: drop --status expired"
                .into(),
        ));
    }
    let r#type = match args.r#type {
        // Sessions are short by design and renewed by signing in: the
        // caller's own one-hour session is neither news nor clean-up.
        None if hygiene => v1::TokenType::Api,
        None => v1::TokenType::Unspecified,
        Some(TypeArg::Api) => v1::TokenType::Api,
        Some(TypeArg::Session) => v1::TokenType::Session,
    };
    let status = match args.status {
        // "Expiring" is about tokens still in use: the issuer judges which
        // are active (not disabled, expired or revoked).
        None if args.expiring_within.is_some() => v1::TokenStatus::Active,
        None => v1::TokenStatus::Unspecified,
        Some(StatusArg::Active) => v1::TokenStatus::Active,
        Some(StatusArg::Disabled) => v1::TokenStatus::Disabled,
        Some(StatusArg::Expired) => v1::TokenStatus::Expired,
        Some(StatusArg::Revoked) => v1::TokenStatus::Revoked,
    };
    let now = chrono::Utc::now().timestamp();
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let at = |t: i64| prost_types::Timestamp {
        seconds: t,
        nanos: 0,
    };
    let unused_since = args.unused_for.map(|d| at(now.saturating_sub(secs(d))));
    let expire_before = args
        .expiring_within
        .map(|d| at(now.saturating_add(secs(d))));
    let mut page_token = String::new();
    let mut tokens = Vec::new();
    loop {
        let request = v1::ListTokensRequest {
            page_size: 500,
            page_token: page_token.clone(),
            r#type: r#type as i32,
            owner: args.owner.clone().unwrap_or_default(),
            status: status as i32,
            unused_since,
            expire_before,
            expired: None,
        };
        let reply = client
            .list_tokens(authorized(global, request)?)
            .await?
            .into_inner();
        tokens.extend(reply.tokens);
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    Ok(printer.tokens(&tokens)?)
}
