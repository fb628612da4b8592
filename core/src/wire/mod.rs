//! The UPS-Link (APC Smart) codec, in the style of smoltcp's `wire`: typed commands with their
//! pacing, reply parsers and emitters. Every function here is total: malformed input yields a
//! [`ParseError`], never a panic, and nothing allocates.
//!
//! Replies are handed in as one line *without* its CR LF (see [`crate::framer`]).

mod alert;
mod caps;
mod command;
mod number;
mod protocol;
mod status;
mod text;
mod values;

pub use alert::{Alert, AlertSet};
pub use caps::{
    CAP_MAX_POOL, CAP_MAX_RECORDS, CAP_MAX_VALUES, CAP_VALUE_MAX, CapRecord, CapabilityTable, Value,
};
pub use command::{Command, Encoded, PacedByte, Pacing, ReplyKind, StringVar};
pub use number::{Centi, parse_hex_u8, parse_runtime_seconds, parse_uint};
pub use protocol::{CommandSet, ProtocolInfo};
pub use status::{NutTokens, Register1, Register2, Register3, StatusFlags};
pub use text::{Firmware, Locale, parse_text};
pub use values::{
    AlarmDelay, SelfTestInterval, SelfTestResult, Sensitivity, SettingVar, TransferCause,
};

/// Why a reply could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParseError {
    /// The line was empty.
    Empty,
    /// The UPS answered `NA`: the command or variable is not supported (or not known yet).
    NotAvailable,
    /// The UPS answered `SM` to something other than `Y` (it is still starting up).
    NotReady,
    /// The reply does not have the expected format.
    Invalid,
    /// A number does not fit the target type.
    Overflow,
}

/// Emitting failed: the output buffer is full, or the value cannot be represented on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EmitError {
    Full,
    Unrepresentable,
}

/// A byte sink for emitters (implemented for `heapless::Vec<u8, N>` and [`SliceSink`]).
pub trait Sink {
    fn put(&mut self, byte: u8) -> Result<(), EmitError>;
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), EmitError> {
        bytes.iter().try_for_each(|b| self.put(*b))
    }
}

impl<const N: usize> Sink for heapless::Vec<u8, N> {
    fn put(&mut self, byte: u8) -> Result<(), EmitError> {
        self.push(byte).map_err(|_| EmitError::Full)
    }
}

/// Writes into a caller-provided slice; `len()` bytes have been written.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceSink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, byte: u8) -> Result<(), EmitError> {
        let slot = self.buf.get_mut(self.len).ok_or(EmitError::Full)?;
        *slot = byte;
        self.len += 1;
        Ok(())
    }
}

/// Common reply pre-check: strips padding (spaces, stray NULs) and maps `NA` / `SM` / empty.
pub(crate) fn reply_body(line: &[u8]) -> Result<&[u8], ParseError> {
    let body = trim(line);
    match body {
        b"" => Err(ParseError::Empty),
        b"NA" => Err(ParseError::NotAvailable),
        b"SM" => Err(ParseError::NotReady),
        _ => Ok(body),
    }
}

/// Trims spaces and NULs (some units pad replies with both) from both ends.
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | 0, rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
}

/// Trims trailing spaces/NULs only (capability values such as `ON ` keep their meaning).
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests;
