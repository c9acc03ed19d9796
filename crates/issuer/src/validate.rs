//! Request checks shared by the handlers. Each names the offending field.

use crate::error::{FieldViolation, IssuerError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;
use tessera_core::catalog::GrantPart;
use tessera_core::{Catalog, Grant, password};
use tessera_proto::v1;

/// Longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Collects violations so a request with several bad fields hears of all.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// `Ok` when nothing was added.
    pub fn finish(self) -> Result<(), IssuerError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(IssuerError::InvalidArgument(self.0))
        }
    }
}

/// A token name: not blank, at most 128 characters, no control characters.
pub fn name(v: &mut Violations, field: &str, name: &str) {
    if name.trim().is_empty() {
        v.add(field, "must not be empty");
    } else if name.chars().count() > MAX_NAME_CHARS {
        v.add(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        );
    } else if name.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    } else if let Some(c) = name.chars().find(|c| matches!(c, '/' | ':')) {
        // REST routes address a token as users/{owner}/tokens/{name}: a `/`
        // or `:` in the name would make that route unreachable.
        v.add(
            field,
            format!("must not contain {c:?} (it would break the token's REST address)"),
        );
    } else if name.trim() != name {
        v.add(field, "must not start or end with white space");
    }
}

/// A description: at most 1 KiB.
pub fn description(v: &mut Violations, field: &str, description: &str) {
    if description.len() > MAX_DESCRIPTION_BYTES {
        v.add(
            field,
            format!("must be at most {MAX_DESCRIPTION_BYTES} bytes"),
        );
    }
}

