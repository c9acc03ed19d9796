//! Each command: build the request, call, print.

use crate::args::{
    Cli, Command, CreateArgs, Global, KeyCommand, Kind, LoginArgs, Selector, TokenCommand,
};
use crate::error::CliError;
use crate::output;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::time::Duration;
use tessera_proto::v1;
use tessera_proto::v1::key_service_client::KeyServiceClient;
use tessera_proto::v1::session_service_client::SessionServiceClient;
use tessera_proto::v1::token_service_client::TokenServiceClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

pub(crate) async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let channel = connect(&cli.global.issuer).await?;
    match cli.command {
        Command::Login(args) => login(&cli.global, channel, args, out).await,
        Command::Token(command) => token(&cli.global, channel, command, out).await,
        Command::Key(KeyCommand::List { jwks }) => keys(channel, jwks, out).await,
    }
}

async fn connect(endpoint: &str) -> Result<Channel, CliError> {
    let failed = |detail: String| CliError::Connect {
        endpoint: endpoint.into(),
        detail,
    };
    Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| failed(format!("{e} (is the issuer running?)")))
}

fn basic_value(global: &Global) -> Option<String> {
    let user = global.user.as_ref()?;
    let password = global.password.as_deref().unwrap_or_default();
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// `message` with the caller's credentials: the token if given, else the
/// username and password.
fn authorized<T>(global: &Global, message: T) -> Result<Request<T>, CliError> {
    let value = match (&global.token, basic_value(global)) {
        (Some(token), _) => format!("Bearer {token}"),
        (None, Some(basic)) => basic,
        (None, None) => {
            return Err(CliError::Usage(
                "no credentials: pass --token (or set TESSERA_TOKEN), or --user and --password"
                    .into(),
            ));
        }
    };
    let mut request = Request::new(message);
    let value: MetadataValue<_> = value.parse().map_err(|_| {
        CliError::Usage("credentials contain characters a header cannot carry".into())
    })?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

async fn login(
    global: &Global,
    channel: Channel,
    args: LoginArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Some(basic) = basic_value(global) else {
        return Err(CliError::Usage(
            "login needs --user (or TESSERA_USER) and --password (or TESSERA_PASSWORD)".into(),
        ));
    };
    let kind = match args.kind {
        Kind::Api => v1::SessionKind::Api,
        Kind::Web => v1::SessionKind::Web,
        Kind::TokenService => v1::SessionKind::TokenService,
    };
    let mut request = Request::new(v1::LoginRequest {
        kind: kind as i32,
        expires_in: args.expires_in.map(proto_duration),
    });
    let value = basic.parse().map_err(|_| {
        CliError::Usage("credentials contain characters a header cannot carry".into())
    })?;
    request.metadata_mut().insert("authorization", value);
    let reply = SessionServiceClient::new(channel)
        .login(request)
        .await?
        .into_inner();
    writeln!(out, "{}", reply.secret)?;
    Ok(())
}

fn selector(s: Selector) -> Option<v1::TokenSelector> {
    Some(v1::TokenSelector {
        id: s.id.unwrap_or_default(),
        name: s.name.unwrap_or_default(),
        ..Default::default()
    })
}

async fn token(
    global: &Global,
    channel: Channel,
    command: TokenCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut client = TokenServiceClient::new(channel);
    match command {
        TokenCommand::Create(args) => {
            let reply = client
                .create_token(authorized(global, create_request(args))?)
                .await?
                .into_inner();
            if let Some(token) = &reply.token {
                output::token(out, token)?;
            }
            writeln!(out, "secret: {}", reply.secret)?;
            writeln!(out, "(the secret is shown only this once)")?;
        }
        TokenCommand::List => {
            let mut page_token = String::new();
            let mut tokens = Vec::new();
            loop {
                let reply = client
                    .list_tokens(authorized(
                        global,
                        v1::ListTokensRequest {
                            page_token: page_token.clone(),
                            ..Default::default()
                        },
                    )?)
                    .await?
                    .into_inner();
                tokens.extend(reply.tokens);
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
            output::token_table(out, &tokens)?;
        }
        TokenCommand::Get(which) => {
            let token = client
                .get_token(authorized(
                    global,
                    v1::GetTokenRequest {
                        token: selector(which),
                    },
                )?)
                .await?
                .into_inner();
            output::token(out, &token)?;
        }
        TokenCommand::Delete(which) => {
            client
                .delete_token(authorized(
                    global,
                    v1::DeleteTokenRequest {
                        token: selector(which),
                    },
                )?)
                .await?;
            writeln!(out, "deleted")?;
        }
    }
    Ok(())
}

fn create_request(args: CreateArgs) -> v1::CreateTokenRequest {
    v1::CreateTokenRequest {
        name: args.name,
        description: args.description,
        expiration: args
            .expires_in
            .map(|d| v1::create_token_request::Expiration::ExpiresIn(proto_duration(d))),
        enabled: Some(!args.disabled),
        all_permissions: args.all_permissions,
        permissions: args
            .grants
            .into_iter()
            .map(|g| v1::Grant {
                resource: g.resource,
                actions: g.actions,
            })
            .collect(),
        grant_dependencies: false,
    }
}

async fn keys(channel: Channel, jwks: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let reply = KeyServiceClient::new(channel)
        .list_keys(v1::ListKeysRequest {})
        .await?
        .into_inner();
    if jwks {
        writeln!(out, "{}", reply.jwks_json)?;
    } else {
        output::key_table(out, &reply.keys)?;
    }
    Ok(())
}
