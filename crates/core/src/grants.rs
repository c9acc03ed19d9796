//! Grants: what a user or a token may do.
//!
//! A grant names a resource — a type such as `repositories`, or one item of a
//! type such as `repositories/Samples` — and the actions allowed on it. A
//! grant on a type covers all of its items; the resource `*` stands for every
//! resource and the action `*` for every action (an administrator's grant).

use serde::{Deserialize, Serialize};

/// The resource or action that stands for "everything".
pub const WILDCARD: &str = "*";

/// One permission grant: actions on a resource type or item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    /// A resource type (`repositories`), an item (`repositories/Samples`) or `*`.
    pub resource: String,
    /// Actions allowed on it (`read`, `run`, …), or `*`.
    pub actions: Vec<String>,
}

impl Grant {
    /// The grant that allows everything: what an administrator holds.
    pub fn everything() -> Self {
        Self {
            resource: WILDCARD.to_owned(),
            actions: vec![WILDCARD.to_owned()],
        }
    }

    /// Whether this grant allows `action` on `resource` (a type or `type/item`).
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        let resource_ok = self.resource == WILDCARD
            || self.resource == resource
            || resource
                .strip_prefix(self.resource.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        resource_ok && self.actions.iter().any(|a| a == WILDCARD || a == action)
    }

    /// Sorts and de-duplicates the actions, so equal grants compare equal.
    pub fn normalized(mut self) -> Self {
        self.actions.sort();
        self.actions.dedup();
        self
    }
}

/// Whether any grant in `grants` allows `action` on `resource`.
pub fn allows(grants: &[Grant], resource: &str, action: &str) -> bool {
    grants.iter().any(|g| g.allows(resource, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(resource: &str, actions: &[&str]) -> Grant {
        Grant {
            resource: resource.into(),
            actions: actions.iter().map(|a| (*a).into()).collect(),
        }
    }

    #[test]
    fn a_type_grant_covers_its_items_but_not_lookalikes() {
        let g = grant("repositories", &["read"]);
        assert!(g.allows("repositories", "read"));
        assert!(g.allows("repositories/Samples", "read"));
        assert!(!g.allows("repositoriesX", "read"));
        assert!(!g.allows("repositories/Samples", "write"));
    }

    #[test]
    fn an_item_grant_does_not_cover_its_type() {
        let g = grant("repositories/Samples", &["run"]);
        assert!(g.allows("repositories/Samples", "run"));
        assert!(!g.allows("repositories", "run"));
        assert!(!g.allows("repositories/Other", "run"));
    }

    #[test]
    fn the_wildcard_grant_allows_everything() {
        assert!(Grant::everything().allows("jobs/7", "manage"));
    }
}
