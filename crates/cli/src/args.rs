//! The command line's shape.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
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
    let g = tessera_core::Grant::parse(text)?;
    Ok(GrantArg {
        resource: g.resource,
        actions: g.actions,
    })
}

/// Tessera's command line client.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and fields for people.
    Text,
    /// One JSON document per command, for scripts (see docs/cli.md).
    Json,
}

/// Where to connect and who to be.
#[derive(Debug, Args)]
// Shown under their own heading in every subcommand's help, apart from the
// subcommand's own flags.
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The issuer's address.
    #[arg(
        long,
        global = true,
        env = "TESSERA_ISSUER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub issuer: String,
    /// The verifier's address.
    #[arg(
        long,
        global = true,
        env = "TESSERA_VERIFIER",
        default_value = "http://127.0.0.1:50052"
    )]
    pub verifier: String,
    /// A token to authenticate with; overrides the saved session.
    #[arg(long, global = true, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A username, to authenticate with a password instead of a token.
    #[arg(long, global = true, env = "TESSERA_USER")]
    pub user: Option<String>,
    /// The password for --user.
    #[arg(long, global = true, env = "TESSERA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value = "text")]
    pub output: Output,
    /// CA certificate (PEM) to trust for `https://` addresses; without it,
    /// the system's trusted roots.
    #[arg(long, global = true, env = "TESSERA_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require mTLS.
    #[arg(
        long,
        global = true,
        env = "TESSERA_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for --client-cert.
    #[arg(
        long,
        global = true,
        env = "TESSERA_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Where the saved session lives (default: the user's config directory).
    #[arg(long, global = true, env = "TESSERA_CONFIG_DIR", hide = true)]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an issuer and a verifier in this process on an embedded SQLite database.
    Dev(DevArgs),
    /// Exchange a username and password for a session token and save it.
    Login(LoginArgs),
    /// Revoke the saved session and forget it.
    Logout,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users (administrators).
    #[command(subcommand)]
    User(UserCommand),
    /// The issuer's signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Read the audit log.
    Audit(AuditArgs),
    /// Ask the verifier about a token.
    Verify(VerifyArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory of the SQLite database (and its development KEK).
    #[arg(long, default_value = "tessera-data")]
    pub data_dir: PathBuf,
    /// The issuer's listen address.
    #[arg(long, default_value = tessera_issuer::config::DEFAULT_LISTEN)]
    pub issuer_listen: std::net::SocketAddr,
    /// The verifier's listen address.
    #[arg(long, default_value = tessera_verifier::config::DEFAULT_LISTEN)]
    pub verifier_listen: std::net::SocketAddr,
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
    /// Print the session token instead of only saving it.
    #[arg(long)]
    pub print: bool,
}

/// A token by id, or by name (yours, or --owner's).
#[derive(Debug, Args)]
pub struct Selector {
    /// The token's name (or, with --id, its id).
    pub name: Option<String>,
    /// Select by id instead of name.
    #[arg(long, conflicts_with = "name")]
    pub id: Option<String>,
    /// The owner of the named token (administrators); default yourself.
    #[arg(long)]
    pub owner: Option<String>,
    /// The API token this command is made with (`--token`, `TESSERA_TOKEN`):
    /// how a job reads or renews its own credential.
    #[arg(long = "self", conflicts_with_all = ["name", "id", "owner"])]
    pub itself: bool,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// A grant, `RESOURCE:ACTION[,ACTION…]`; repeatable.
    #[arg(long = "grant", value_parser = grant)]
    pub grants: Vec<GrantArg>,
    /// Add the grants the requested ones depend on.
    #[arg(long)]
    pub grant_dependencies: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints its secret once.
    Create(CreateArgs),
    /// List tokens.
    List(ListArgs),
    /// Show one token.
    Get(Selector),
    /// Change a token's description, or narrow its expiry or grants.
    Update(UpdateArgs),
    /// Copy a token under a new name, with a new secret.
    Duplicate(DuplicateArgs),
    /// Enable a disabled token.
    Enable(Selector),
    /// Disable a token; verifiers refuse it until it is enabled.
    Disable(Selector),
    /// Give a token a new secret (optionally a new expiry or grants).
    Rotate(RotateArgs),
    /// Delete a token; its secret stops working.
    Delete(Selector),
}

