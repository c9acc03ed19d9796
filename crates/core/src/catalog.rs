//! The permission catalog: which resource types exist, which actions each
//! has, and which grants depend on which others.
//!
//! The catalog is a TOML document (see `docs/operators.md`, "Permission
//! catalog"):
//!
//! ```toml
//! [types.repositories]
//! description = "Repositories of workspaces, templates and custom formats"
//! general = ["access", "create", "manage"]   # granted on the type only
//! item = ["read", "write", "run", "download", "upload"]  # on the type or one item
//!
//! [[dependencies]]
//! grant = "automations:run"
//! needs = ["repositories:read", "workspaces:run"]
//! ```
//!
//! Rules, decided once here and used by the issuer:
//!
//! - A **general** action (`access`, `create`, `manage`…) applies to the
//!   type as a whole: it may be granted on the type (`repositories`) only,
//!   never on one item.
//! - An **item** action (`read`, `run`…) may be granted on the type, which
//!   covers every item, or on one item (`repositories/Samples`).
//! - The action `*` stands for every action valid where it is granted; the
//!   resource `*` for every resource (an administrator's grant).
//! - A dependency `T:a needs U:b` applies to any grant of `a` on `T` or an
//!   item of `T`. When `U` is the same type and `b` an item action, the
//!   needed grant is on the same resource (`repositories/Samples:download`
//!   needs `repositories/Samples:read`); otherwise it is on the type `U`.
//!   Dependencies are followed transitively.
//!
//! Everything here is pure: the issuer reads the file and hands the text in.

use crate::grants::{self, Grant, WILDCARD};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A catalog that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission catalog: {}", .0.join("; "))]
pub struct CatalogError(pub Vec<String>);

/// One resource type and its actions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceType {
    /// What the type is, for people reading the catalog.
    #[serde(default)]
    pub description: String,
    /// Actions on the type as a whole (`access`, `create`, `manage`).
    #[serde(default)]
    pub general: Vec<String>,
    /// Actions on items (`read`, `run`), grantable on the type or one item.
    #[serde(default)]
    pub item: Vec<String>,
}

impl ResourceType {
    fn has(&self, action: &str) -> bool {
        self.general.iter().chain(&self.item).any(|a| a == action)
    }
}

/// `type:action`, as dependencies name a permission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub resource_type: String,
    pub action: String,
}

impl Permission {
    fn parse(text: &str) -> Option<Self> {
        let (t, a) = text.split_once(':')?;
        let (t, a) = (t.trim(), a.trim());
        (!t.is_empty() && !a.is_empty()).then(|| Self {
            resource_type: t.to_owned(),
            action: a.to_owned(),
        })
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource_type, self.action)
    }
}

/// One dependency as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DependencyFile {
    grant: String,
    needs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    types: BTreeMap<String, ResourceType>,
    #[serde(default)]
    dependencies: Vec<DependencyFile>,
}

/// A granted permission needs others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub grant: Permission,
    pub needs: Vec<Permission>,
}

/// What is wrong with one grant of a request, against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantProblem {
    /// Which part: the resource or the actions.
    pub part: GrantPart,
    /// What is wrong, and what to use instead.
    pub description: String,
}

/// The part of a grant a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantPart {
    Resource,
    Actions,
}

/// A validated permission catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    types: BTreeMap<String, ResourceType>,
    dependencies: Vec<Dependency>,
}

