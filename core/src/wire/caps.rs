//! The `^Z` EEPROM permitted-values ("capability") table, filtered to the UPS's locale.
//!
//! Wire format: `#` then records `<cmd><locale><count><width><count × width value bytes>`;
//! Matrix units put `##` before every record. Quirks handled: leading `#` (optional, since
//! apcupsd strips it), `#`s between records, a truncated trailing fragment (ignored and
//! reported via [`CapabilityTable::is_truncated`]), records for other locales (skipped and
//! counted), records that exceed the fixed capacity (dropped and counted).

use core::fmt;

use heapless::Vec;

use super::{EmitError, Locale, ParseError, Sink, trim_end};

/// Maximum number of records kept.
pub const CAP_MAX_RECORDS: usize = 16;
/// Maximum number of values per record.
pub const CAP_MAX_VALUES: usize = 8;
/// Maximum characters per value.
pub const CAP_VALUE_MAX: usize = 4;
/// Maximum values kept in all records together.
pub const CAP_MAX_POOL: usize = 64;

/// One permitted value, exactly as on the wire (padding included, e.g. `ON `).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Value {
    bytes: [u8; CAP_VALUE_MAX],
    len: u8,
}

impl Value {
    /// Builds a value from 1..=4 printable ASCII bytes.
    pub fn new(bytes: &[u8]) -> Option<Value> {
        if bytes.is_empty()
            || bytes.len() > CAP_VALUE_MAX
            || !bytes.iter().all(|b| (0x20..0x7F).contains(b))
        {
            return None;
        }
        let mut v = Value::default();
        v.bytes.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
        v.len = bytes.len() as u8;
        Some(v)
    }
    pub fn from_text(s: &str) -> Option<Value> {
        Value::new(s.as_bytes())
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
    /// Compares with a reply, ignoring trailing padding on both sides (`ON ` == `ON`).
    pub fn matches(&self, reply: &[u8]) -> bool {
        trim_end(self.as_bytes()) == trim_end(reply)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// One record's header; its values live in the table's shared pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Header {
    var: u8,
    locale: u8,
    width: u8,
    start: u8,
    count: u8,
}

/// The permitted values of one variable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CapRecord<'a> {
    pub var: u8,
    /// The record's locale byte (`4` = all locales).
    pub locale: u8,
    /// Characters per value on the wire.
    pub width: u8,
    pub values: &'a [Value],
}

impl fmt::Debug for CapRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapRecord")
            .field("var", &char::from(self.var))
            .field("locale", &char::from(self.locale))
            .field("width", &self.width)
            .field("values", &self.values)
            .finish()
    }
}

/// A locale-filtered `^Z` table with fixed capacity.
///
/// Values are kept in one pool shared by all records (a real table for one locale holds
/// about 40), not eight slots per record: on an appliance this table is a fifth of the
/// core's RAM budget otherwise.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CapabilityTable {
    records: Vec<Header, CAP_MAX_RECORDS, u8>,
    values: Vec<Value, CAP_MAX_POOL, u8>,
    truncated: bool,
    other_locale: u8,
    dropped: u8,
}