/// Requested grants, turned into core grants and checked against the
/// permission catalog: unknown resource types, unknown actions, and general
/// actions named on one item are refused, each naming what to use instead.
pub fn grants(
    v: &mut Violations,
    catalog: &Catalog,
    field: &str,
    grants: &[v1::Grant],
) -> Vec<Grant> {
    if grants.len() > tessera_core::grants::MAX_GRANTS {
        v.add(
            field,
            format!(
                "holds {} grants; at most {} are allowed (a grant on a type covers all its \
                 items)",
                grants.len(),
                tessera_core::grants::MAX_GRANTS
            ),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(grants.len());
    for (i, g) in grants.iter().enumerate() {
        let resource = g.resource.trim();
        if resource.is_empty() || resource.len() > 256 || resource.chars().any(char::is_control) {
            v.add(
                format!("{field}[{i}].resource"),
                "must be a resource type or type/item of at most 256 bytes",
            );
            continue;
        }
        if g.actions.is_empty() {
            v.add(
                format!("{field}[{i}].actions"),
                "must name at least one action",
            );
            continue;
        }
        if g.actions.len() > tessera_core::grants::MAX_ACTIONS {
            v.add(
                format!("{field}[{i}].actions"),
                format!(
                    "names {} actions; at most {} are allowed (`*` stands for all)",
                    g.actions.len(),
                    tessera_core::grants::MAX_ACTIONS
                ),
            );
            continue;
        }
        if let Some(bad) = g
            .actions
            .iter()
            .find(|a| a.trim().is_empty() || a.len() > 64 || a.chars().any(char::is_control))
        {
            v.add(
                format!("{field}[{i}].actions"),
                format!("{bad:?} is not an action name"),
            );
            continue;
        }
        let grant = Grant {
            resource: resource.into(),
            actions: g.actions.iter().map(|a| a.trim().to_owned()).collect(),
        }
        .normalized();
        let problems = catalog.check(&grant);
        if problems.is_empty() {
            out.push(grant);
        }
        for p in problems {
            let part = match p.part {
                GrantPart::Resource => "resource",
                GrantPart::Actions => "actions",
            };
            v.add(format!("{field}[{i}].{part}"), p.description);
        }
    }
    let size = tessera_core::grants::json_size(&out);
    if size > tessera_core::grants::MAX_GRANTS_JSON_BYTES {
        v.add(
            field,
            format!(
                "take {size} bytes in a token; at most {} fit the 8 KiB verifiers accept: give \
                 fewer or shorter grants (a grant on a type covers all its items)",
                tessera_core::grants::MAX_GRANTS_JSON_BYTES
            ),
        );
    }
    out
}

/// A username: 1–128 letters, digits and `.`, `_`, `-`, `@`, `+`; not `-`
/// alone (it means "every user" in `ListTokens`), and not a UUID (users are
/// also addressed by id).
pub fn username(v: &mut Violations, field: &str, username: &str) {
    if username.is_empty() {
        v.add(field, "must not be empty");
    } else if username.chars().count() > MAX_NAME_CHARS {
        v.add(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        );
    } else if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
    {
        v.add(
            field,
            "may hold only letters, digits and the characters . _ - @ +",
        );
    } else if username == "-" {
        v.add(field, "must not be `-`, which stands for every user");
    } else if uuid::Uuid::parse_str(username).is_ok() {
        v.add(field, "must not look like a user id (a UUID)");
    }
}

/// A new password: between the minimum and maximum length, in characters.
pub fn new_password(v: &mut Violations, field: &str, text: &str) {
    let chars = text.chars().count();
    if chars < password::MIN_LENGTH {
        v.add(
            field,
            format!("must be at least {} characters", password::MIN_LENGTH),
        );
    } else if chars > password::MAX_LENGTH {
        v.add(
            field,
            format!("must be at most {} characters", password::MAX_LENGTH),
        );
    }
}

/// The paths of an update mask, each checked against the message's
/// `updatable` fields; `read_only` fields are refused as output only or
/// immutable. An unset or empty mask means `implied`: the updatable fields
/// the caller set to a non-default value.
pub fn mask_paths(
    v: &mut Violations,
    mask: Option<&prost_types::FieldMask>,
    updatable: &[&str],
    read_only: &[&str],
    implied: Vec<&'static str>,
) -> Vec<String> {
    let paths = match mask {
        Some(mask) if !mask.paths.is_empty() => &mask.paths,
        _ => return implied.into_iter().map(String::from).collect(),
    };
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        if updatable.contains(&path.as_str()) {
            if !out.contains(path) {
                out.push(path.clone());
            }
        } else if read_only.contains(&path.as_str()) {
            v.add(field, format!("{path:?} cannot be changed by an update"));
        } else {
            v.add(
                field,
                format!(
                    "{path:?} is not an updatable field; use one of: {}",
                    updatable.join(", ")
                ),
            );
        }
    }
    out
}

/// How a request asks for an expiry.
#[derive(Debug, Clone, Copy)]
pub enum Lifetime<'a> {
    /// Not at all: this many seconds from now.
    Default(i64),
    /// A lifetime from now (`expires_in`).
    ExpiresIn(&'a prost_types::Duration),
    /// An absolute time (`expire_time`).
    ExpireTime(&'a prost_types::Timestamp),
}

/// The expiry a request asks for, which must lie in the future and within
/// `max` from now; violations name `expires_in` or `expire_time`.
pub fn expiry(v: &mut Violations, now: i64, lifetime: Lifetime<'_>, max: Duration) -> Option<i64> {
    let (field, end) = match lifetime {
        Lifetime::Default(secs) => ("expires_in", Some(now.saturating_add(secs))),
        Lifetime::ExpiresIn(d) => (
            "expires_in",
            duration_secs(v, "expires_in", d).map(|s| now.saturating_add(s)),
        ),
        Lifetime::ExpireTime(t) if t.seconds <= now => {
            v.add("expire_time", "is in the past");
            ("expire_time", None)
        }
        Lifetime::ExpireTime(t) => ("expire_time", Some(t.seconds)),
    };
    let max_end = now.saturating_add(secs(max));
    match end {
        Some(end) if end > max_end => {
            v.add(
                field,
                format!(
                    "is past the maximum token lifetime of {} (it would end {}, the latest is {})",
                    tessera_core::duration::format(max),
                    tessera_core::duration::instant(end),
                    tessera_core::duration::instant(max_end)
                ),
            );
            None
        }
        other => other,
    }
}

/// Seconds of an optional filter time, refusing one protobuf says is not
/// a time (nanos out of range, or before year 1 / after 9999).
pub fn filter_time(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<i64> {
    let t = t?;
    // 0001-01-01 and 9999-12-31, the range RFC 3339 (and JSON) can show.
    const RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
    if !(0..1_000_000_000).contains(&t.nanos) || !RANGE.contains(&t.seconds) {
        v.add(field, "is not a valid time");
        return None;
    }
    Some(t.seconds)
}

/// Seconds in a protobuf duration, refusing negative and fractional-only ones.
pub fn duration_secs(v: &mut Violations, field: &str, d: &prost_types::Duration) -> Option<i64> {
    if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) {
        v.add(field, "must be a positive duration");
        return None;
    }
    Some(d.seconds)
}

/// Seconds in a `std` duration, for configuration values.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A page size: 0 means the default; negative is refused.
pub fn page_size(v: &mut Violations, size: i32) -> u64 {
    match u64::try_from(size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(n) => n.min(MAX_PAGE_SIZE),
        Err(_) => {
            v.add("page_size", "must not be negative");
            DEFAULT_PAGE_SIZE
        }
    }
}

/// Encodes a keyset cursor as an opaque page token.
pub fn page_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

/// Decodes a page token made by [`page_token`].
pub fn page_cursor(v: &mut Violations, token: &str) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    match URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(cursor) => Some(cursor),
        None => {
            v.add("page_token", "is not a page token this service returned");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(f: impl FnOnce(&mut Violations)) -> usize {
        let mut v = Violations::default();
        f(&mut v);
        v.0.len()
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(violations(|v| name(v, "name", "ci deploy")), 0);
        assert_eq!(violations(|v| name(v, "name", &"é".repeat(128))), 0);
        for bad in ["", "   ", "tab\there", " padded", &"x".repeat(129)] {
            assert_eq!(violations(|v| name(v, "name", bad)), 1, "{bad:?}");
        }
    }

    #[test]
    fn usernames_are_checked() {
        for good in ["carol", "c.ar-ol_1@example+x", "zoë"] {
            assert_eq!(violations(|v| username(v, "u", good)), 0, "{good:?}");
        }
        for bad in [
            "",
            "-",
            "with space",
            "a/b",
            "01900000-0000-7000-8000-000000000000",
            &"x".repeat(129),
        ] {
            assert_eq!(violations(|v| username(v, "u", bad)), 1, "{bad:?}");
        }
    }

    #[test]
    fn passwords_have_a_minimum_length_in_characters() {
        assert_eq!(violations(|v| new_password(v, "p", "short")), 1);
        assert_eq!(violations(|v| new_password(v, "p", &"é".repeat(12))), 0);
    }

    #[test]
    fn masks_name_updatable_fields_only() {
        let mask = |paths: &[&str]| prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        let mut v = Violations::default();
        let paths = mask_paths(
            &mut v,
            Some(&mask(&["a", "a", "b"])),
            &["a", "b"],
            &["id"],
            vec![],
        );
        assert_eq!(paths, ["a", "b"]);
        assert!(v.0.is_empty());
        let paths = mask_paths(&mut v, Some(&mask(&["id", "zzz"])), &["a"], &["id"], vec![]);
        assert!(paths.is_empty());
        let fields: Vec<_> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["update_mask.paths[0]", "update_mask.paths[1]"]);
        let mut v = Violations::default();
        assert_eq!(mask_paths(&mut v, None, &["a"], &[], vec!["a"]), ["a"]);
    }

    #[test]
    fn expiries_lie_ahead_and_within_the_maximum() {
        let max = Duration::from_secs(100);
        let at = |s| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        };
        let mut v = Violations::default();
        assert_eq!(
            expiry(&mut v, 1_000, Lifetime::Default(50), max),
            Some(1_050)
        );
        assert_eq!(
            expiry(&mut v, 1_000, Lifetime::ExpireTime(&at(1_100)), max),
            Some(1_100)
        );
        assert!(v.0.is_empty());
        assert_eq!(
            expiry(&mut v, 1_000, Lifetime::ExpireTime(&at(1_000)), max),
            None
        );
        assert_eq!(
            expiry(&mut v, 1_000, Lifetime::ExpireTime(&at(1_101)), max),
            None
        );
        let fields: Vec<_> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["expire_time", "expire_time"]);
    }

    #[test]
    fn page_tokens_round_trip() {
        let mut v = Violations::default();
        assert_eq!(page_cursor(&mut v, &page_token("abc")), Some("abc".into()));
        assert_eq!(page_cursor(&mut v, "***"), None);
        assert_eq!(v.0.len(), 1);
    }
}
