//! A deliberately small INI dialect: parse into line-numbered sections, and write only what
//! can be read back unchanged.
//!
//! Grammar (one construct per line; lines end in LF or CR LF):
//!
//! ```text
//! line     = blank | comment | header | entry
//! comment  = ws* ("#" | ";") any*          ; only at the start of a line: values may contain # and ;
//! header   = ws* "[" ws* name ws* "]" ws* [("#" | ";") any*]
//! entry    = ws* key ws* "=" ws* value ws* ; split at the FIRST "=", value trimmed
//! name     = 1*64 (ALPHA | DIGIT | "_")
//! key      = 1*64 (ALPHA | DIGIT | "_" | "-")
//! ```
//!
//! Hostile input gets a [`ParseError`] with a line number, never a panic: the file is limited
//! to [`MAX_FILE_BYTES`], lines to [`MAX_LINE_BYTES`], text must be UTF-8, and control
//! characters other than TAB are refused anywhere — in particular a lone CR, which other INI
//! readers treat as a line break (the PowerChute injection).
//!
//! The [`Writer`] refuses any key or value that would not read back as exactly one entry
//! (see [`check_key`] and [`check_value`]), so no value can ever open a section.

use std::fmt;

/// Largest accepted file. A real config is a few KiB; anything bigger is hostile or a mistake.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Longest accepted line, in bytes (excluding the line ending).
pub const MAX_LINE_BYTES: usize = 4096;
/// Longest accepted value, in bytes; leaves room for the key on a line.
pub const MAX_VALUE_BYTES: usize = 2048;
/// Longest section name or key.
pub const MAX_NAME_BYTES: usize = 64;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A `[Name]` header and the entries below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// 1-based line number of the header.
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// A parsed file, in file order. Nothing is merged or deduplicated here; that is policy and
/// belongs to the typed layer, which reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// Entries that appear before any header (ignored with a warning by the typed layer).
    pub orphans: Vec<Entry>,
    pub sections: Vec<Section>,
    /// Total number of lines, so callers can map section spans.
    pub line_count: usize,
}

/// Why a file could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The file exceeds [`MAX_FILE_BYTES`].
    TooLarge { size: usize, limit: usize },
    /// The file is not UTF-8; `line` is where the first bad byte is.
    NotUtf8 { line: usize },
    /// A line exceeds [`MAX_LINE_BYTES`].
    LineTooLong { line: usize, limit: usize },
    /// A syntax error on `line`.
    Syntax { line: usize, message: String },
}

impl ParseError {
    /// The 1-based line the error is on, if it is about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::TooLarge { .. } => None,
            Self::NotUtf8 { line } | Self::LineTooLong { line, .. } | Self::Syntax { line, .. } => {
                Some(*line)
            }
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, limit } => {
                write!(
                    f,
                    "file is {size} bytes, larger than the {limit}-byte limit for a config file"
                )
            }
            Self::NotUtf8 { line } => write!(f, "line {line}: file is not valid UTF-8 text"),
            Self::LineTooLong { line, limit } => {
                write!(f, "line {line}: line is longer than {limit} bytes")
            }
            Self::Syntax { line, message } => write!(f, "line {line}: {message}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Characters that some reader somewhere treats as a line break, beyond the C0/C1 controls.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Render untrusted text for an error message: printable, quoted, bounded.
pub fn show(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::with_capacity(s.len().min(MAX) + 2);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i >= MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

fn name_rule(name: &str, allow_dash: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("name is longer than {MAX_NAME_BYTES} bytes"));
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || (allow_dash && c == '-')))
    {
        Some(c) => Err(format!(
            "character {} is not allowed (letters, digits, '_'{} only)",
            c.escape_debug(),
            if allow_dash { ", '-'" } else { "" }
        )),
        None => Ok(()),
    }
}

/// Rule for keys, shared by the parser and the writer: `=`, `[`, `]`, whitespace and every
/// other character outside `[A-Za-z0-9_-]` are refused.
pub fn check_key(key: &str) -> Result<(), String> {
    name_rule(key, true).map_err(|e| format!("invalid key: {e}"))
}

/// Rule for section names.
pub fn check_section_name(name: &str) -> Result<(), String> {
    name_rule(name, false).map_err(|e| format!("invalid section name: {e}"))
}

/// Rule for values, shared by every setter and the writer: no CR, LF, NUL or other control
/// character (C0, DEL, C1, TAB), no Unicode line/paragraph separator, no `[` or `]`, no
/// leading or trailing whitespace (it would be trimmed on reading), at most
/// [`MAX_VALUE_BYTES`] bytes. `=`, `#` and `;` are fine inside a value: a line splits at its
/// first `=` and comments are only recognised at the start of a line.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!("value is longer than {MAX_VALUE_BYTES} bytes"));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() || is_line_separator(c))
    {
        return Err(format!(
            "value contains control character {} (CR, LF, NUL, TAB and other control characters are not allowed)",
            c.escape_debug()
        ));
    }
    if value.contains(['[', ']']) {
        return Err("value contains '[' or ']', which are not allowed in values".into());
    }
    if value.trim() != value {
        return Err("value has leading or trailing whitespace".into());
    }
    Ok(())
}