/// A name the catalog may use for a type or an action.
fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Catalog {
    /// Parses and validates a catalog document. Every problem is reported at
    /// once, so an operator fixes the file in one go.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| CatalogError(vec![e.to_string()]))?;
        let mut problems = Vec::new();
        if file.types.is_empty() {
            problems.push("it names no resource types: add at least one [types.NAME]".into());
        }
        for (name, t) in &file.types {
            if !well_formed(name) {
                problems.push(format!(
                    "type {name:?}: use lower-case letters, digits, `_` and `-` (no `/` or `*`)"
                ));
            }
            if t.general.is_empty() && t.item.is_empty() {
                problems.push(format!(
                    "type {name:?} has no actions: list general or item actions"
                ));
            }
            let mut seen: Vec<&str> = Vec::new();
            for action in t.general.iter().chain(&t.item) {
                if !well_formed(action) {
                    problems.push(format!(
                        "type {name:?}: action {action:?} must use lower-case letters, digits, \
                         `_` and `-`"
                    ));
                }
                if seen.contains(&action.as_str()) {
                    problems.push(format!(
                        "type {name:?}: action {action:?} is listed twice (an action is either \
                         general or item, once)"
                    ));
                }
                seen.push(action);
            }
        }
        let known = |p: &Permission| {
            file.types
                .get(&p.resource_type)
                .is_some_and(|t| t.has(&p.action))
        };
        let mut dependencies = Vec::with_capacity(file.dependencies.len());
        for (i, d) in file.dependencies.iter().enumerate() {
            let Some(grant) = Permission::parse(&d.grant) else {
                problems.push(format!(
                    "dependencies[{i}].grant {:?} is not `type:action`",
                    d.grant
                ));
                continue;
            };
            if !known(&grant) {
                problems.push(format!(
                    "dependencies[{i}].grant names {grant}, which no type of the catalog has"
                ));
            }
            if d.needs.is_empty() {
                problems.push(format!(
                    "dependencies[{i}] ({grant}) needs nothing: list what it needs"
                ));
            }
            let mut needs = Vec::with_capacity(d.needs.len());
            for text in &d.needs {
                match Permission::parse(text) {
                    None => problems.push(format!(
                        "dependencies[{i}].needs {text:?} is not `type:action`"
                    )),
                    Some(p) if !known(&p) => problems.push(format!(
                        "dependencies[{i}] ({grant}) needs {p}, which no type of the catalog has"
                    )),
                    Some(p) if p == grant => {
                        problems.push(format!("dependencies[{i}]: {grant} cannot need itself"))
                    }
                    Some(p) => needs.push(p),
                }
            }
            dependencies.push(Dependency { grant, needs });
        }
        if problems.is_empty() {
            Ok(Self {
                types: file.types,
                dependencies,
            })
        } else {
            Err(CatalogError(problems))
        }
    }

    /// The resource types, by name.
    pub fn types(&self) -> &BTreeMap<String, ResourceType> {
        &self.types
    }

    /// The dependencies between grants.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// What is wrong with `grant` against the catalog; empty when valid.
    pub fn check(&self, grant: &Grant) -> Vec<GrantProblem> {
        let mut problems = Vec::new();
        let resource_problem = |description: String| GrantProblem {
            part: GrantPart::Resource,
            description,
        };
        if grant.resource == WILDCARD {
            for action in grant.actions.iter().filter(|a| *a != WILDCARD) {
                if !self.types.values().any(|t| t.has(action)) {
                    problems.push(GrantProblem {
                        part: GrantPart::Actions,
                        description: format!("{action:?} is not an action of any resource type"),
                    });
                }
            }
            return problems;
        }
        let (type_name, item) = match grant.resource.split_once('/') {
            Some((t, item)) => (t, Some(item)),
            None => (grant.resource.as_str(), None),
        };
        let Some(t) = self.types.get(type_name) else {
            problems.push(resource_problem(format!(
                "{type_name:?} is not a resource type: use one of {}",
                self.type_names()
            )));
            return problems;
        };
        if item.is_some_and(|i| i.trim().is_empty()) {
            problems.push(resource_problem(format!(
                "names no item after `{type_name}/`: name one item, or grant on `{type_name}`"
            )));
            return problems;
        }
        for action in grant.actions.iter().filter(|a| *a != WILDCARD) {
            let description = if item.is_some() && t.general.contains(action) {
                format!(
                    "{action:?} is a general action of {type_name}: grant it on `{type_name}`, \
                     not on one item"
                )
            } else if item.is_some() && !t.item.contains(action) {
                format!(
                    "{action:?} is not an item action of {type_name}: use one of {}",
                    list(&t.item)
                )
            } else if !t.has(action) {
                format!(
                    "{action:?} is not an action of {type_name}: use one of {}",
                    list(&t.general.iter().chain(&t.item).cloned().collect::<Vec<_>>())
                )
            } else {
                continue;
            };
            problems.push(GrantProblem {
                part: GrantPart::Actions,
                description,
            });
        }
        problems
    }

    fn type_names(&self) -> String {
        list(&self.types.keys().cloned().collect::<Vec<_>>())
    }

    /// The permissions `grant` gives, one `(resource, action)` at a time,
    /// with `*` actions spelled out as the actions valid there.
    fn expand(&self, grant: &Grant) -> Vec<(String, String)> {
        let type_name = grant
            .resource
            .split_once('/')
            .map_or(grant.resource.as_str(), |(t, _)| t);
        let is_item = grant.resource.contains('/');
        let mut out = Vec::new();
        for action in &grant.actions {
            if action != WILDCARD {
                out.push((grant.resource.clone(), action.clone()));
                continue;
            }
            let types: Vec<(&String, &ResourceType)> = if grant.resource == WILDCARD {
                self.types.iter().collect()
            } else {
                self.types.get_key_value(type_name).into_iter().collect()
            };
            for (name, t) in types {
                let resource = if grant.resource == WILDCARD {
                    name.clone()
                } else {
                    grant.resource.clone()
                };
                let actions = if is_item { &t.item } else { &t.general };
                for a in actions
                    .iter()
                    .chain(if is_item { &[][..] } else { &t.item[..] })
                {
                    out.push((resource.clone(), a.clone()));
                }
            }
        }
        out
    }

    /// The grants `grants` depend on (transitively) but do not hold, one
    /// action per grant, sorted. What is refused, or added on request.
    pub fn missing_dependencies(&self, grants: &[Grant]) -> Vec<Grant> {
        let mut held: Vec<Grant> = grants.to_vec();
        let mut missing: Vec<Grant> = Vec::new();
        let mut todo: Vec<(String, String)> = grants.iter().flat_map(|g| self.expand(g)).collect();
        while let Some((resource, action)) = todo.pop() {
            let (type_name, is_item) = match resource.split_once('/') {
                Some((t, _)) => (t, true),
                None => (resource.as_str(), false),
            };
            let type_names: Vec<&str> = if resource == WILDCARD {
                self.types.keys().map(String::as_str).collect()
            } else {
                vec![type_name]
            };
            for type_name in type_names {
                for dep in self
                    .dependencies
                    .iter()
                    .filter(|d| d.grant.resource_type == type_name && d.grant.action == action)
                {
                    for need in &dep.needs {
                        let same_item = is_item
                            && need.resource_type == type_name
                            && self
                                .types
                                .get(type_name)
                                .is_some_and(|t| t.item.contains(&need.action));
                        let target = if same_item {
                            resource.clone()
                        } else {
                            need.resource_type.clone()
                        };
                        if grants::allows(&held, &target, &need.action) {
                            continue;
                        }
                        let grant = Grant {
                            resource: target.clone(),
                            actions: vec![need.action.clone()],
                        };
                        held.push(grant.clone());
                        missing.push(grant);
                        todo.push((target, need.action.clone()));
                    }
                }
            }
        }
        missing.sort();
        missing.dedup();
        missing
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// Merges `extra` into `grants`: one grant per resource, actions sorted.
pub fn merge(grants: &[Grant], extra: &[Grant]) -> Vec<Grant> {
    let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in grants.iter().chain(extra) {
        by_resource
            .entry(g.resource.clone())
            .or_default()
            .extend(g.actions.iter().cloned());
    }
    by_resource
        .into_iter()
        .map(|(resource, actions)| Grant { resource, actions }.normalized())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [types.repositories]
        general = ["access", "create", "manage"]
        item = ["read", "write", "run", "download"]

        [types.workspaces]
        item = ["run"]

        [types.automations]
        general = ["create"]
        item = ["run"]

        [[dependencies]]
        grant = "automations:run"
        needs = ["workspaces:run"]

        [[dependencies]]
        grant = "workspaces:run"
        needs = ["repositories:read"]

        [[dependencies]]
        grant = "repositories:download"
        needs = ["repositories:read"]
    "#;

    fn grant(resource: &str, actions: &[&str]) -> Grant {
        Grant {
            resource: resource.into(),
            actions: actions.iter().map(|a| (*a).into()).collect(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::parse(SAMPLE).expect("the sample catalog should parse")
    }

    #[test]
    fn general_actions_go_on_types_and_item_actions_anywhere() {
        let c = catalog();
        assert!(
            c.check(&grant("repositories", &["manage", "read"]))
                .is_empty()
        );
        assert!(
            c.check(&grant("repositories/Samples", &["read", "run"]))
                .is_empty()
        );
        assert!(c.check(&grant("repositories/Samples", &["*"])).is_empty());
        assert!(c.check(&grant("*", &["*"])).is_empty());
        let p = c.check(&grant("repositories/Samples", &["manage"]));
        assert_eq!(p.len(), 1);
        assert!(p[0].description.contains("general action"), "{p:?}");
        let p = c.check(&grant("repositories", &["fly", "read"]));
        assert_eq!(p[0].part, GrantPart::Actions);
        assert!(p[0].description.contains("\"fly\""), "{p:?}");
        let p = c.check(&grant("planets", &["read"]));
        assert_eq!(p[0].part, GrantPart::Resource);
        assert!(p[0].description.contains("\"planets\""), "{p:?}");
        assert_eq!(
            c.check(&grant("repositories/", &["read"]))[0].part,
            GrantPart::Resource
        );
    }

    #[test]
    fn dependencies_are_followed_transitively_and_item_needs_stay_on_the_item() {
        let c = catalog();
        assert_eq!(
            c.missing_dependencies(&[grant("automations", &["run"])]),
            [
                grant("repositories", &["read"]),
                grant("workspaces", &["run"])
            ]
        );
        assert_eq!(
            c.missing_dependencies(&[grant("repositories/Samples", &["download"])]),
            [grant("repositories/Samples", &["read"])]
        );
        assert!(
            c.missing_dependencies(&[
                grant("repositories/Samples", &["download"]),
                grant("repositories", &["read"])
            ])
            .is_empty()
        );
        assert!(c.missing_dependencies(&[Grant::everything()]).is_empty());
        assert_eq!(
            c.missing_dependencies(&[grant("automations", &["*"])])
                .len(),
            2
        );
    }

    #[test]
    fn a_bad_catalog_is_refused_with_every_problem() {
        let bad = r#"
            [types.repositories]
            general = ["manage"]
            item = ["read", "manage"]

            [types.empty]

            [[dependencies]]
            grant = "automations:run"
            needs = ["repositories:fly", "nonsense"]
        "#;
        let err = Catalog::parse(bad).expect_err("the catalog should be refused");
        let text = err.to_string();
        for expected in [
            "listed twice",
            "\"empty\" has no actions",
            "automations:run",
            "repositories:fly",
            "\"nonsense\"",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert!(Catalog::parse("[types.x]\nitem = [\"read\"]\nbogus = 1\n").is_err());
        assert!(Catalog::parse("not toml at all [").is_err());
    }

    #[test]
    fn merging_keeps_one_grant_per_resource() {
        assert_eq!(
            merge(
                &[grant("repositories", &["run"])],
                &[grant("repositories", &["read"]), grant("jobs", &["read"])]
            ),
            [
                grant("jobs", &["read"]),
                grant("repositories", &["read", "run"])
            ]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn requested() -> impl Strategy<Value = Vec<Grant>> {
            let resources = prop_oneof![
                Just("repositories"),
                Just("repositories/Samples"),
                Just("workspaces"),
                Just("automations"),
                Just("automations/Nightly"),
            ];
            let actions = prop_oneof![Just("read"), Just("run"), Just("download"), Just("*")];
            prop::collection::vec((resources, prop::collection::vec(actions, 1..3)), 0..4).prop_map(
                |gs| {
                    gs.into_iter()
                        .map(|(r, a)| grant(r, &a))
                        .collect::<Vec<_>>()
                },
            )
        }

        proptest! {
            #[test]
            fn adding_the_missing_dependencies_leaves_none_missing(grants in requested()) {
                let c = catalog();
                let missing = c.missing_dependencies(&grants);
                let complete = merge(&grants, &missing);
                prop_assert!(c.missing_dependencies(&complete).is_empty(), "{complete:?}");
                // Nothing already held is reported missing.
                for m in &missing {
                    prop_assert!(!grants::allows(&grants, &m.resource, &m.actions[0]));
                }
            }
        }
    }
}
