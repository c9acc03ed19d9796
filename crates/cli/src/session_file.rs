//! The saved session: one small JSON file under the user's config
//! directory, readable only by its owner.

use crate::error::CliError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A saved session.
#[derive(Debug, Clone)]
pub struct Saved {
    pub issuer: String,
    pub token: String,
    /// Unix seconds.
    pub expire_time: i64,
}

/// The directory the session file lives in.
pub fn dir(overridden: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(dir) = overridden {
        return Ok(dir.to_path_buf());
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(config).join("tessera"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("tessera")),
        None => Err(CliError::Usage(
            "cannot find a config directory: set HOME, XDG_CONFIG_HOME or TESSERA_CONFIG_DIR"
                .into(),
        )),
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

/// Writes `contents` to `path` so that only its owner can read it, replacing
/// any previous file only once the new one is complete.
pub fn write_private(path: &Path, contents: &str) -> Result<(), CliError> {
    let failed =
        |e: std::io::Error| CliError::Local(format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(&temporary).map_err(failed)?;
    out.write_all(contents.as_bytes()).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Saves a session.
pub fn save(dir: &Path, saved: &Saved) -> Result<(), CliError> {
    let json = serde_json::json!({
        "issuer": saved.issuer,
        "token": saved.token,
        "expire_time": saved.expire_time,
    });
    write_private(&file(dir), &json.to_string())
}

/// The saved session, if there is one.
pub fn load(dir: &Path) -> Result<Option<Saved>, CliError> {
    let path = file(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::Local(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let bad = || {
        CliError::Local(format!(
            "{} is damaged; run `tessera login` again",
            path.display()
        ))
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    Ok(Some(Saved {
        issuer: json["issuer"].as_str().ok_or_else(bad)?.to_owned(),
        token: json["token"].as_str().ok_or_else(bad)?.to_owned(),
        expire_time: json["expire_time"].as_i64().ok_or_else(bad)?,
    }))
}

/// Forgets the saved session.
pub fn remove(dir: &Path) -> Result<bool, CliError> {
    match std::fs::remove_file(file(dir)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Local(format!(
            "cannot remove the saved session: {e}"
        ))),
    }
}
