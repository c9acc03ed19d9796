//! Route rules: which (resource, action) a proxied request must hold,
//! read from a TOML file (`--route-rules`) that maps methods and path
//! templates to resources and actions. The first matching route decides; a
//! request no route matches is refused.
//!
//! ```toml
//! [[route]]
//! methods = ["GET", "HEAD"]          # any method when left out
//! path = "/repositories/{name}/**"   # {x}: one segment, *: one, **: the rest
//! resource = "repositories/{name}"
//! action = "read"
//!
//! [[route]]
//! path = "/healthz"
//! public = true                      # no token asked
//!
//! [[route]]
//! path = "/whoami"                   # any valid token
//! ```
//!
//! Routes are matched against a request path's one normal form
//! ([`NormalPath`]), made before any route is looked at: segments decoded
//! once, and a path whose decoded segments an application could read as
//! another path refused outright. Every capture kind then sees the same
//! segments, so none of them can be a way around it.

use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// What a matching route asks of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Nothing: no token needed.
    Public,
    /// A valid token, whatever it holds.
    Token,
    /// A valid token holding `action` on `resource`.
    Grant { resource: String, action: String },
}

/// Why no route could decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// No route matches the method and path.
    NoRoute,
    /// A `{x}` capture that would not name one resource (`:` or `*`).
    BadPath(String),
}

/// A request path in the form routes are matched against: its segments,
/// each percent-decoded once.
///
/// A path is refused rather than put in this form when an application,
/// decoding it, could act on another path than the one matched: an encoded
/// `/`, a `\` (which some servers read as `/`), a `.` or `..` segment
/// (encoded or not, or before a `;` parameter, which some servers drop),
/// a control character (encoded or not), or an empty segment (`//`, or a
/// trailing `/`), which path joins and slash merging read in different
/// ways. Refusing them is the one rule for every capture kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath<'a> {
    segments: Vec<Cow<'a, str>>,
}

