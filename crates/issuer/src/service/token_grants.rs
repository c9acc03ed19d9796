//! What a token may be given: held to a ceiling (its owner's grants, and
//! the caller's own when it called with a token or manages someone else's),
//! and complete with the grants its grants depend on in the catalog.

use super::token_select::excess;
use crate::error::IssuerError;
use tessera_core::Grant;
use tessera_core::catalog::{self, Catalog};

/// Refuses `grants` beyond `ceiling`, listing each excess `resource:action`.
pub(crate) fn within(ceiling: &[Grant], grants: &[Grant], whose: &str) -> Result<(), IssuerError> {
    let over = excess(ceiling, grants);
    if over.is_empty() {
        return Ok(());
    }
    Err(IssuerError::PermissionDenied(format!(
        "a token cannot hold more than {whose}: not grantable: {}; ask for fewer \
         permissions, or have them granted first",
        over.join(", ")
    )))
}

/// The grants with what they depend on: with `add`, the missing
/// dependencies are added and returned (to show the caller what was added);
/// without, a missing dependency refuses the request, listing each one.
pub(crate) fn with_dependencies(
    catalog: &Catalog,
    grants: Vec<Grant>,
    add: bool,
) -> Result<(Vec<Grant>, Vec<Grant>), IssuerError> {
    let missing = catalog.missing_dependencies(&grants);
    if missing.is_empty() {
        return Ok((grants, missing));
    }
    if !add {
        return Err(missing_dependencies(
            missing,
            "add them, or set grant_dependencies to have them added",
        ));
    }
    Ok((catalog::merge(&grants, &missing), missing))
}

/// The refusal of grants whose dependencies are missing; `what_to_do`
/// ends the message.
pub(crate) fn missing_dependencies(missing: Vec<Grant>, what_to_do: &str) -> IssuerError {
    let listed: Vec<String> = missing
        .iter()
        .map(|g| format!("{}:{}", g.resource, g.actions.join(",")))
        .collect();
    IssuerError::MissingDependencies {
        message: format!(
            "the requested permissions depend on others they lack: {}; {what_to_do}",
            listed.join(", ")
        ),
        missing,
    }
}