impl fmt::Debug for CapabilityTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Records<'a>(&'a CapabilityTable);
        impl fmt::Debug for Records<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.records()).finish()
            }
        }
        f.debug_struct("CapabilityTable")
            .field("records", &Records(self))
            .field("truncated", &self.truncated)
            .field("other_locale", &self.other_locale)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl CapabilityTable {
    pub const fn new() -> Self {
        CapabilityTable {
            records: Vec::new(),
            values: Vec::new(),
            truncated: false,
            other_locale: 0,
            dropped: 0,
        }
    }

    /// Parses a `^Z` reply, keeping records for `locale` and for all locales (`4`). With no
    /// known locale only the all-locale records are kept: guessing could offer values the UPS
    /// would refuse.
    pub fn parse(line: &[u8], locale: Option<Locale>) -> Result<Self, ParseError> {
        // No trimming: the last value may end in padding (`ON `).
        let mut rest = match line {
            b"" => return Err(ParseError::Empty),
            b"NA" => return Err(ParseError::NotAvailable),
            l => l,
        };
        let mut t = CapabilityTable::new();
        loop {
            while let [b'#', r @ ..] = rest {
                rest = r;
            }
            let [var, loc, count, width, r @ ..] = rest else {
                // 1–3 leftover bytes: a fragment cut short (NUT 2.8.0 dies on it; we note it).
                t.truncated = !rest.is_empty();
                break;
            };
            let (Some(n), Some(w)) = (count.checked_sub(b'0'), width.checked_sub(b'0')) else {
                // Garbage where a header should be: nothing after it can be trusted.
                t.truncated = true;
                break;
            };
            let total = usize::from(n) * usize::from(w);
            let (Some(values), Some(after)) = (r.get(..total), r.get(total..)) else {
                t.truncated = true;
                break;
            };
            rest = after;
            if !locale.is_some_and(|l| l.accepts(*loc)) && *loc != Locale::ALL {
                t.other_locale = t.other_locale.saturating_add(1);
                continue;
            }
            let kept = w != 0
                && n <= CAP_MAX_VALUES as u8
                && t.add(*var, *loc, w, values.chunks(usize::from(w)).map(Value::new));
            if !kept {
                t.dropped = t.dropped.saturating_add(1);
            }
        }
        if t.records.is_empty() && t.truncated && t.other_locale == 0 {
            return Err(ParseError::Invalid);
        }
        Ok(t)
    }

    /// Adds one record, all or nothing.
    fn add(
        &mut self,
        var: u8,
        locale: u8,
        width: u8,
        values: impl Iterator<Item = Option<Value>>,
    ) -> bool {
        let start = self.values.len();
        let mut ok = !self.records.is_full();
        if ok {
            for v in values {
                if v.is_none_or(|v| self.values.push(v).is_err()) {
                    ok = false;
                    break;
                }
            }
        }
        let end = self.values.len();
        let header = Header {
            var,
            locale,
            width,
            start: start as u8,
            count: (end - start) as u8,
        };
        if !ok || self.records.push(header).is_err() {
            self.values.truncate(start);
            return false;
        }
        true
    }

    /// Appends a record (for emulators building a table). Fails when full or invalid.
    pub fn push(&mut self, var: u8, locale: u8, values: &[&str]) -> Result<(), EmitError> {
        let width = values.iter().map(|v| v.len()).max().unwrap_or(0);
        if width == 0 || width > CAP_VALUE_MAX || values.len() > CAP_MAX_VALUES {
            return Err(EmitError::Unrepresentable);
        }
        if values.iter().any(|v| Value::from_text(v).is_none()) {
            return Err(EmitError::Unrepresentable);
        }
        if self.add(
            var,
            locale,
            width as u8,
            values.iter().map(|v| Value::from_text(v)),
        ) {
            Ok(())
        } else {
            Err(EmitError::Full)
        }
    }

    fn view(&self, h: &Header) -> CapRecord<'_> {
        let start = usize::from(h.start);
        CapRecord {
            var: h.var,
            locale: h.locale,
            width: h.width,
            values: self
                .values
                .get(start..start + usize::from(h.count))
                .unwrap_or(&[]),
        }
    }

    /// Permitted values of a variable (`b'u'`, `b'E'`…), in the UPS's cycling order.
    pub fn permitted(&self, var: u8) -> Option<&[Value]> {
        self.records
            .iter()
            .find(|r| r.var == var)
            .map(|h| self.view(h).values)
    }
    pub fn records(&self) -> impl Iterator<Item = CapRecord<'_>> {
        self.records.iter().map(|h| self.view(h))
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// A trailing fragment was cut short (ignored).
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }
    /// Records skipped because they are for another locale.
    pub const fn skipped_other_locale(&self) -> u8 {
        self.other_locale
    }
    /// Records dropped because they exceed the fixed capacity.
    pub const fn dropped(&self) -> u8 {
        self.dropped
    }

    /// Emits the reply body (`#` + records, values padded with spaces to the record width).
    pub fn emit(&self, out: &mut impl Sink) -> Result<(), EmitError> {
        out.put(b'#')?;
        for r in self.records() {
            let n = u8::try_from(r.values.len()).map_err(|_| EmitError::Unrepresentable)?;
            if r.width > 9 || n > 9 {
                return Err(EmitError::Unrepresentable);
            }
            out.put_all(&[r.var, r.locale, b'0' + n, b'0' + r.width])?;
            for v in r.values {
                let bytes = v.as_bytes();
                if bytes.len() > usize::from(r.width) {
                    return Err(EmitError::Unrepresentable);
                }
                out.put_all(bytes)?;
                for _ in bytes.len()..usize::from(r.width) {
                    out.put(b' ')?;
                }
            }
        }
        Ok(())
    }
}