impl<'a> NormalPath<'a> {
    /// The normal form of `path`; a query string or fragment is allowed,
    /// and ignored. The error says why the path is refused.
    pub fn parse(path: &'a str) -> Result<Self, String> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let bad = |why: &str| format!("path {path:?} {why}");
        let Some(body) = path.strip_prefix('/') else {
            return Err(bad("does not start with /"));
        };
        if body.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        if body.ends_with('/') {
            return Err(bad("ends in / (an empty last segment)"));
        }
        let segments = body
            .split('/')
            .map(|raw| {
                if raw.is_empty() {
                    return Err(bad("has an empty segment"));
                }
                let segment = if raw.contains('%') {
                    Cow::Owned(
                        decode(raw).ok_or_else(|| bad("is not valid percent-encoded UTF-8"))?,
                    )
                } else {
                    Cow::Borrowed(raw)
                };
                if segment.contains('/') {
                    return Err(bad("has an encoded /"));
                }
                if segment.contains('\\') {
                    return Err(bad("has a \\"));
                }
                if matches!(segment.split(';').next(), Some("." | "..")) {
                    return Err(bad("has a dot segment"));
                }
                if segment.chars().any(char::is_control) {
                    return Err(bad("has a control character"));
                }
                Ok(segment)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    /// The decoded segments; none is empty.
    pub fn segments(&self) -> &[Cow<'a, str>] {
        &self.segments
    }
}

/// The parsed rules, in file order.
#[derive(Debug, Clone)]
pub struct Rules {
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesText {
    #[serde(default)]
    route: Vec<RouteText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteText {
    methods: Option<Vec<String>>,
    path: String,
    resource: Option<String>,
    action: Option<String>,
    #[serde(default)]
    public: bool,
}

#[derive(Debug, Clone)]
struct Route {
    /// Upper-cased; `None` matches any method.
    methods: Option<Vec<String>>,
    segments: Vec<Segment>,
    /// Ends in `**`: any further segments, none included.
    rest: bool,
    access: Access,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Capture(String),
    Any,
}

#[derive(Debug, Clone)]
enum Access {
    Public,
    Token,
    Grant { resource: String, action: String },
}

impl Rules {
    /// Parses a rules file's text; errors name the route (1-based) and what
    /// is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed: RulesText = toml::from_str(text).map_err(|e| e.to_string())?;
        if parsed.route.is_empty() {
            return Err("no [[route]] is defined: every request would be refused".into());
        }
        let routes = parsed
            .route
            .into_iter()
            .enumerate()
            .map(|(i, r)| route(r).map_err(|e| format!("route {}: {e}", i + 1)))
            .collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    /// Reads and parses the rules file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read route rules {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("route rules {}: {e}", path.display()))
    }

    /// What the first route matching `method` and `path` asks.
    pub fn decide(&self, method: &str, path: &NormalPath<'_>) -> Result<Asked, Unmatched> {
        let segments = path.segments();
        let method = method.trim().to_ascii_uppercase();
        for route in &self.routes {
            if route.methods.as_ref().is_some_and(|m| !m.contains(&method)) {
                continue;
            }
            if let Some(captures) = route.matches(segments)? {
                return Ok(match &route.access {
                    Access::Public => Asked::Public,
                    Access::Token => Asked::Token,
                    Access::Grant { resource, action } => Asked::Grant {
                        resource: fill(resource, &captures),
                        action: action.clone(),
                    },
                });
            }
        }
        Err(Unmatched::NoRoute)
    }
}

impl Route {
    /// The captures, when the route matches `segments`.
    fn matches<'a>(
        &self,
        segments: &'a [Cow<'_, str>],
    ) -> Result<Option<HashMap<&str, &'a str>>, Unmatched> {
        let fits = if self.rest {
            segments.len() >= self.segments.len()
        } else {
            segments.len() == self.segments.len()
        };
        if !fits {
            return Ok(None);
        }
        let mut captures = HashMap::new();
        for (pattern, segment) in self.segments.iter().zip(segments) {
            match pattern {
                Segment::Literal(text) if text == segment => {}
                Segment::Literal(_) => return Ok(None),
                Segment::Any => {}
                // The value goes into a resource, where `:` ends the
                // resource and `*` is a wildcard.
                Segment::Capture(_) if segment.contains([':', '*']) => {
                    return Err(Unmatched::BadPath(format!(
                        "path segment {segment:?} cannot name a resource"
                    )));
                }
                Segment::Capture(name) => {
                    captures.insert(name.as_str(), segment.as_ref());
                }
            }
        }
        Ok(Some(captures))
    }
}

fn route(text: RouteText) -> Result<Route, String> {
    let (segments, rest) = template(&text.path)?;
    let captures: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Capture(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let access = match (text.public, text.resource, text.action) {
        (true, None, None) => Access::Public,
        (true, _, _) => return Err("a public route takes no resource or action".into()),
        (false, None, None) => Access::Token,
        (false, Some(resource), Some(action)) => {
            check_resource(&resource, &captures)?;
            let action = action.trim().to_owned();
            if action.is_empty()
                || !action
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("action {action:?} is not an action name"));
            }
            Access::Grant { resource, action }
        }
        _ => return Err("give both resource and action, or neither".into()),
    };
    let methods = match text.methods {
        None => None,
        Some(list) if list.is_empty() => {
            return Err("methods is empty: leave it out to match any method".into());
        }
        Some(list) => Some(
            list.into_iter()
                .map(|m| {
                    let m = m.trim().to_ascii_uppercase();
                    if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphabetic()) {
                        Err(format!("{m:?} is not an HTTP method"))
                    } else {
                        Ok(m)
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Route {
        methods,
        segments,
        rest,
        access,
    })
}

/// A path template's segments, and whether it ends in `**`.
fn template(path: &str) -> Result<(Vec<Segment>, bool), String> {
    let Some(body) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} must start with /"));
    };
    if body.is_empty() {
        return Ok((Vec::new(), false));
    }
    let parts: Vec<&str> = body.split('/').collect();
    let mut segments = Vec::new();
    let mut rest = false;
    for (i, part) in parts.iter().enumerate() {
        match *part {
            "**" if i + 1 == parts.len() => rest = true,
            "**" => return Err(format!("path {path:?}: ** may only end a path")),
            "*" => segments.push(Segment::Any),
            "" => return Err(format!("path {path:?} has an empty segment")),
            "." | ".." => return Err(format!("path {path:?} has a dot segment")),
            p if p.starts_with('{') && p.ends_with('}') => {
                let name = &p[1..p.len() - 1];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("path {path:?}: {p} is not a {{name}} placeholder"));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Capture(n) if n == name))
                {
                    return Err(format!("path {path:?} names {{{name}}} twice"));
                }
                segments.push(Segment::Capture(name.to_owned()));
            }
            p if p.contains(['{', '}', '*', '?', '#', '%']) => {
                return Err(format!(
                    "path {path:?}: segment {p:?} is neither literal nor a placeholder"
                ));
            }
            p => segments.push(Segment::Literal(p.to_owned())),
        }
    }
    Ok((segments, rest))
}

