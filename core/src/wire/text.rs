//! Free-text replies (model, serial, dates, ids) and firmware/locale (`b`, `V`).

use heapless::String;

use super::{ParseError, reply_body};

/// Parses a text reply into a fixed-capacity string. Stray NULs are dropped, other
/// non-printable bytes become `?`, surrounding spaces are trimmed, and text longer than `N`
/// is truncated (a long model name is still more useful than none).
pub fn parse_text<const N: usize>(line: &[u8]) -> Result<String<N>, ParseError> {
    let body = reply_body(line)?;
    let mut s = String::new();
    for &b in body.iter().filter(|b| **b != 0) {
        let c = if (0x20..0x7F).contains(&b) {
            char::from(b)
        } else {
            '?'
        };
        if s.push(c).is_err() {
            break;
        }
    }
    Ok(s)
}

/// The firmware locale letter (last char of `b` / `V`), which selects `^Z` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Locale(pub u8);

impl Locale {
    /// 115 V USA.
    pub const D: Locale = Locale(b'D');
    /// 230 V international.
    pub const I: Locale = Locale(b'I');
    /// 100 V Asia.
    pub const A: Locale = Locale(b'A');
    /// Japan.
    pub const J: Locale = Locale(b'J');
    /// 208 V North America.
    pub const M: Locale = Locale(b'M');
    /// The `^Z` locale byte that matches every locale.
    pub const ALL: u8 = b'4';

    /// Whether a `^Z` record with this locale byte applies to this UPS.
    pub const fn accepts(self, record_locale: u8) -> bool {
        record_locale == Locale::ALL || record_locale == self.0
    }
}

/// Firmware revision from `b` (`60.11.D`) or the older 3-char `V` code (`IWD`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Firmware {
    pub text: String<16>,
    pub locale: Locale,
    /// True when this came from `V` (old format).
    pub old_format: bool,
}

impl Firmware {
    /// Parses `b`: `alnum+.alnum+.alnum+` as NUT requires; the last char is the locale.
    pub fn parse_b(line: &[u8]) -> Result<Self, ParseError> {
        let body = reply_body(line)?;
        let mut parts = 0;
        for part in body.split(|b| *b == b'.') {
            if part.is_empty() || !part.iter().all(u8::is_ascii_alphanumeric) {
                return Err(ParseError::Invalid);
            }
            parts += 1;
        }
        if parts != 3 {
            return Err(ParseError::Invalid);
        }
        Self::finish(body, false)
    }

    /// Parses `V`: exactly 3 alphanumeric chars, the last being the locale.
    pub fn parse_v(line: &[u8]) -> Result<Self, ParseError> {
        let body = reply_body(line)?;
        if body.len() != 3 || !body.iter().all(u8::is_ascii_alphanumeric) {
            return Err(ParseError::Invalid);
        }
        Self::finish(body, true)
    }

    fn finish(body: &[u8], old_format: bool) -> Result<Self, ParseError> {
        let locale = Locale(*body.last().ok_or(ParseError::Empty)?);
        let mut text = String::new();
        for &b in body {
            text.push(char::from(b)).map_err(|_| ParseError::Overflow)?;
        }
        Ok(Firmware {
            text,
            locale,
            old_format,
        })
    }
}
