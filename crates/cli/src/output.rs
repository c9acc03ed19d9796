//! Answers as text for people.

use chrono::{DateTime, Local, Utc};
use std::io::{self, Write};
use tessera_proto::v1;

fn when(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

fn status(token: &v1::Token) -> &'static str {
    match v1::TokenStatus::try_from(token.status) {
        Ok(v1::TokenStatus::Active) => "active",
        Ok(v1::TokenStatus::Disabled) => "disabled",
        Ok(v1::TokenStatus::Expired) => "expired",
        _ => "unknown",
    }
}

fn grants(grants: &[v1::Grant]) -> String {
    if grants.is_empty() {
        return "(none)".into();
    }
    grants
        .iter()
        .map(|g| format!("{}:{}", g.resource, g.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One token, field by field.
pub fn token(out: &mut dyn Write, t: &v1::Token) -> io::Result<()> {
    let kind = if t.r#type == v1::TokenType::Session as i32 {
        "session"
    } else {
        "api"
    };
    writeln!(out, "id:          {}", t.id)?;
    writeln!(out, "name:        {}", t.name)?;
    writeln!(out, "owner:       {}", t.owner_name)?;
    writeln!(out, "type:        {kind}")?;
    writeln!(out, "status:      {}", status(t))?;
    writeln!(out, "expires:     {}", when(t.expire_time.as_ref()))?;
    writeln!(out, "permissions: {}", grants(&t.permissions))?;
    if !t.description.is_empty() {
        writeln!(out, "description: {}", t.description)?;
    }
    Ok(())
}

/// Tokens, one a line.
pub fn token_table(out: &mut dyn Write, tokens: &[v1::Token]) -> io::Result<()> {
    writeln!(
        out,
        "{:<36}  {:<24}  {:<8}  {:<16}",
        "ID", "NAME", "STATUS", "EXPIRES"
    )?;
    for t in tokens {
        writeln!(
            out,
            "{:<36}  {:<24}  {:<8}  {:<16}",
            t.id,
            t.name,
            status(t),
            when(t.expire_time.as_ref())
        )?;
    }
    Ok(())
}

/// Keys, one a line.
pub fn key_table(out: &mut dyn Write, keys: &[v1::PublicKey]) -> io::Result<()> {
    writeln!(
        out,
        "{:<16}  {:<8}  {:<16}  PUBLIC KEY",
        "KID", "STATE", "ACTIVE FROM"
    )?;
    for k in keys {
        let state = match v1::KeyState::try_from(k.state) {
            Ok(v1::KeyState::Pending) => "pending",
            Ok(v1::KeyState::Active) => "active",
            Ok(v1::KeyState::Retired) => "retired",
            _ => "unknown",
        };
        writeln!(
            out,
            "{:<16}  {:<8}  {:<16}  {}",
            k.kid,
            state,
            when(k.activate_time.as_ref()),
            k.public_key
        )?;
    }
    Ok(())
}
