//! Start-up: the key-encryption key, the database, the first administrator
//! and the first signing key.

use crate::IssuerConfig;
use crate::error::IssuerError;
use crate::state::Shared;
use std::path::{Path, PathBuf};
use tessera_core::keys::{self, Kek, Signer};
use tessera_core::{Grant, password, random};
use tessera_store::users::NewUser;
use tessera_store::{ConnectConfig, Store, StoreError};

/// The administrator created on first start.
pub const ADMIN_USERNAME: &str = "admin";

/// Finds the key-encryption key: `--kek`, then `--kek-file`, then (SQLite
/// only) a `.kek` file beside the database, generated on first start.
pub(crate) fn resolve_kek(config: &IssuerConfig) -> Result<Kek, IssuerError> {
    let bad = |what: String| IssuerError::FailedPrecondition(what);
    if let Some(text) = &config.kek {
        return Kek::from_base64(text).map_err(|e| bad(format!("TESSERA_KEK: {e}")));
    }
    if let Some(path) = &config.kek_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read the KEK file {}: {e}", path.display())))?;
        return Kek::from_base64(&text)
            .map_err(|e| bad(format!("KEK file {}: {e}", path.display())));
    }
    let Some(db_path) = config.sqlite_path() else {
        if config.database_url.starts_with("sqlite:") {
            tracing::warn!(
                "no key encryption key configured; using a throw-away one for an in-memory database"
            );
            return Ok(Kek::generate()?);
        }
        return Err(bad(
            "set TESSERA_KEK or TESSERA_KEK_FILE: a key encryption key is required with PostgreSQL"
                .into(),
        ));
    };
    let kek_path = sibling_kek_path(&db_path);
    if kek_path.exists() {
        tracing::warn!(
            "DEVELOPMENT MODE: the key encryption key is read from {}, beside the database, \
             because neither TESSERA_KEK nor TESSERA_KEK_FILE is set. Anyone who can read that \
             file can read the signing keys. In production, give the issuer its KEK from a \
             secret store.",
            kek_path.display()
        );
        let text = std::fs::read_to_string(&kek_path).map_err(|e| {
            bad(format!(
                "cannot read the KEK file {}: {e}",
                kek_path.display()
            ))
        })?;
        return Kek::from_base64(&text)
            .map_err(|e| bad(format!("KEK file {}: {e}", kek_path.display())));
    }
    // A database that already holds signing keys cannot be read with a new
    // KEK: generating one would only turn a lost file into a later, vaguer
    // failure.
    if std::fs::metadata(&db_path).is_ok_and(|m| m.len() > 0) {
        return Err(bad(format!(
            "the database {} exists but its key encryption key file {} is missing: restore \
             that file, or set TESSERA_KEK or TESSERA_KEK_FILE to the KEK this database was set \
             up with (a new KEK cannot unseal its signing keys)",
            db_path.display(),
            kek_path.display()
        )));
    }
    let kek = Kek::generate()?;
    write_private(&kek_path, &kek.to_base64()).map_err(|e| {
        bad(format!(
            "cannot write a KEK file at {}: {e}",
            kek_path.display()
        ))
    })?;
    let warning = format!(
        "DEVELOPMENT MODE: generated a key encryption key at {} because neither TESSERA_KEK nor \
         TESSERA_KEK_FILE is set. Anyone who can read that file can read the signing keys. \
         In production, give the issuer its KEK from a secret store.",
        kek_path.display()
    );
    tracing::warn!("{warning}");
    Ok(kek)
}

/// Where the KEK came from, for messages: the same order as [`resolve_kek`].
fn kek_source(config: &IssuerConfig) -> String {
    if config.kek.is_some() {
        return "TESSERA_KEK (--kek)".into();
    }
    if let Some(path) = &config.kek_file {
        return format!("the file {}", path.display());
    }
    match config.sqlite_path() {
        Some(db) => format!("the file {}", sibling_kek_path(&db).display()),
        None => "a throw-away key".into(),
    }
}

fn sibling_kek_path(db_path: &Path) -> PathBuf {
    let mut name = db_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".kek");
    db_path.with_file_name(name)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The longest issuer name: the `signing_keys.issuer` column's width.
pub(crate) const MAX_ISSUER_NAME_CHARS: usize = 128;