#[derive(Debug, Args)]
pub struct SecretOut {
    /// Write the secret to this file (owner-only permissions) instead of printing it.
    #[arg(long)]
    pub save_to: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The token's name, unique among yours.
    pub name: String,
    /// What the token is for, shown in listings.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Lifetime (`7d`, `12h`…); the issuer's default (7d) when omitted.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Give the token all of your permissions.
    #[arg(long, conflicts_with = "grants")]
    pub all_permissions: bool,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub secret: SecretOut,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whose tokens: a username, or `-` for everyone's (administrators).
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this type.
    #[arg(long, value_enum)]
    pub r#type: Option<TypeArg>,
    /// Only tokens in this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only tokens not used for this long (`90d`): last used before then,
    /// or never used and created before then. API tokens unless --type
    /// says otherwise.
    #[arg(long, value_parser = duration)]
    pub unused_for: Option<Duration>,
    /// Only tokens that expire within this long (`7d`), but for those made
    /// or rotated in the last day. Active API tokens unless --type or
    /// --status says otherwise.
    #[arg(long, value_parser = duration)]
    pub expiring_within: Option<Duration>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Api,
    Session,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Active,
    Disabled,
    Expired,
    /// Revoked when the owner was disabled or given a new password.
    Revoked,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub which: Selector,
    /// A new description.
    #[arg(long)]
    pub description: Option<String>,
    /// A new expiry, as a lifetime from now (`1h`): earlier narrows the
    /// token; later extends a live API token in place (its secret keeps
    /// working), as FME does.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
    /// Replace the grants with these (fewer than before).
    #[arg(long = "grant", value_parser = grant)]
    pub grants: Vec<GrantArg>,
}

