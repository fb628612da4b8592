//! Byte stream → alerts and reply lines.
//!
//! In [`FramerMode::Normal`] alert bytes are pulled out of the stream wherever they appear (as
//! NUT does during polls) and reported the moment their byte arrives, so a `!` in the middle
//! of a reply is neither lost nor corrupts the reply. `a` replies legitimately contain alert
//! characters, so the driver reads them in [`FramerMode::Raw`] (every byte except CR is kept);
//! `^Z` replies are read in [`FramerMode::Capabilities`] (alerts pulled out except `#`, which
//! starts the table — NUT does the same).
//!
//! Lines end at LF; CR is ignored. Stray NULs are dropped (one real unit sends them). Other
//! control or non-ASCII bytes in Normal mode make the line garbage: it is reported once and
//! dropped up to the next LF, like an overflow. Memory is bounded by `N`.

use heapless::Vec;

use crate::wire::Alert;

/// How to treat alert characters; set by the driver per exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FramerMode {
    #[default]
    Normal,
    Raw,
    Capabilities,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FramerError {
    /// A line exceeded the buffer; it is dropped up to the next LF.
    Overflow,
    /// A line contained bytes no reply can contain; it is dropped up to the next LF.
    Garbage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    Alert(Alert),
    /// A complete line without CR/LF. Valid until the next `push`.
    Line(&'a [u8]),
    Error(FramerError),
}

/// A bounded line framer; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Framer<const N: usize> {
    buf: Vec<u8, N>,
    mode: FramerMode,
    discarding: bool,
    line_ready: bool,
}

impl<const N: usize> Framer<N> {
    pub const fn new() -> Self {
        Framer {
            buf: Vec::new(),
            mode: FramerMode::Normal,
            discarding: false,
            line_ready: false,
        }
    }

    pub fn set_mode(&mut self, mode: FramerMode) {
        self.mode = mode;
    }
    pub const fn mode(&self) -> FramerMode {
        self.mode
    }

    /// Drops any partial line (the driver's equivalent of NUT's flush before a command).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.line_ready = false;
        self.discarding = false;
    }

    /// Bytes of the partial line collected so far.
    pub fn pending(&self) -> usize {
        if self.line_ready { 0 } else { self.buf.len() }
    }

    /// Feeds one byte; returns what it completed, if anything.
    pub fn push(&mut self, byte: u8) -> Option<FrameEvent<'_>> {
        if self.line_ready {
            self.buf.clear();
            self.line_ready = false;
        }
        if self.mode != FramerMode::Raw
            && let Some(alert) = Alert::from_byte(byte)
            && !(self.mode == FramerMode::Capabilities && alert == Alert::ReplaceBattery)
        {
            return Some(FrameEvent::Alert(alert));
        }
        match byte {
            b'\n' => {
                if core::mem::take(&mut self.discarding) {
                    self.buf.clear();
                    return None;
                }
                self.line_ready = true;
                Some(FrameEvent::Line(&self.buf))
            }
            b'\r' | 0 => None,
            _ if self.discarding => None,
            0x01..=0x1F | 0x7F..=0xFF if self.mode == FramerMode::Normal => {
                self.discard();
                Some(FrameEvent::Error(FramerError::Garbage))
            }
            _ => match self.buf.push(byte) {
                Ok(()) => None,
                Err(_) => {
                    self.discard();
                    Some(FrameEvent::Error(FramerError::Overflow))
                }
            },
        }
    }

    fn discard(&mut self) {
        self.buf.clear();
        self.discarding = true;
    }
}

#[cfg(test)]
#[allow(clippy::std_instead_of_alloc)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, string::String};

    fn run<const N: usize>(f: &mut Framer<N>, bytes: &[u8]) -> std::vec::Vec<String> {
        let mut out = std::vec::Vec::new();
        for &b in bytes {
            match f.push(b) {
                Some(FrameEvent::Alert(a)) => {
                    out.push(format!("alert {}", char::from(a.as_byte())))
                }
                Some(FrameEvent::Line(l)) => {
                    out.push(format!("line {}", String::from_utf8_lossy(l)))
                }
                Some(FrameEvent::Error(e)) => out.push(format!("error {e:?}")),
                None => {}
            }
        }
        out
    }

    #[test]
    fn lines_and_alerts() {
        let mut f = Framer::<16>::new();
        assert_eq!(
            run(&mut f, b"08\r\n1!18.3\r\n$"),
            ["line 08", "alert !", "line 118.3", "alert $"]
        );
    }

    #[test]
    fn nul_dropped_and_garbage_resyncs() {
        let mut f = Framer::<16>::new();
        assert_eq!(
            run(&mut f, b"AS01\0\0\r\nxx\x01yy\r\nOK\r\n"),
            ["line AS01", "error Garbage", "line OK"]
        );
    }

    #[test]
    fn overflow_resyncs() {
        let mut f = Framer::<4>::new();
        assert_eq!(
            run(&mut f, b"123456%78\r\nOK\r\n"),
            ["error Overflow", "alert %", "line OK"]
        );
    }

    #[test]
    fn raw_and_caps_modes() {
        let mut f = Framer::<64>::new();
        f.set_mode(FramerMode::Raw);
        assert_eq!(
            run(&mut f, b"3.!$%+?=#|.\x01Q\x7f\r\n"),
            ["line 3.!$%+?=#|.\x01Q\x7f"]
        );
        f.set_mode(FramerMode::Capabilities);
        assert_eq!(run(&mut f, b"#uD!4\r\n"), ["alert !", "line #uD4"]);
    }
}
