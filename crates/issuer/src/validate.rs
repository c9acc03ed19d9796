//! Request checks shared by the handlers. Each names the offending field.

use crate::error::{FieldViolation, IssuerError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;
use tessera_core::Grant;
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

/// Requested grants, turned into core grants.
pub fn grants(v: &mut Violations, field: &str, grants: &[v1::Grant]) -> Vec<Grant> {
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
        out.push(
            Grant {
                resource: resource.into(),
                actions: g.actions.iter().map(|a| a.trim().to_owned()).collect(),
            }
            .normalized(),
        );
    }
    out
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
    fn page_tokens_round_trip() {
        let mut v = Violations::default();
        assert_eq!(page_cursor(&mut v, &page_token("abc")), Some("abc".into()));
        assert_eq!(page_cursor(&mut v, "***"), None);
        assert_eq!(v.0.len(), 1);
    }
}
