//! Hand-written JSON output for `--json` (no serde): string escaping and a few
//! helpers. Output only, and only what the tools print.

use std::fmt::Write;

/// Appends `s` as a JSON string literal (RFC 8259 escapes).
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    string(&mut out, s);
    out
}

/// A JSON number for a float: finite values with up to 3 decimals, else `null`.
pub fn float(x: f64) -> String {
    if x.is_finite() {
        let r = (x * 1000.0).round() / 1000.0;
        format!("{r}")
    } else {
        "null".into()
    }
}

/// `Some(n)` as a number, `None` as `null`.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_escapes() {
        assert_eq!(quoted("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(float(1.23456), "1.235");
        assert_eq!(float(2.0), "2");
        assert_eq!(float(f64::NAN), "null");
        assert_eq!(opt(Some(3)), "3");
        assert_eq!(opt::<u32>(None), "null");
    }
}
