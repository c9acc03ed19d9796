//! The `authorization` header as Tessera reads it: `Basic b64(user:password)`
//! for management calls, and a token as `Bearer <token>` or FME's
//! `fmetoken token=<token>`. One parser, for the issuer and the verifier.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Credentials as presented. Debug output never shows a secret.
pub enum Credentials {
    Basic { username: String, password: String },
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Why a header value was not understood; never carries the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbled {
    /// Not `Basic …`, `Bearer …` or `fmetoken token=…`.
    UnknownScheme,
    /// The scheme is known but carries nothing usable.
    Empty,
    /// Basic credentials that are not base64 of UTF-8 `user:password`.
    BadBasic,
}

impl Garbled {
    /// What a person should be told.
    pub fn message(self) -> &'static str {
        match self {
            Garbled::UnknownScheme => {
                "the authorization header is not `Basic …`, `Bearer …` or `fmetoken token=…`"
            }
            Garbled::Empty => "the authorization header carries no credentials",
            Garbled::BadBasic => {
                "the Basic credentials are not base64 of `username:password` in UTF-8"
            }
        }
    }
}

/// Reads a header value in any of the three forms.
pub fn parse(value: &str) -> Result<Credentials, Garbled> {
    let (scheme, rest) = split(value);
    if scheme.eq_ignore_ascii_case("basic") {
        if rest.is_empty() {
            return Err(Garbled::Empty);
        }
        let decoded = STANDARD.decode(rest).map_err(|_| Garbled::BadBasic)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Garbled::BadBasic)?;
        let (username, password) = decoded.split_once(':').ok_or(Garbled::BadBasic)?;
        if username.is_empty() {
            return Err(Garbled::BadBasic);
        }
        return Ok(Credentials::Basic {
            username: username.into(),
            password: password.into(),
        });
    }
    token(value).map(|t| Credentials::Token(t.into()))
}

/// The token in a `Bearer <token>` or `fmetoken token=<token>` value.
pub fn token(value: &str) -> Result<&str, Garbled> {
    let (scheme, rest) = split(value);
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        rest
    } else if scheme.eq_ignore_ascii_case("fmetoken") {
        rest.strip_prefix("token=").map(str::trim).unwrap_or("")
    } else {
        return Err(Garbled::UnknownScheme);
    };
    if token.is_empty() {
        return Err(Garbled::Empty);
    }
    Ok(token)
}

fn split(value: &str) -> (&str, &str) {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => (value, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_read() {
        let basic = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        match parse(&basic) {
            Ok(Credentials::Basic { username, password }) => {
                assert_eq!(username, "alice");
                assert_eq!(password, "pa:ss");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(parse("Bearer abc"), Ok(Credentials::Token(t)) if t == "abc"));
        assert!(matches!(parse("fmetoken token=abc"), Ok(Credentials::Token(t)) if t == "abc"));
        assert_eq!(token("bearer  abc "), Ok("abc"));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for (bad, why) in [
            ("", Garbled::UnknownScheme),
            ("Basic", Garbled::Empty),
            ("Basic !!!", Garbled::BadBasic),
            ("Basic OmZvbw==", Garbled::BadBasic),
            ("Bearer ", Garbled::Empty),
            ("fmetoken abc", Garbled::Empty),
            ("Digest x", Garbled::UnknownScheme),
        ] {
            assert_eq!(parse(bad).err(), Some(why), "{bad:?}");
        }
        assert_eq!(token("Basic abc"), Err(Garbled::UnknownScheme));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!("{:?}", parse("Bearer very-secret").expect("token"));
        assert!(!shown.contains("very-secret"));
        let basic = format!("Basic {}", STANDARD.encode("alice:hunter2"));
        let shown = format!("{:?}", parse(&basic).expect("basic"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
