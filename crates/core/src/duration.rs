//! Human durations: `90s`, `30m`, `12h`, `7d`, `1w`, or a sum like `1h30m`.

use std::time::Duration;

/// Parses a human duration. Units: `s`, `m`, `h`, `d`, `w`; a bare number
/// means seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "{text:?} is not a duration: unknown unit {c:?} (use s, m, h, d or w)"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration: expected a number before {c:?}"))?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    if !number.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: the last number has no unit"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Like [`parse`], and also milliseconds (`250ms`), for short intervals.
pub fn parse_ms(text: &str) -> Result<Duration, String> {
    match text.trim().strip_suffix("ms") {
        Some(ms) => ms
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{text:?} is not a duration")),
        None => parse(text),
    }
}

/// A Unix time as people read it in messages and audit details:
/// RFC 3339 in UTC to the second (`2027-01-05T10:00:00Z`), never raw seconds.
pub fn instant(unix_secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix_secs, 0).map_or_else(
        || unix_secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Formats a duration the way [`parse`] reads it, largest units first.
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "h", "5x", "1h30", "-5s", "99999999999999999999w"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["1d", "1h30m", "45s", "2d3h"] {
            assert_eq!(format(parse(text).expect("parse")), text);
        }
    }
}
