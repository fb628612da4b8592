//! Typed value parsers shared by every section. Each returns the rule that was broken as a
//! sentence a sysadmin can act on; the caller adds section and key.

use std::fmt;
use std::net::IpAddr;

/// Longest file name we accept for command files, certificates and keystores.
pub const MAX_FILE_NAME: usize = 64;

/// An unsigned integer within `min..=max`.
pub fn parse_range(value: &str, min: u32, max: u32) -> Result<u32, String> {
    // Only plain decimal digits: no sign, no hex, no "1e3", so "the number you typed" is
    // exactly the number we use.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("must be a whole number from {min} to {max}"));
    }
    match value.parse::<u64>() {
        Ok(n) if n >= u64::from(min) && n <= u64::from(max) => {
            u32::try_from(n).map_err(|_| format!("must be a whole number from {min} to {max}"))
        }
        Ok(n) if n < u64::from(min) => Err(format!(
            "{n} is below the minimum {min} (allowed: {min} to {max})"
        )),
        // Digits only, so echoing the value is safe; it may not fit in u64.
        _ => Err(format!(
            "{value} is above the maximum {max} (allowed: {min} to {max})"
        )),
    }
}

/// `true`/`false` and the usual synonyms (`yes`/`no`, `on`/`off`, `1`/`0`), case-insensitive.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

pub fn fmt_bool(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// An IPv4 or IPv6 address to listen on (no host names: resolution at bind time is a
/// surprise nobody wants in a shutdown daemon).
pub fn parse_ip(value: &str) -> Result<IpAddr, String> {
    value
        .parse::<IpAddr>()
        .map_err(|_| "must be an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::1".into())
}

/// A TCP/UDP port, 1..=65535.
pub fn parse_port(value: &str) -> Result<u16, String> {
    parse_range(value, 1, 65535)
        .and_then(|n| u16::try_from(n).map_err(|_| "must be a port from 1 to 65535".into()))
}

/// A bare file name inside a folder the program owns (`<data-dir>/cmdfiles/`, `tls/`).
///
/// Never a path (product §8: no file path ever comes from a client): 1..=64 characters from
/// `[A-Za-z0-9._+-]`, not starting with `.` (no `..`, no hidden files) or `-` (not mistaken
/// for an option). The allow-list excludes `/`, `\`, NUL, control characters, whitespace and
/// the `:`/`,` separators of the `[Events]` grammar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("file name is empty".into());
        }
        if value.len() > MAX_FILE_NAME {
            return Err(format!(
                "file name is longer than {MAX_FILE_NAME} characters"
            ));
        }
        if value.contains(['/', '\\']) || value.contains("..") {
            return Err(
                "must be a file name only, not a path ('/', '\\' and '..' are not allowed)".into(),
            );
        }
        if value.starts_with('.') || value.starts_with('-') {
            return Err("file name must not start with '.' or '-'".into());
        }
        if let Some(c) = value
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
        {
            return Err(format!(
                "file name contains {} (allowed: letters, digits, '.', '_', '-', '+')",
                c.escape_debug()
            ));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For built-in defaults only (tests check they satisfy [`FileName::parse`]).
    pub(crate) fn from_static(s: &'static str) -> Self {
        Self(s.to_string())
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Empty means "none".
pub fn parse_opt_file(value: &str) -> Result<Option<FileName>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        FileName::parse(value).map(Some)
    }
}

pub fn fmt_opt_file(f: &Option<FileName>) -> String {
    f.as_ref().map(|n| n.0.clone()).unwrap_or_default()
}

/// Most arguments an OS shutdown command may have.
pub const MAX_ARGS: usize = 32;

/// A command line split into an argument vector *without a shell*.
///
/// Quoting rules (a subset of POSIX shell word splitting, with no expansion of any kind):
/// * arguments are separated by spaces;
/// * `'…'` keeps everything inside literally;
/// * `"…"` keeps everything inside literally except `\"` and `\\`;
/// * outside quotes, `\` makes the next character literal;
/// * `;`, `|`, `&`, `$`, `*`, `>` … are ordinary characters: there is no shell to interpret them.
///
/// The program (first argument) must be an absolute path, so `PATH` cannot redirect it. As
/// for every value, `[`, `]` and control characters cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(Vec<String>);