/// Parse a whole file. See the module docs for the grammar and limits.
pub fn parse(bytes: &[u8]) -> Result<Document, ParseError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(ParseError::NotUtf8 { line });
        }
    };
    // Windows editors like to add a byte-order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut doc = Document::default();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        doc.line_count = line;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            return Err(ParseError::LineTooLong {
                line,
                limit: MAX_LINE_BYTES,
            });
        }
        if let Some(c) = raw
            .chars()
            .find(|&c| (c.is_control() && c != '\t') || is_line_separator(c))
        {
            return Err(ParseError::Syntax {
                line,
                message: format!("control character {} is not allowed", c.escape_debug()),
            });
        }
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(rest) = t.strip_prefix('[') {
            let Some((inner, after)) = rest.split_once(']') else {
                return Err(ParseError::Syntax {
                    line,
                    message: "section header has no closing ']'".into(),
                });
            };
            let after = after.trim_start();
            if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                return Err(ParseError::Syntax {
                    line,
                    message: format!("unexpected text {} after section header", show(after)),
                });
            }
            let name = inner.trim();
            check_section_name(name).map_err(|message| ParseError::Syntax { line, message })?;
            doc.sections.push(Section {
                name: name.to_string(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(ParseError::Syntax {
                line,
                message: "expected 'key = value', a [Section] header or a comment".into(),
            });
        };
        let key = k.trim();
        check_key(key).map_err(|e| ParseError::Syntax {
            line,
            message: format!("{e} in {}", show(key)),
        })?;
        let entry = Entry {
            key: key.to_string(),
            value: v.trim().to_string(),
            line,
        };
        match doc.sections.last_mut() {
            Some(s) => s.entries.push(entry),
            None => doc.orphans.push(entry),
        }
    }
    Ok(doc)
}

/// Error from the [`Writer`]: which key (in which section) broke which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    pub section: String,
    pub key: String,
    pub rule: String,
}