/// Checks `--issuer-name` before anything starts: it is every token's `iss`
/// and is recorded on each signing key, so a bad one would fail only at the
/// first key write, inside start-up's retry loop.
pub(crate) fn check_issuer_name(config: &IssuerConfig) -> Result<(), IssuerError> {
    let name = &config.issuer_name;
    let problem = if name.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if name.chars().count() > MAX_ISSUER_NAME_CHARS {
        Some(format!(
            "must be at most {MAX_ISSUER_NAME_CHARS} characters"
        ))
    } else if name.chars().any(char::is_control) {
        Some("must not hold control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(why) => Err(IssuerError::FailedPrecondition(format!(
            "TESSERA_ISSUER_NAME (--issuer-name) {why}"
        ))),
        None => Ok(()),
    }
}

/// Checks the admin password from the configuration before anything starts.
pub(crate) fn check_admin_password(config: &IssuerConfig) -> Result<(), IssuerError> {
    match &config.admin_password {
        Some(p) if p.chars().count() < password::MIN_LENGTH => {
            Err(IssuerError::FailedPrecondition(format!(
                "TESSERA_ADMIN_PASSWORD must be at least {} characters",
                password::MIN_LENGTH
            )))
        }
        _ => Ok(()),
    }
}

/// Connects, migrates, and makes sure an administrator and a signing key
/// exist. Safe to run in several replicas at once.
pub(crate) async fn start(shared: &Shared) -> Result<Store, IssuerError> {
    let config = &shared.config;
    let mut connect = ConnectConfig::new(config.database_url.clone());
    connect.max_connections = config.db_max_connections;
    connect.schema = config.db_schema.clone();
    let store = Store::connect_with(connect).await?;
    store.migrate().await?;
    ensure_admin(shared, &store).await?;
    ensure_signing_key(shared, &store).await?;
    Ok(store)
}

async fn ensure_admin(shared: &Shared, store: &Store) -> Result<(), IssuerError> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match &shared.config.admin_password {
        Some(p) => (p.clone(), false),
        None => (random::url_safe_string::<18>()?, true),
    };
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| IssuerError::Internal(format!("hashing task failed: {e}")))??
    };
    let id = uuid::Uuid::now_v7().to_string();
    let target = format!("users/{id}");
    let new = NewUser {
        id,
        username: ADMIN_USERNAME.into(),
        password_hash: hash,
        admin: true,
        enabled: true,
        grants: vec![Grant::everything()],
    };
    let audit = tessera_store::audit::NewAudit::ok("-", "user.create", target)
        .with_outcome("ok", "first start: created the administrator");
    match store.create_user(shared.now(), new, Some(audit)).await {
        Ok(_) => {
            if generated {
                // Shown once, on the console, never through the log pipeline.
                eprintln!(
                    "\n  Created user `{ADMIN_USERNAME}` with password: {password}\n  \
                     It is shown only this once. Set TESSERA_ADMIN_PASSWORD to choose it instead.\n"
                );
            }
            tracing::info!(user = ADMIN_USERNAME, "created the first administrator");
            Ok(())
        }
        // Another replica got there first.
        Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_signing_key(shared: &Shared, store: &Store) -> Result<(), IssuerError> {
    let now = shared.now();
    let row = match store.signing_key(now).await? {
        Some(row) => row,
        None => {
            let pair = keys::generate(&shared.kek)?;
            tracing::info!(kid = %pair.kid, "generated the first signing key");
            store
                .insert_key(now, pair, now, &shared.config.issuer_name)
                .await?
        }
    };
    // Keys made before key rows named their issuer are this issuer's.
    store.name_key_issuer(&shared.config.issuer_name).await?;
    // Unseal now so a wrong KEK is reported at start, not at the first login.
    Signer::unseal(&shared.kek, &row.kid, &row.sealed_private_key).map_err(|e| {
        IssuerError::FailedPrecondition(format!(
            "{e}: is the key encryption key from {} the one this database was set up with?",
            kek_source(&shared.config)
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_names_are_checked_before_start() {
        let mut config = IssuerConfig::new("127.0.0.1:0".parse().expect("addr"), "sqlite::memory:");
        let check = |config: &IssuerConfig| check_issuer_name(config).map_err(|e| e.to_string());
        assert!(check(&config).is_ok(), "the default name is fine");
        config.issuer_name = "é".repeat(MAX_ISSUER_NAME_CHARS);
        assert!(
            check(&config).is_ok(),
            "128 characters, whatever their bytes"
        );
        for (bad, why) in [
            ("".to_owned(), "empty"),
            ("x".repeat(MAX_ISSUER_NAME_CHARS + 1), "at most 128"),
            ("prod\nstaging".to_owned(), "control"),
        ] {
            config.issuer_name = bad;
            let refused = check(&config).expect_err("refused");
            assert!(refused.contains(why), "{refused}");
            assert!(refused.contains("--issuer-name"), "{refused}");
        }
    }
}