impl Argv {
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match c {
                ' ' => {
                    if in_word {
                        args.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                '\'' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(q) => cur.push(q),
                            None => return Err("unterminated single quote".into()),
                        }
                    }
                }
                '"' => {
                    in_word = true;
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(e @ ('"' | '\\')) => cur.push(e),
                                Some(other) => {
                                    cur.push('\\');
                                    cur.push(other);
                                }
                                None => return Err("unterminated double quote".into()),
                            },
                            Some(q) => cur.push(q),
                            None => return Err("unterminated double quote".into()),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    match chars.next() {
                        Some(e) => cur.push(e),
                        None => return Err("trailing backslash".into()),
                    }
                }
                other => {
                    in_word = true;
                    cur.push(other);
                }
            }
        }
        if in_word {
            args.push(cur);
        }
        Self::from_args(args)
    }

    /// Build from already-split arguments, applying the same rules as [`Argv::parse`].
    pub fn from_args(args: Vec<String>) -> Result<Self, String> {
        let Some(program) = args.first() else {
            return Err("command is empty".into());
        };
        if !program.starts_with('/') {
            return Err(
                "the program must be an absolute path (e.g. /sbin/shutdown); PATH is not searched"
                    .into(),
            );
        }
        if args.len() > MAX_ARGS {
            return Err(format!("more than {MAX_ARGS} arguments"));
        }
        if args.iter().any(|a| a.chars().any(char::is_control)) {
            return Err("arguments must not contain control characters".into());
        }
        Ok(Self(args))
    }

    /// For built-in defaults only (tests check they satisfy [`Argv::parse`]).
    pub(crate) fn from_static(args: &[&'static str]) -> Self {
        Self(args.iter().map(|a| (*a).to_string()).collect())
    }

    pub fn args(&self) -> &[String] {
        &self.0
    }

    /// The program to execute (always an absolute path).
    pub fn program(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }
}

impl fmt::Display for Argv {
    /// Quote so that [`Argv::parse`] gives the same arguments back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let plain = !a.is_empty() && !a.contains([' ', '\'', '"', '\\']);
            if plain {
                f.write_str(a)?;
            } else if !a.contains('\'') {
                write!(f, "'{a}'")?;
            } else {
                f.write_str("\"")?;
                for c in a.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("5", 1, 10), Ok(5));
        assert!(
            parse_range("0", 1, 10)
                .unwrap_err()
                .contains("below the minimum 1")
        );
        assert!(
            parse_range("11", 1, 10)
                .unwrap_err()
                .contains("above the maximum 10")
        );
        assert!(
            parse_range("99999999999999999999999", 1, 10)
                .unwrap_err()
                .contains("above")
        );
        for bad in ["", "-1", "+1", "1.5", "0x10", " 1", "1e3", "one"] {
            assert!(parse_range(bad, 0, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("Yes"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn ports_and_ips() {
        assert_eq!(parse_port("6547"), Ok(6547));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_ip("::1").is_ok());
        assert!(parse_ip("localhost").is_err());
    }

    #[test]
    fn file_names_refuse_paths_and_tricks() {
        assert!(FileName::parse("onbatt.sh").is_ok());
        assert!(FileName::parse("shutdown-db_v2+x.sh").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "..",
            "a/b",
            "a\\b",
            "/bin/sh",
            ".hidden",
            "-rf",
            "a\0b",
            "a\nb",
            "a b",
            "a:b",
            "a,b",
            "x..y",
            "ä.sh",
            "C:evil",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FileName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn argv_splits_without_shell() {
        let a = Argv::parse("/sbin/shutdown -h +0").unwrap();
        assert_eq!(a.args(), ["/sbin/shutdown", "-h", "+0"]);
        let a = Argv::parse(r#"/bin/echo 'a b' "c \"d\" \\e" f\ g ; rm"#).unwrap();
        assert_eq!(
            a.args(),
            ["/bin/echo", "a b", "c \"d\" \\e", "f g", ";", "rm"]
        );
        assert_eq!(Argv::parse("/x ''").unwrap().args(), ["/x", ""]);
        assert!(Argv::parse("").is_err());
        assert!(
            Argv::parse("shutdown -h now")
                .unwrap_err()
                .contains("absolute path")
        );
        assert!(Argv::parse("/x 'open").is_err());
        assert!(Argv::parse("/x \"open").is_err());
        assert!(Argv::parse("/x \\").is_err());
        assert!(Argv::parse(&format!("/x{}", " a".repeat(40))).is_err());
    }

    proptest! {
        #[test]
        fn argv_display_round_trips(rest in proptest::collection::vec("[a-z '\"\\\\;$]{0,8}", 0..6)) {
            let mut args = vec!["/bin/prog".to_string()];
            args.extend(rest);
            let a = Argv::from_args(args).unwrap();
            prop_assert_eq!(Argv::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn argv_parse_never_panics(s in "\\PC{0,80}") {
            let _ = Argv::parse(&s);
        }
    }
}
