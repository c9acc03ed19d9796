//! `tessera login` and `tessera logout`.

use super::{basic_value, connect, with_authorization};
use crate::args::{Global, Kind, LoginArgs};
use crate::error::CliError;
use crate::output::Printer;
use crate::session_file::{self, Saved};
use tessera_proto::v1::{self, session_service_client::SessionServiceClient};

pub(crate) async fn login(
    global: &Global,
    args: LoginArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let Some(basic) = basic_value(global).filter(|_| global.password.is_some()) else {
        return Err(CliError::Usage(
            "login needs --user and --password (or TESSERA_USER and TESSERA_PASSWORD)".into(),
        ));
    };
    let dir = session_file::dir(global.config_dir.as_deref())?;
    let kind = match args.kind {
        Kind::Api => v1::SessionKind::Api,
        Kind::Web => v1::SessionKind::Web,
        Kind::TokenService => v1::SessionKind::TokenService,
    };
    let request = v1::LoginRequest {
        kind: kind as i32,
        expires_in: args.expires_in.map(super::proto_duration),
    };
    let reply = SessionServiceClient::new(connect(global, &global.issuer).await?)
        .login(with_authorization(request, &basic)?)
        .await
        .map_err(CliError::login_refused)?
        .into_inner();
    let token = reply.token.unwrap_or_default();
    // Only now, with a session in hand, is the file touched.
    session_file::save(
        &dir,
        &Saved {
            issuer: global.issuer.clone(),
            token: reply.secret.clone(),
            expire_time: token.expire_time.as_ref().map_or(0, |t| t.seconds),
        },
    )?;
    if args.print {
        printer.raw(&reply.secret)?;
    } else {
        printer.done(
            &format!(
                "logged in as {}; session saved in {}; it expires {}",
                token.owner_name,
                dir.display(),
                token
                    .expire_time
                    .as_ref()
                    .map_or_else(|| "never".into(), |t| tessera_core::duration::instant(t.seconds))
            ),
            serde_json::json!({ "session": crate::output::token_json(&token), "saved_to": dir.display().to_string() }),
        )?;
    }
    Ok(())
}

pub(crate) async fn logout(global: &Global, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let dir = session_file::dir(global.config_dir.as_deref())?;
    let Some(saved) = session_file::load(&dir)? else {
        printer.done(
            "not logged in",
            serde_json::json!({ "was_logged_in": false }),
        )?;
        return Ok(());
    };
    let result = SessionServiceClient::new(connect(global, &saved.issuer).await?)
        .logout(with_authorization(
            v1::LogoutRequest {},
            &format!("Bearer {}", saved.token),
        )?)
        .await;
    match result {
        Ok(_) => {}
        // Already expired or revoked: nothing left to revoke.
        Err(status) if status.code() == tonic::Code::Unauthenticated => {}
        Err(status) => return Err(status.into()),
    }
    session_file::remove(&dir)?;
    printer.done("logged out", serde_json::json!({ "was_logged_in": true }))?;
    Ok(())
}
