//! The permission catalog the issuer checks grants against: the default one
//! shipped in `catalog/default.toml`, or the operator's file (`--catalog`,
//! `TESSERA_CATALOG`). The rules live in [`tessera_core::catalog`]; this
//! module only finds the text, and refuses to start on a bad catalog.

use crate::error::IssuerError;
use std::path::Path;
use tessera_core::Catalog;

/// The catalog shipped with the issuer, modelled on FME Server's categories.
pub const DEFAULT_CATALOG: &str = include_str!("../catalog/default.toml");

/// Loads the catalog at `path`, or the default one. A catalog that cannot be
/// read or is invalid stops the start, naming the file and each problem.
pub(crate) fn load(path: Option<&Path>) -> Result<Catalog, IssuerError> {
    let Some(path) = path else {
        return Catalog::parse(DEFAULT_CATALOG).map_err(|e| {
            IssuerError::Internal(format!("the built-in permission catalog is invalid: {e}"))
        });
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        IssuerError::FailedPrecondition(format!(
            "cannot read the permission catalog {}: {e}; fix --catalog / TESSERA_CATALOG",
            path.display()
        ))
    })?;
    let catalog = Catalog::parse(&text).map_err(|e| {
        IssuerError::FailedPrecondition(format!(
            "{e} (in {}); fix the file named by --catalog / TESSERA_CATALOG",
            path.display()
        ))
    })?;
    let lacking: Vec<String> = MANAGED
        .iter()
        .filter(|t| {
            !catalog
                .types()
                .get(**t)
                .is_some_and(|rt| rt.general.iter().any(|a| a == "manage"))
        })
        .map(|t| format!("{t}: manage"))
        .collect();
    if !lacking.is_empty() {
        return Err(IssuerError::FailedPrecondition(format!(
            "the permission catalog {} lacks {}, which the issuer's own calls check: add \
             these types with the general action `manage`",
            path.display(),
            lacking.join(", ")
        )));
    }
    Ok(catalog)
}

/// The types whose `manage` grant authorizes the issuer's management calls:
/// every catalog must have them.
const MANAGED: &[&str] = &["tokens", "users", "keys"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_valid_and_covers_fmes_categories() {
        let catalog = load(None).expect("the default catalog should be valid");
        for t in [
            "repositories",
            "workspaces",
            "jobs",
            "automations",
            "schedules",
            "resources",
            "connections",
            "tokens",
            "users",
            "keys",
        ] {
            assert!(catalog.types().contains_key(t), "{t} missing");
        }
    }

    #[test]
    fn a_bad_catalog_file_stops_the_start_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("tessera-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir should be writable");
        let file = dir.join("bad.toml");
        std::fs::write(
            &file,
            "[types.jobs]\nitem = [\"read\"]\n[[dependencies]]\ngrant = \"jobs:read\"\nneeds = [\"planets:visit\"]\n",
        )
        .expect("catalog file should be written");
        let err = load(Some(&file)).expect_err("a dependency on an unknown type should be refused");
        let text = err.to_string();
        assert!(
            text.contains("planets:visit") && text.contains("bad.toml"),
            "{text}"
        );
        std::fs::write(&file, "[types.jobs]\nitem = [\"read\"]\n")
            .expect("catalog file should be written");
        let err = load(Some(&file)).expect_err("the issuer's own types are required");
        assert!(err.to_string().contains("users: manage"), "{err}");
        let missing = load(Some(&dir.join("absent.toml"))).expect_err("a missing file is refused");
        assert!(missing.to_string().contains("absent.toml"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
