//! Exact decimal numbers as the UPS prints them (`118.3`, `27.87`, `036.0`, `0327:`, `FF`).
//! Fixed-point integers only: no floats on the MCU.

use core::fmt;

use nom::{
    IResult, Parser,
    bytes::complete::take_while_m_n,
    character::complete::{char, digit0, digit1},
    combinator::{all_consuming, opt},
    sequence::preceded,
};

use super::{ParseError, reply_body};

/// A decimal value in hundredths (`118.3` → `Centi(11830)`). Digits beyond the second decimal
/// place are truncated (no reply has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Centi(pub i32);

impl Centi {
    pub const fn from_hundredths(v: i32) -> Self {
        Centi(v)
    }
    pub const fn from_whole(v: i32) -> Self {
        Centi(v.saturating_mul(100))
    }
    pub const fn hundredths(self) -> i32 {
        self.0
    }
    /// Integer part, truncated towards zero.
    pub const fn whole(self) -> i32 {
        self.0 / 100
    }
    /// Tenths, rounded half away from zero (for one-decimal displays).
    pub const fn tenths(self) -> i32 {
        if self.0 >= 0 {
            (self.0 + 5) / 10
        } else {
            (self.0 - 5) / 10
        }
    }

    /// Parses a reply such as `118.3`, `27.87`, `036.0`, `-1.5` or `024`.
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let body = reply_body(line)?;
        let (_, (neg, int, frac)) = all_consuming(decimal)
            .parse(body)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Invalid)?;
        let mut v: i64 = 0;
        for d in int {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d - b'0')))
                .ok_or(ParseError::Overflow)?;
        }
        let mut hundredths: i64 = 0;
        let mut digits = frac.unwrap_or(&[]).iter();
        for scale in [10, 1] {
            if let Some(d) = digits.next() {
                hundredths += i64::from(d - b'0') * scale;
            }
        }
        let total = v
            .checked_mul(100)
            .and_then(|v| v.checked_add(hundredths))
            .ok_or(ParseError::Overflow)?;
        let total = if neg { -total } else { total };
        i32::try_from(total)
            .map(Centi)
            .map_err(|_| ParseError::Overflow)
    }

    /// Writes the value the way a UPS prints it: `int_width` zero-padded integer digits and
    /// `decimals` (0..=2) decimal places, e.g. `(3, 1)` → `036.0`, `(2, 2)` → `27.87`.
    /// Extra precision is truncated.
    pub fn write_padded<W: fmt::Write>(
        self,
        w: &mut W,
        int_width: usize,
        decimals: u8,
    ) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        if self.0 < 0 {
            w.write_char('-')?;
        }
        write!(w, "{:0width$}", abs / 100, width = int_width)?;
        match decimals {
            0 => Ok(()),
            1 => write!(w, ".{}", (abs % 100) / 10),
            _ => write!(w, ".{:02}", abs % 100),
        }
    }
}

/// Shortest exact form with two decimals (`118.30`); parses back to the same value.
impl fmt::Display for Centi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_padded(f, 1, 2)
    }
}

type Decimal<'a> = (bool, &'a [u8], Option<&'a [u8]>);

fn decimal(input: &[u8]) -> IResult<&[u8], Decimal<'_>> {
    let (rest, (neg, int, frac)) =
        (opt(char('-')), digit1, opt(preceded(char('.'), digit0))).parse(input)?;
    Ok((rest, (neg.is_some(), int, frac)))
}

/// Parses an unsigned decimal integer reply (`024`, `180`, `02`).
pub fn parse_uint(line: &[u8]) -> Result<u32, ParseError> {
    let body = reply_body(line)?;
    let (_, digits) = all_consuming(digit1)
        .parse(body)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Invalid)?;
    digits.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u32::from(d - b'0')))
            .ok_or(ParseError::Overflow)
    })
}

/// Parses the `j` runtime reply (`0327:` = 327 minutes) into **seconds**. The colon is optional
/// (apcupsd strips it).
pub fn parse_runtime_seconds(line: &[u8]) -> Result<u32, ParseError> {
    let body = reply_body(line)?;
    let body = body.strip_suffix(b":").unwrap_or(body);
    parse_uint(body)?
        .checked_mul(60)
        .ok_or(ParseError::Overflow)
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.wrapping_sub(b'A').wrapping_add(10),
    }
}

/// Parses a hex byte reply (`08`, `FF`, case-insensitive; one digit is tolerated).
pub fn parse_hex_u8(line: &[u8]) -> Result<u8, ParseError> {
    let body = reply_body(line)?;
    let (_, digits) = all_consuming(take_while_m_n(1, 2, |b: u8| b.is_ascii_hexdigit()))
        .parse(body)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| ParseError::Invalid)?;
    Ok(digits.iter().fold(0u8, |acc, d| (acc << 4) | hex_val(*d)))
}

/// Writes a byte as two upper-case hex digits (`08`).
pub(crate) fn hex_digits(v: u8) -> [u8; 2] {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    let hi = H.get(usize::from(v >> 4)).copied().unwrap_or(b'0');
    let lo = H.get(usize::from(v & 0xF)).copied().unwrap_or(b'0');
    [hi, lo]
}
