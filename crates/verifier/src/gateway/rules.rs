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

use serde::Deserialize;
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
    /// The path cannot be matched safely (a dot segment, an encoded `/`…).
    BadPath(String),
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

    /// What the first route matching `method` and `path` (query string
    /// allowed, and ignored) asks.
    pub fn decide(&self, method: &str, path: &str) -> Result<Asked, Unmatched> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments = split(path)?;
        let method = method.trim().to_ascii_uppercase();
        for route in &self.routes {
            if route.methods.as_ref().is_some_and(|m| !m.contains(&method)) {
                continue;
            }
            if let Some(captures) = route.matches(&segments)? {
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
        segments: &'a [String],
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
                Segment::Any if !segment.is_empty() => {}
                Segment::Capture(name) if !segment.is_empty() => {
                    if segment.contains(['/', ':', '*']) {
                        return Err(Unmatched::BadPath(format!(
                            "path segment {segment:?} cannot name a resource"
                        )));
                    }
                    captures.insert(name.as_str(), segment.as_str());
                }
                _ => return Ok(None),
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

/// A request path's segments, percent-decoded; a path that cannot be
/// matched without guessing how the upstream reads it is refused.
fn split(path: &str) -> Result<Vec<String>, Unmatched> {
    let bad = |why: &str| Unmatched::BadPath(format!("path {path:?} {why}"));
    let Some(body) = path.strip_prefix('/') else {
        return Err(bad("does not start with /"));
    };
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split('/')
        .map(|raw| {
            let segment = decode(raw).ok_or_else(|| bad("is not valid percent-encoded UTF-8"))?;
            if segment == "." || segment == ".." {
                return Err(bad("has a dot segment"));
            }
            if segment.chars().any(char::is_control) {
                return Err(bad("has a control character"));
            }
            Ok(segment)
        })
        .collect()
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

/// The value of query parameter `name` in `path`'s query string, decoded
/// (`+` is a space, as forms encode it).
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| decode(&value.replace('+', " ")))?
    })
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
        path = "/whoami"
    "#;

    fn grant(resource: &str, action: &str) -> Result<Asked, Unmatched> {
        Ok(Asked::Grant {
            resource: resource.into(),
            action: action.into(),
        })
    }

    #[test]
    fn the_first_matching_route_decides() {
        let rules = Rules::parse(RULES).expect("the rules parse");
        assert_eq!(rules.decide("GET", "/healthz"), Ok(Asked::Public));
        assert_eq!(rules.decide("DELETE", "/whoami?x=1"), Ok(Asked::Token));
        assert_eq!(
            rules.decide("get", "/repositories/Samples"),
            grant("repositories/Samples", "read")
        );
        assert_eq!(
            rules.decide("HEAD", "/repositories/My%20Repo/items/a/b?fmetoken=x"),
            grant("repositories/My Repo", "read")
        );
        assert_eq!(
            rules.decide("POST", "/repositories/Samples/items/a"),
            grant("repositories/Samples", "write")
        );
        assert_eq!(
            rules.decide("POST", "/repositories/Samples/items/a/b"),
            Err(Unmatched::NoRoute)
        );
        assert_eq!(rules.decide("GET", "/jobs"), Err(Unmatched::NoRoute));
        assert_eq!(
            rules.decide("GET", "/repositories/"),
            Err(Unmatched::NoRoute)
        );
        assert_eq!(rules.decide("GET", "/healthz/"), Err(Unmatched::NoRoute));
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
        ] {
            assert!(
                matches!(rules.decide("GET", path), Err(Unmatched::BadPath(_))),
                "{path}"
            );
        }
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
        assert_eq!(
            query_param("/a?x=1&fmetoken=ab%2Bc+d&y", "fmetoken").as_deref(),
            Some("ab+c d")
        );
        assert_eq!(query_param("/a?fmetokens=1", "fmetoken"), None);
        assert_eq!(query_param("/a", "fmetoken"), None);
    }
}