/// Builds INI text, checking every header, key and value on the way in.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    section: String,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A `# text` line per line of `text` (control characters are dropped, so a comment
    /// cannot end early).
    pub fn comment(&mut self, text: &str) {
        for l in text.split('\n') {
            let clean: String = l
                .chars()
                .filter(|c| !c.is_control() && !is_line_separator(*c))
                .collect();
            if clean.is_empty() {
                self.out.push_str("#\n");
            } else {
                self.out.push_str("# ");
                self.out.push_str(&clean);
                self.out.push('\n');
            }
        }
    }

    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    pub fn section(&mut self, name: &str) -> Result<(), WriteError> {
        check_section_name(name).map_err(|rule| WriteError {
            section: name.to_string(),
            key: String::new(),
            rule,
        })?;
        self.section = name.to_string();
        self.out.push('[');
        self.out.push_str(name);
        self.out.push_str("]\n");
        Ok(())
    }

    pub fn entry(&mut self, key: &str, value: &str) -> Result<(), WriteError> {
        let err = |rule| WriteError {
            section: self.section.clone(),
            key: key.to_string(),
            rule,
        };
        check_key(key).map_err(err)?;
        check_value(value).map_err(err)?;
        self.out.push_str(key);
        // No trailing space after an empty value.
        self.out
            .push_str(if value.is_empty() { " =" } else { " = " });
        self.out.push_str(value);
        self.out.push('\n');
        Ok(())
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sections_entries_and_comments() {
        let d = parse(b"# top\n; also\n[A]\nx = 1\n  y=two words = three  \n\n[B] ; note\nz =\n")
            .unwrap();
        assert_eq!(d.sections.len(), 2);
        assert_eq!(d.sections[0].name, "A");
        assert_eq!(d.sections[0].line, 3);
        assert_eq!(d.sections[0].entries[1].key, "y");
        assert_eq!(d.sections[0].entries[1].value, "two words = three");
        assert_eq!(d.sections[0].entries[1].line, 5);
        assert_eq!(d.sections[1].entries[0].value, "");
    }

    #[test]
    fn crlf_and_bom_are_accepted() {
        let d = parse("\u{feff}[A]\r\nx = 1\r\n".as_bytes()).unwrap();
        assert_eq!(d.sections[0].entries[0].value, "1");
    }

    #[test]
    fn value_may_contain_hash_and_semicolon() {
        let d = parse(b"[A]\nx = a # b ; c\n").unwrap();
        assert_eq!(d.sections[0].entries[0].value, "a # b ; c");
    }

    #[test]
    fn entries_before_header_are_orphans() {
        let d = parse(b"x = 1\n[A]\n").unwrap();
        assert_eq!(d.orphans.len(), 1);
    }

    #[test]
    fn errors_carry_line_numbers() {
        assert_eq!(parse(b"[A]\nno equals\n").unwrap_err().line(), Some(2));
        assert_eq!(parse(b"\n\n[A\n").unwrap_err().line(), Some(3));
        assert_eq!(parse(b"[]\n").unwrap_err().line(), Some(1));
        assert_eq!(parse(b"[A] junk\n").unwrap_err().line(), Some(1));
        assert_eq!(parse(b"[A]\nbad key = 1\n").unwrap_err().line(), Some(2));
        assert_eq!(parse(b"[A]\n= 1\n").unwrap_err().line(), Some(2));
        assert_eq!(parse(b"[A-B]\n").unwrap_err().line(), Some(1));
    }

    #[test]
    fn lone_cr_and_controls_are_refused() {
        let e = parse(b"[A]\nx = 1\r[Credentials]\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().contains("control character"), "{e}");
        assert!(parse(b"[A]\nx = a\0b\n").is_err());
        assert!(parse("[A]\nx = a\u{2028}b\n".as_bytes()).is_err());
        assert!(parse("[A]\nx = a\u{85}b\n".as_bytes()).is_err());
        // TAB is whitespace, allowed in the file.
        assert!(parse(b"[A]\n\tx\t=\t1\n").is_ok());
    }

    #[test]
    fn non_utf8_names_the_line() {
        let e = parse(b"[A]\nx = 1\ny = \xff\n").unwrap_err();
        assert_eq!(e, ParseError::NotUtf8 { line: 3 });
        assert!(e.to_string().contains("UTF-8"));
    }

    #[test]
    fn huge_file_and_long_lines_are_refused() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let e = parse(&big).unwrap_err();
        assert!(matches!(e, ParseError::TooLarge { .. }));
        assert!(e.to_string().contains("limit"), "{e}");
        let mut long = b"[A]\nx = ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES));
        assert_eq!(
            parse(&long).unwrap_err(),
            ParseError::LineTooLong {
                line: 2,
                limit: MAX_LINE_BYTES
            }
        );
    }

    #[test]
    fn value_rules() {
        assert!(check_value("plain value = with # and ;").is_ok());
        assert!(check_value("").is_ok());
        for bad in [
            "a\rb",
            "a\nb",
            "a\0b",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{2029}",
            "[x",
            "x]",
            " x",
            "x ",
        ] {
            assert!(check_value(bad).is_err(), "{bad:?}");
        }
        assert!(check_value(&"a".repeat(MAX_VALUE_BYTES + 1)).is_err());
    }

    #[test]
    fn key_rules() {
        assert!(check_key("on_battery").is_ok());
        assert!(check_key("a-b").is_ok());
        for bad in ["", "a=b", "a[", "]", "a b", "a\tb", "ä", "a\n"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writer_rejects_injection_and_names_the_key() {
        let mut w = Writer::new();
        w.section("Web").unwrap();
        let e = w
            .entry("description", "x\r\n[Credentials]\r\nusername=evil")
            .unwrap_err();
        assert_eq!(e.key, "description");
        assert_eq!(e.section, "Web");
        assert!(w.entry("a=b", "1").is_err());
        assert!(w.entry("a", "[Credentials]").is_err());
        assert!(w.section("Cred]entials").is_err());
        w.entry("ok", "1").unwrap();
        w.comment("a\r\n[Evil]");
        let text = w.finish();
        let d = parse(text.as_bytes()).unwrap();
        assert_eq!(d.sections.len(), 1);
        assert_eq!(d.sections[0].entries.len(), 1);
    }

    #[test]
    fn show_escapes_and_bounds() {
        assert_eq!(show("a\nb"), "\"a\\nb\"");
        assert!(show(&"x".repeat(500)).chars().count() < 90);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn ini_like_text_never_panics(s in "([\\[\\]=#;a-zA-Z0-9 \t\r\n\u{0}\u{85}\u{2028}é-]){0,400}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn written_entries_read_back_exactly(
            entries in proptest::collection::vec(("[a-z_][a-z0-9_-]{0,20}", "\\PC{0,40}"), 0..20)
        ) {
            let mut w = Writer::new();
            w.section("S").unwrap();
            let mut kept = Vec::new();
            for (k, v) in &entries {
                if w.entry(k, v).is_ok() {
                    kept.push((k.clone(), v.clone()));
                }
            }
            let d = parse(w.finish().as_bytes()).unwrap();
            prop_assert_eq!(d.sections.len(), 1);
            let got: Vec<_> = d.sections[0].entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
            prop_assert_eq!(got, kept);
        }
    }
}
