//! The command line's shape.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;

fn duration(text: &str) -> Result<Duration, String> {
    tessera_core::duration::parse(text)
}

/// A grant written as `RESOURCE:ACTION[,ACTION…]`, e.g. `repositories/Samples:read,run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantArg {
    pub resource: String,
    pub actions: Vec<String>,
}

fn grant(text: &str) -> Result<GrantArg, String> {
    let (resource, actions) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not RESOURCE:ACTION[,ACTION…]"))?;
    let actions: Vec<String> = actions
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if resource.trim().is_empty() || actions.is_empty() {
        return Err(format!("{text:?} is not RESOURCE:ACTION[,ACTION…]"));
    }
    Ok(GrantArg {
        resource: resource.trim().into(),
        actions,
    })
}

/// Tessera's command line client.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where to connect and who to be.
#[derive(Debug, Args)]
pub struct Global {
    /// The issuer's address.
    #[arg(
        long,
        global = true,
        env = "TESSERA_ISSUER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub issuer: String,
    /// A token to authenticate with (a session or API token).
    #[arg(long, global = true, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A username, to authenticate with a password instead of a token.
    #[arg(long, global = true, env = "TESSERA_USER")]
    pub user: Option<String>,
    /// The password for --user.
    #[arg(long, global = true, env = "TESSERA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exchange a username and password for a session token; prints the token.
    Login(LoginArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The issuer's public signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// Session kinds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Api,
    Web,
    TokenService,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// What the session is for; sets its default lifetime.
    #[arg(long, value_enum, default_value = "api")]
    pub kind: Kind,
    /// Ask for a lifetime (`5m`, `1h`…) instead of the kind's default.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints its secret once.
    Create(CreateArgs),
    /// List your tokens.
    List,
    /// Show one token.
    Get(Selector),
    /// Delete a token; its secret stops working.
    Delete(Selector),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The token's name, unique among yours.
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Lifetime (`7d`, `12h`…); the issuer's default when omitted.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
    /// A grant, `RESOURCE:ACTION[,ACTION…]`; repeatable.
    #[arg(long = "grant", value_parser = grant)]
    pub grants: Vec<GrantArg>,
    /// Give the token all of your permissions.
    #[arg(long, conflicts_with = "grants")]
    pub all_permissions: bool,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// A token by id, or by name (yours, or --owner's).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selector {
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the published public keys.
    List {
        /// Print the JWKS document instead.
        #[arg(long)]
        jwks: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse() {
        assert_eq!(
            grant("repositories/Samples:read,run"),
            Ok(GrantArg {
                resource: "repositories/Samples".into(),
                actions: vec!["read".into(), "run".into()],
            })
        );
        for bad in ["repositories", ":read", "repositories:", "repositories:,"] {
            assert!(grant(bad).is_err(), "{bad:?}");
        }
    }
}
