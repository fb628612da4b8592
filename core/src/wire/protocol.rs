//! The `a` reply: protocol version, alert set and the 256-bit set of accepted command bytes.

use core::fmt;

use super::{Alert, AlertSet, EmitError, ParseError, Sink, reply_body};

/// A set of command bytes (one bit per byte value, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommandSet([u8; 32]);

impl CommandSet {
    pub const EMPTY: CommandSet = CommandSet([0; 32]);

    pub fn from_bytes(bytes: &[u8]) -> Self {
        bytes.iter().copied().collect()
    }
    pub fn contains(&self, b: u8) -> bool {
        self.0
            .get(usize::from(b >> 3))
            .is_some_and(|w| w & (1 << (b & 7)) != 0)
    }
    pub fn insert(&mut self, b: u8) {
        if let Some(w) = self.0.get_mut(usize::from(b >> 3)) {
            *w |= 1 << (b & 7);
        }
    }
    pub fn remove(&mut self, b: u8) {
        if let Some(w) = self.0.get_mut(usize::from(b >> 3)) {
            *w &= !(1 << (b & 7));
        }
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Members in ascending byte order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|b| self.contains(*b))
    }
    /// The raw 32-byte bitmap (bit `b & 7` of byte `b >> 3`).
    pub const fn as_bitmap(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromIterator<u8> for CommandSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut s = CommandSet::EMPTY;
        iter.into_iter().for_each(|b| s.insert(b));
        s
    }
}

/// Shows members in caret notation (`^A^N^Z'+-789@AB…^?`).
impl fmt::Debug for CommandSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommandSet(\"")?;
        for b in self.iter() {
            match b {
                0x00..=0x1F => write!(f, "^{}", char::from(b + 0x40))?,
                0x7F => f.write_str("^?")?,
                0x20..=0x7E => fmt::Write::write_char(f, char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\")")
    }
}

/// Parsed `a` reply: `<version>.<alerts>.<commands>[.<extra>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProtocolInfo {
    pub version: u8,
    pub alerts: AlertSet,
    pub commands: CommandSet,
}

impl ProtocolInfo {
    /// Validates like NUT's `^[0-9]\.[^.]*\.[^.]+(\.[^.]+)?$` and accepts control bytes in the
    /// command section. The optional 4th section (dual-byte commands on newer units) is
    /// checked but not kept. Unknown bytes in the alert section are ignored.
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        // The alert/command sections may legitimately contain spaces or NULs? They do not, but
        // `reply_body` also maps `NA`, which is what an old unit answers.
        let body = reply_body(line)?;
        let (version, rest) = match body {
            [v @ b'0'..=b'9', b'.', rest @ ..] => (v - b'0', rest),
            _ => return Err(ParseError::Invalid),
        };
        let mut sections = rest.split(|b| *b == b'.');
        let alerts_raw = sections.next().unwrap_or(&[]);
        let commands_raw = sections.next().ok_or(ParseError::Invalid)?;
        if commands_raw.is_empty() {
            return Err(ParseError::Invalid);
        }
        if let Some(extra) = sections.next()
            && extra.is_empty()
        {
            return Err(ParseError::Invalid);
        }
        if sections.next().is_some() {
            return Err(ParseError::Invalid);
        }
        Ok(ProtocolInfo {
            version,
            alerts: alerts_raw
                .iter()
                .filter_map(|b| Alert::from_byte(*b))
                .collect(),
            commands: CommandSet::from_bytes(commands_raw),
        })
    }

    /// Emits the reply body. Fails if the set cannot be represented (empty, or containing `.`,
    /// CR or LF) or the version is not one digit.
    pub fn emit(&self, out: &mut impl Sink) -> Result<(), EmitError> {
        if self.version > 9
            || self.commands.is_empty()
            || [b'.', b'\r', b'\n']
                .iter()
                .any(|b| self.commands.contains(*b))
        {
            return Err(EmitError::Unrepresentable);
        }
        out.put(b'0' + self.version)?;
        out.put(b'.')?;
        for a in self.alerts.iter() {
            out.put(a.as_byte())?;
        }
        out.put(b'.')?;
        for b in self.commands.iter() {
            out.put(b)?;
        }
        Ok(())
    }
}