/// Checks that every `{x}` in `resource` is captured by the path.
fn check_resource(resource: &str, captures: &[&str]) -> Result<(), String> {
    if resource.trim().is_empty() || resource.contains(':') {
        return Err(format!("resource {resource:?} is not a resource"));
    }
    let mut rest = resource;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("resource {resource:?} has an unclosed {{"));
        };
        let name = &rest[open + 1..open + close];
        if !captures.contains(&name) {
            return Err(format!(
                "resource {resource:?} uses {{{name}}}, which the path does not capture"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

fn fill(resource: &str, captures: &HashMap<&str, &str>) -> String {
    let mut out = resource.to_owned();
    for (name, value) in captures {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first value of query parameter `name` in `path`'s query string, as
/// sent: whether it is there does not depend on whether it decodes.
pub fn query_value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// A query value decoded (`+` is a space, as forms encode it).
pub fn decode_query(value: &str) -> Option<String> {
    decode(&value.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
        [[route]]
        path = "/healthz"
        public = true

        [[route]]
        methods = ["get", "HEAD"]
        path = "/repositories/{name}/**"
        resource = "repositories/{name}"
        action = "read"

        [[route]]
        methods = ["POST"]
        path = "/repositories/{name}/items/*"
        resource = "repositories/{name}"
        action = "write"

        [[route]]
        path = "/jobs/*/status"
        resource = "jobs"
        action = "read"

        [[route]]
        path = "/whoami"
    "#;

    /// The normal form, then the rules: what the gateway does.
    fn decide(rules: &Rules, method: &str, path: &str) -> Result<Asked, Unmatched> {
        rules.decide(
            method,
            &NormalPath::parse(path).map_err(Unmatched::BadPath)?,
        )
    }

    fn grant(resource: &str, action: &str) -> Result<Asked, Unmatched> {
        Ok(Asked::Grant {
            resource: resource.into(),
            action: action.into(),
        })
    }

    #[test]
    fn the_first_matching_route_decides() {
        let rules = Rules::parse(RULES).expect("the rules parse");
        assert_eq!(decide(&rules, "GET", "/healthz"), Ok(Asked::Public));
        assert_eq!(decide(&rules, "DELETE", "/whoami?x=1"), Ok(Asked::Token));
        assert_eq!(
            decide(&rules, "get", "/repositories/Samples"),
            grant("repositories/Samples", "read")
        );
        assert_eq!(
            decide(
                &rules,
                "HEAD",
                "/repositories/My%20Repo/items/a/b?fmetoken=x"
            ),
            grant("repositories/My Repo", "read")
        );
        assert_eq!(
            decide(&rules, "POST", "/repositories/Samples/items/a"),
            grant("repositories/Samples", "write")
        );
        assert_eq!(
            decide(&rules, "POST", "/repositories/Samples/items/a/b"),
            Err(Unmatched::NoRoute)
        );
        assert_eq!(
            decide(&rules, "GET", "/jobs/J1/status"),
            grant("jobs", "read")
        );
        assert_eq!(decide(&rules, "GET", "/jobs"), Err(Unmatched::NoRoute));
        assert_eq!(decide(&rules, "GET", "/"), Err(Unmatched::NoRoute));
    }

    #[test]
    fn paths_that_could_name_another_resource_are_refused() {
        let rules = Rules::parse(RULES).expect("the rules parse");
        for path in [
            "/repositories/a%2F..%2Fb/x",
            "/repositories/a:b",
            "/repositories/*",
            "/repositories/../jobs",
            "/repositories/%2e%2e/jobs",
            "/repositories/%ff",
            "/repositories/%0a",
            "repositories/x",
            "",
        ] {
            assert!(
                matches!(decide(&rules, "GET", path), Err(Unmatched::BadPath(_))),
                "{path}"
            );
        }
    }

    /// Each way a decoded path can differ from its segments, in each
    /// capture kind and in a literal's place: `{x}`, `*`, and `**` both at
    /// its start and further in. The same path with a plain segment in its
    /// place matches, so each refusal is the segment's doing.
    #[test]
    fn the_normal_form_refuses_in_every_capture_kind() {
        let rules = Rules::parse(RULES).expect("the rules parse");
        let places: [(&str, Result<Asked, Unmatched>); 5] = [
            ("/repositories/{}/x", grant("repositories/ok", "read")),
            ("/jobs/{}/status", grant("jobs", "read")),
            (
                "/repositories/Samples/{}",
                grant("repositories/Samples", "read"),
            ),
            (
                "/repositories/Samples/a/{}/b",
                grant("repositories/Samples", "read"),
            ),
            ("/{}/Samples", Err(Unmatched::NoRoute)),
        ];
        let kinds = [
            ("an encoded /", "a%2Fb"),
            ("an encoded / in lower case", "a%2fb"),
            ("an encoded / with dots around", "a%2F..%2F..%2Fadmin"),
            ("a \\", "a\\b"),
            ("an encoded \\", "a%5Cb"),
            ("an encoded \\ in lower case", "a%5cb"),
            ("a dot segment", "."),
            ("a dot-dot segment", ".."),
            ("an encoded dot segment", "%2E"),
            ("an encoded dot-dot segment", "%2E%2E"),
            ("a half-encoded dot-dot segment", ".%2e"),
            ("a dot-dot segment with a parameter", "..;x"),
            ("a NUL", "a\0b"),
            ("an encoded NUL", "a%00b"),
            ("a tab", "a\tb"),
            ("an encoded line feed", "a%0Ab"),
            ("an encoded DEL", "a%7Fb"),
            ("an encoded C1 control", "a%C2%85b"),
            ("invalid percent-encoding", "a%zzb"),
            ("invalid UTF-8", "a%C3b"),
            ("an empty segment", ""),
        ];
        for (template, fits) in &places {
            let plain = template.replace("{}", "ok");
            assert_eq!(&decide(&rules, "GET", &plain), fits, "{plain}");
            for (kind, segment) in kinds {
                let path = template.replace("{}", segment);
                assert!(
                    matches!(decide(&rules, "GET", &path), Err(Unmatched::BadPath(_))),
                    "{kind}: {path:?}: {:?}",
                    decide(&rules, "GET", &path)
                );
            }
        }
    }

    /// Empty segments are refused wherever they are, a trailing one too:
    /// `/repositories//x` and `/repositories/Samples//x` get one answer.
    #[test]
    fn empty_segments_are_refused_everywhere() {
        let rules = Rules::parse(RULES).expect("the rules parse");
        for path in [
            "//",
            "//repositories/Samples",
            "/repositories//x",
            "/repositories/Samples//x",
            "/repositories/Samples/",
            "/repositories/",
            "/healthz/",
            "/jobs//status",
            "/whoami/?x=1",
        ] {
            let refused = NormalPath::parse(path).expect_err(path);
            assert!(refused.contains("empty"), "{path}: {refused}");
            assert!(
                matches!(decide(&rules, "GET", path), Err(Unmatched::BadPath(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn the_normal_form_decodes_once_and_keeps_the_rest() {
        let path = NormalPath::parse("/S%C3%A4mples/a%20b/100%25/%3A/x;y/...?q=%2F#f")
            .expect("a normal path");
        assert_eq!(
            path.segments(),
            ["Sämples", "a b", "100%", ":", "x;y", "..."]
        );
        // Decoded once: %252F is the three characters %2F, not a /.
        let path = NormalPath::parse("/a%252Fb").expect("a normal path");
        assert_eq!(path.segments(), ["a%2Fb"]);
        assert_eq!(
            NormalPath::parse("/a/%2F/b").expect_err("an encoded /"),
            "path \"/a/%2F/b\" has an encoded /"
        );
        assert!(
            !NormalPath::parse("/a/../b?fmetoken=secret")
                .expect_err("a dot segment")
                .contains("secret"),
            "the refusal never repeats the query"
        );
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        for (text, expected) in [
            ("", "no [[route]]"),
            (
                "[[route]]\npath = \"x\"",
                "route 1: path \"x\" must start with /",
            ),
            ("[[route]]\npath = \"/a/**/b\"", "** may only end a path"),
            (
                "[[route]]\npath = \"/a\"\nresource = \"jobs\"",
                "both resource and action",
            ),
            (
                "[[route]]\npath = \"/a\"\nresource = \"jobs/{id}\"\naction = \"read\"",
                "which the path does not capture",
            ),
            (
                "[[route]]\npath = \"/a\"\npublic = true\nresource = \"jobs\"\naction = \"read\"",
                "public route takes no resource",
            ),
            ("[[route]]\npath = \"/a\"\nmethods = []", "methods is empty"),
            (
                "[[route]]\npath = \"/a\"\nmethod = \"GET\"",
                "unknown field",
            ),
            ("[[route]]\npath = \"/{a}/{a}\"", "names {a} twice"),
        ] {
            let error = Rules::parse(text).expect_err("a mistake");
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn query_parameters_are_read_decoded() {
        let value = query_value("/a?x=1&fmetoken=ab%2Bc+d&y&fmetoken=2", "fmetoken");
        assert_eq!(value, Some("ab%2Bc+d"));
        assert_eq!(value.and_then(decode_query).as_deref(), Some("ab+c d"));
        assert_eq!(query_value("/a?fmetokens=1", "fmetoken"), None);
        assert_eq!(query_value("/a", "fmetoken"), None);
        // There even when it does not decode: it is still taken out.
        let bad = query_value("/a?fmetoken=%zz", "fmetoken");
        assert_eq!(bad, Some("%zz"));
        assert_eq!(bad.and_then(decode_query), None);
    }
}