#[derive(Debug, Args)]
pub struct DuplicateArgs {
    #[command(flatten)]
    pub which: Selector,
    /// The copy's name.
    #[arg(long = "as")]
    pub new_name: String,
    /// The copy's description (default: the source's).
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub secret: SecretOut,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub which: Selector,
    /// A new lifetime from now.
    #[arg(long, value_parser = duration)]
    pub expires_in: Option<Duration>,
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Keep the old secret working this long (`10m`), up to the server's maximum.
    #[arg(long, value_parser = duration)]
    pub overlap: Option<Duration>,
    /// Make the --grant list the token's whole set of grants; without it,
    /// --grant adds to the grants the token holds.
    #[arg(long)]
    pub replace_grants: bool,
    #[command(flatten)]
    pub secret: SecretOut,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// The new user's name.
        username: String,
        /// The new user's password (or TESSERA_NEW_PASSWORD); the global
        /// --password is yours, for --user.
        // Not `password`: an argument sharing a global one's id takes its
        // place, so the caller would sign in with the new user's password.
        #[arg(long, env = "TESSERA_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// A grant for the user, `RESOURCE:ACTION[,ACTION…]`; repeatable.
        #[arg(long = "grant", value_parser = grant)]
        grants: Vec<GrantArg>,
    },
    /// List users.
    List,
    /// Show a user.
    Get {
        /// The user's name.
        #[arg(value_name = "USER")]
        name: String,
    },
    /// Change a user's enabled state, admin flag or grants.
    Update {
        /// The user's name.
        #[arg(value_name = "USER")]
        name: String,
        /// Let the user sign in again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse the user's sign-ins and revoke every token they hold.
        #[arg(long)]
        disable: bool,
        /// Make the user an administrator (`true`) or not (`false`).
        #[arg(long)]
        admin: Option<bool>,
        /// Replace the user's grants with these; repeatable.
        #[arg(long = "grant", value_parser = grant)]
        grants: Vec<GrantArg>,
        /// Remove all of the user's grants.
        #[arg(long, conflicts_with = "grants")]
        no_grants: bool,
    },
    /// Delete a user and their tokens.
    Delete {
        /// The user's name.
        #[arg(value_name = "USER")]
        name: String,
    },
    /// Set a password (yours needs --current).
    SetPassword {
        /// The user whose password changes (yourself, or anyone with `users: manage`).
        #[arg(value_name = "USER")]
        name: String,
        /// The new password (at least 12 characters).
        #[arg(long, env = "TESSERA_NEW_PASSWORD", hide_env_values = true)]
        new: String,
        /// Your current password: needed to change your own.
        #[arg(long, env = "TESSERA_CURRENT_PASSWORD", hide_env_values = true)]
        current: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the published public keys.
    List {
        /// Print the JWKS document instead.
        #[arg(long)]
        jwks: bool,
    },
    /// Publish a new signing key (administrators).
    Rotate {
        /// Start signing with it at once instead of after the configured delay.
        #[arg(long)]
        immediate: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this user's actions.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (`token.create`…).
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i32,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token to check.
    // Not `token`, the id of the global --token, which it would overwrite
    // (and be overwritten by).
    #[arg(value_name = "TOKEN")]
    pub secret: String,
    /// A resource to check a permission on.
    #[arg(long, requires = "action")]
    pub resource: Option<String>,
    /// The action to check on --resource.
    #[arg(long, requires = "resource")]
    pub action: Option<String>,
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

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// The ids of `command`'s own arguments (as declared, before clap
    /// copies the global ones in) that are also a global argument's id,
    /// named by the path of subcommands leading to them.
    fn shadowing(command: &clap::Command, globals: &[&str], path: &str) -> Vec<String> {
        let mut found = Vec::new();
        for sub in command.get_subcommands() {
            let here = format!("{path} {}", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if globals.contains(&id) {
                    found.push(format!("{here}: {id}"));
                }
            }
            found.extend(shadowing(sub, globals, &here));
        }
        found
    }

    /// clap does not refuse an argument that shares its id with a global
    /// one: it quietly skips the global there and, after parsing, copies the
    /// subcommand's value over the global's (so `user create --new-password`
    /// once replaced the caller's --password).
    #[test]
    fn no_subcommand_argument_shares_an_id_with_a_global_one() {
        use clap::CommandFactory;
        let root = Cli::command();
        let globals: Vec<&str> = root
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().as_str())
            .collect();
        assert!(
            globals.contains(&"password"),
            "the walk sees the globals: {globals:?}"
        );
        assert_eq!(shadowing(&root, &globals, "tessera"), Vec::<String>::new());
    }

    /// The walk finds a shadowing argument however deep it is declared.
    #[test]
    fn the_walk_finds_a_shadowing_argument() {
        let root = clap::Command::new("t")
            .arg(clap::Arg::new("password").long("password").global(true))
            .subcommand(clap::Command::new("user").subcommand(
                clap::Command::new("create").arg(clap::Arg::new("password").long("new-password")),
            ));
        assert_eq!(
            shadowing(&root, &["password"], "t"),
            ["t user create: password"]
        );
    }

    /// The caller's password and the new user's stay apart (the end-to-end
    /// test gives them from the environment too).
    #[test]
    fn a_new_password_is_not_the_callers() {
        let cli = Cli::try_parse_from([
            "tessera",
            "--user",
            "admin",
            "--password",
            "mine-123456789",
            "user",
            "create",
            "bob",
            "--new-password",
            "bobs-123456789",
        ])
        .expect("parses");
        assert_eq!(cli.global.password.as_deref(), Some("mine-123456789"));
        let Command::User(UserCommand::Create { new_password, .. }) = cli.command else {
            panic!("not user create: {:?}", cli.command);
        };
        assert_eq!(new_password, "bobs-123456789");
    }

    /// `verify TOKEN` once shared the id of the global --token, and replaced it.
    #[test]
    fn the_token_to_verify_is_not_the_one_to_call_with() {
        let cli = Cli::try_parse_from(["tessera", "--token", "caller", "verify", "checked"])
            .expect("parses");
        assert_eq!(cli.global.token.as_deref(), Some("caller"));
        let Command::Verify(args) = cli.command else {
            panic!("not verify: {:?}", cli.command);
        };
        assert_eq!(args.secret, "checked");
    }
}
