//! Each command: build the request, call, print. This module holds what
//! they share: connecting and choosing credentials.

mod dev;
mod misc;
mod session;
mod tokens;
mod users;

use crate::args::{Cli, Command, Global, GrantArg};
use crate::error::CliError;
use crate::output::Printer;
use crate::session_file;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::time::Duration;
use tessera_proto::v1;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub(crate) async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let global = cli.global;
    let mut printer = Printer::new(out, global.output);
    match cli.command {
        Command::Dev(args) => dev::run(args, &mut printer).await,
        Command::Login(args) => session::login(&global, args, &mut printer).await,
        Command::Logout => session::logout(&global, &mut printer).await,
        Command::Token(command) => tokens::run(&global, command, &mut printer).await,
        Command::User(command) => users::run(&global, command, &mut printer).await,
        Command::Key(command) => misc::keys(&global, command, &mut printer).await,
        Command::Audit(args) => misc::audit(&global, args, &mut printer).await,
        Command::Verify(args) => misc::verify(&global, args, &mut printer).await,
        Command::Completions { .. } => Ok(()),
    }
}

/// Opens a channel to `endpoint`, over TLS for `https://` addresses.
pub(crate) async fn connect(global: &Global, endpoint: &str) -> Result<Channel, CliError> {
    // `host:port`, the form --listen takes, means plaintext HTTP/2.
    let endpoint = &if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let failed = |detail: String| CliError::Connect {
        endpoint: endpoint.clone(),
        detail,
    };
    let mut target = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if endpoint.starts_with("https://") {
        target = target
            .tls_config(tls(global)?)
            .map_err(|e| failed(e.to_string()))?;
    }
    target.connect().await.map_err(|e| {
        failed(plain_transport_error(
            &e,
            endpoint.starts_with("https://"),
            global.ca_cert.is_some(),
        ))
    })
}

/// A failed connection said as a person would: the transport's source
/// chain ("transport error: … InvalidContentType") says which mistake it was.
fn plain_transport_error(error: &tonic::transport::Error, tls: bool, ca_given: bool) -> String {
    let chain = std::iter::once(error.to_string())
        .chain(crate::error::causes(error))
        .collect::<Vec<_>>()
        .join(": ");
    let lower = chain.to_lowercase();
    if tls && (lower.contains("invalidcontenttype") || lower.contains("corrupt message")) {
        "the server does not speak TLS there: use http:// for a plaintext port".into()
    } else if tls && (lower.contains("certificate") || lower.contains("unknownissuer")) {
        let what_to_do = if ca_given {
            "check that --ca-cert names the CA that signed it"
        } else {
            "give its CA with --ca-cert (TESSERA_CA_CERT)"
        };
        format!(
            "the server's certificate is not trusted ({}): {what_to_do}",
            last_part(&chain)
        )
    } else if lower.contains("connection refused") {
        "nothing is listening there (is it running? is the port right?)".into()
    } else if !tls
        && (lower.contains("frame with invalid size")
            || lower.contains("connection reset")
            || lower.contains("broken pipe")
            || lower.contains("unexpected eof")
            || lower.contains("connection closed"))
    {
        "the server closed the connection: if it serves TLS, use an https:// address".into()
    } else if lower.contains("timed out") || lower.contains("elapsed") {
        "no answer within 5 s (is the address right? is a firewall in the way?)".into()
    } else {
        format!("{} (is it running?)", last_part(&chain))
    }
}

/// The innermost cause in a `a: b: c` chain: the part that says what happened.
fn last_part(chain: &str) -> &str {
    chain.rsplit(": ").next().unwrap_or(chain).trim()
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Local(format!("cannot read {}: {e}", path.display())))
}

/// The client TLS settings: the CA to trust, and a client identity for mTLS.
fn tls(global: &Global) -> Result<ClientTlsConfig, CliError> {
    // Without --ca-cert, the system's trusted roots: a server with a public
    // or company-wide certificate needs no flag.
    let mut config = match &global.ca_cert {
        Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&global.client_cert, &global.client_key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

fn basic_value(global: &Global) -> Option<String> {
    let user = global.user.as_ref()?;
    let password = global.password.as_deref().unwrap_or_default();
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// The `authorization` value to send: `--token`, else `--user`/`--password`,
/// else the saved session (if it is for this issuer and not expired).
pub(crate) fn authorization(global: &Global) -> Result<String, CliError> {
    if let Some(token) = &global.token {
        return Ok(format!("Bearer {token}"));
    }
    if let Some(basic) = basic_value(global) {
        return Ok(basic);
    }
    let dir = session_file::dir(global.config_dir.as_deref())?;
    let Some(saved) = session_file::load(&dir)? else {
        return Err(CliError::Local(
            "not logged in: run `tessera login`, or pass --token or --user".into(),
        ));
    };
    if saved.issuer != global.issuer {
        return Err(CliError::Local(format!(
            "the saved session is for {}, not {}: run `tessera login` for this issuer",
            saved.issuer, global.issuer
        )));
    }
    if saved.expire_time <= chrono::Utc::now().timestamp() {
        return Err(CliError::Local(
            "your session has expired: run `tessera login` again".into(),
        ));
    }
    Ok(format!("Bearer {}", saved.token))
}

/// `message` with `value` as its `authorization` metadata.
pub(crate) fn with_authorization<T>(message: T, value: &str) -> Result<Request<T>, CliError> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = value.parse().map_err(|_| {
        CliError::Usage("credentials contain characters a header cannot carry".into())
    })?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// `message` with the caller's credentials.
pub(crate) fn authorized<T>(global: &Global, message: T) -> Result<Request<T>, CliError> {
    with_authorization(message, &authorization(global)?)
}

pub(crate) fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

pub(crate) fn grants(args: &[GrantArg]) -> Vec<v1::Grant> {
    args.iter()
        .map(|g| v1::Grant {
            resource: g.resource.clone(),
            actions: g.actions.clone(),
        })
        .collect()
}
