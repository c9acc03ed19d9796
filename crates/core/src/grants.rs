//! Grants: what a user or a token may do.
//!
//! A grant names a resource — a type such as `repositories`, or one item of a
//! type such as `repositories/Samples` — and the actions allowed on it. A
//! grant on a type covers all of its items; the resource `*` stands for every
//! resource and the action `*` for every action (an administrator's grant).

use serde::{Deserialize, Serialize};

/// The resource or action that stands for "everything".
pub const WILDCARD: &str = "*";

/// The most grants one user or token may hold.
pub const MAX_GRANTS: usize = 64;

/// The most actions one grant may name.
pub const MAX_ACTIONS: usize = 16;

/// The largest a user's or token's grants may be, as the JSON signed into
/// a token. With the other claims (ids, times, an issuer name of up to 128
/// bytes), the header and the signature, and base64url's growth by a third,
/// a token then stays within [`crate::jwt::MAX_TOKEN_BYTES`], so every token
/// the issuer can mint is one its verifiers accept.
pub const MAX_GRANTS_JSON_BYTES: usize = 5 * 1024;

/// The size of `grants` as signed into a token.
pub fn json_size(grants: &[Grant]) -> usize {
    serde_json::to_vec(grants).map_or(usize::MAX, |json| json.len())
}

/// One permission grant: actions on a resource type or item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    /// A resource type (`repositories`), an item (`repositories/Samples`) or `*`.
    pub resource: String,
    /// Actions allowed on it (`read`, `run`, …), or `*`.
    pub actions: Vec<String>,
}

impl Grant {
    /// Reads a grant written as `RESOURCE:ACTION[,ACTION…]`, such as
    /// `repositories/Samples:read,run` (what the CLI's `--grant` takes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not RESOURCE:ACTION[,ACTION…] (e.g. repositories/Samples:read,run)"
            )
        };
        let (resource, actions) = text.rsplit_once(':').ok_or_else(bad)?;
        let actions: Vec<String> = actions
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if resource.trim().is_empty() || actions.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            resource: resource.trim().into(),
            actions,
        })
    }

    /// The grant that allows everything: what an administrator holds.
    pub fn everything() -> Self {
        Self {
            resource: WILDCARD.to_owned(),
            actions: vec![WILDCARD.to_owned()],
        }
    }

    /// Whether this grant allows `action` on `resource` (a type or `type/item`).
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        covers(&self.resource, resource)
            && self.actions.iter().any(|a| a == WILDCARD || a == action)
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

/// Whether resource pattern `outer` covers resource `inner` (itself, one of
/// its items, or everything).
fn covers(outer: &str, inner: &str) -> bool {
    outer == WILDCARD
        || outer == inner
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What both grant sets allow: each grant of `a` cut down to what `b` allows.
/// Used to hold a token to its owner's (possibly reduced) grants.
pub fn intersect(a: &[Grant], b: &[Grant]) -> Vec<Grant> {
    let mut out = Vec::new();
    for g in a {
        for c in b {
            let resource = if covers(&c.resource, &g.resource) {
                &g.resource
            } else if covers(&g.resource, &c.resource) {
                &c.resource
            } else {
                continue;
            };
            let c_all = c.actions.iter().any(|x| x == WILDCARD);
            let g_all = g.actions.iter().any(|x| x == WILDCARD);
            let actions: Vec<String> = if c_all {
                g.actions.clone()
            } else if g_all {
                c.actions.clone()
            } else {
                g.actions
                    .iter()
                    .filter(|x| c.actions.contains(x))
                    .cloned()
                    .collect()
            };
            if !actions.is_empty() {
                out.push(
                    Grant {
                        resource: resource.clone(),
                        actions,
                    }
                    .normalized(),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
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
    fn intersection_keeps_only_what_both_allow() {
        let token = [
            grant("repositories", &["read", "run"]),
            grant("jobs", &["read"]),
        ];
        let owner = [grant("repositories/Samples", &["read", "write"])];
        assert_eq!(
            intersect(&token, &owner),
            [grant("repositories/Samples", &["read"])]
        );
        assert_eq!(intersect(&token, &[Grant::everything()]), {
            let mut all = token.to_vec();
            all.sort();
            all
        });
        assert!(intersect(&token, &[]).is_empty());
        for g in intersect(&token, &owner) {
            for a in &g.actions {
                assert!(allows(&token, &g.resource, a) && allows(&owner, &g.resource, a));
            }
        }
    }

    #[test]
    fn the_wildcard_grant_allows_everything() {
        assert!(Grant::everything().allows("jobs/7", "manage"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn resource() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(WILDCARD.to_owned()),
                Just("repositories".to_owned()),
                Just("jobs".to_owned()),
                Just("repositories/Samples".to_owned()),
                Just("repositories/Other".to_owned()),
                Just("repositoriesX".to_owned()),
                Just("jobs/7".to_owned()),
            ]
        }

        fn action() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(WILDCARD.to_owned()),
                Just("read".to_owned()),
                Just("run".to_owned()),
                Just("manage".to_owned()),
            ]
        }

        fn grant() -> impl Strategy<Value = Grant> {
            (resource(), prop::collection::vec(action(), 0..3))
                .prop_map(|(resource, actions)| Grant { resource, actions })
        }

        fn grant_set() -> impl Strategy<Value = Vec<Grant>> {
            prop::collection::vec(grant(), 0..4)
        }

        fn probe() -> impl Strategy<Value = (String, String)> {
            // Concrete requests: a verifier asks about a resource and an action.
            (resource(), action())
        }

        proptest! {
            #[test]
            fn a_set_allows_only_what_one_of_its_grants_covers(
                set in grant_set(),
                (res, act) in probe(),
            ) {
                let any_one = set.iter().any(|g| g.allows(&res, &act));
                prop_assert_eq!(allows(&set, &res, &act), any_one);
                if set.is_empty() {
                    prop_assert!(!allows(&set, &res, &act));
                }
            }

            #[test]
            fn intersect_never_allows_more_than_either_side(
                a in grant_set(),
                b in grant_set(),
                (res, act) in probe(),
            ) {
                let both = intersect(&a, &b);
                if allows(&both, &res, &act) {
                    prop_assert!(allows(&a, &res, &act), "{both:?} allows {res}:{act} beyond {a:?}");
                    prop_assert!(allows(&b, &res, &act), "{both:?} allows {res}:{act} beyond {b:?}");
                }
            }

            #[test]
            fn intersect_with_everything_changes_nothing(
                a in grant_set(),
                (res, act) in probe(),
            ) {
                let both = intersect(&a, &[Grant::everything()]);
                prop_assert_eq!(allows(&both, &res, &act), allows(&a, &res, &act));
            }
        }
    }
}
