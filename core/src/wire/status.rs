//! The `Q` status register and registers 1–3 (`~`, `'`, `8`).

use core::fmt;

use super::number::{hex_digits, parse_hex_u8};
use super::{EmitError, ParseError, Sink};

/// The `Q` status byte, a bitflags-like newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StatusFlags(pub u8);

const TOKENS: [(u8, &str); 8] = [
    (StatusFlags::CAL.0, "CAL"),
    (StatusFlags::TRIM.0, "TRIM"),
    (StatusFlags::BOOST.0, "BOOST"),
    (StatusFlags::OL.0, "OL"),
    (StatusFlags::OB.0, "OB"),
    (StatusFlags::OVER.0, "OVER"),
    (StatusFlags::LB.0, "LB"),
    (StatusFlags::RB.0, "RB"),
];

impl StatusFlags {
    /// Runtime calibration in progress.
    pub const CAL: StatusFlags = StatusFlags(0x01);
    /// SmartTrim (reducing high input).
    pub const TRIM: StatusFlags = StatusFlags(0x02);
    /// SmartBoost (raising low input).
    pub const BOOST: StatusFlags = StatusFlags(0x04);
    /// On line.
    pub const OL: StatusFlags = StatusFlags(0x08);
    /// On battery.
    pub const OB: StatusFlags = StatusFlags(0x10);
    /// Output overloaded.
    pub const OVER: StatusFlags = StatusFlags(0x20);
    /// Battery low.
    pub const LB: StatusFlags = StatusFlags(0x40);
    /// Replace battery.
    pub const RB: StatusFlags = StatusFlags(0x80);
    pub const EMPTY: StatusFlags = StatusFlags(0);

    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn contains(self, other: StatusFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: StatusFlags) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn insert(&mut self, other: StatusFlags) {
        self.0 |= other.0;
    }
    pub fn remove(&mut self, other: StatusFlags) {
        self.0 &= !other.0;
    }
    pub fn set(&mut self, other: StatusFlags, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }
    pub const fn union(self, other: StatusFlags) -> StatusFlags {
        StatusFlags(self.0 | other.0)
    }

    /// Parses a `Q` reply (`08`, `50`). `SM` (not ready after power-up) is
    /// [`ParseError::NotReady`] — NUT would read it as 0/OFF, which is wrong.
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        parse_hex_u8(line).map(StatusFlags)
    }

    /// Emits the reply body (`08`).
    pub fn emit(self, out: &mut impl Sink) -> Result<(), EmitError> {
        out.put_all(&hex_digits(self.0))
    }

    /// NUT `ups.status` tokens in bit order (`OL`, `OB LB`, …); `00` yields `OFF`.
    pub fn nut_tokens(self) -> NutTokens {
        NutTokens {
            flags: self,
            idx: 0,
        }
    }
}

/// Iterator over NUT status tokens; see [`StatusFlags::nut_tokens`].
#[derive(Debug, Clone)]
pub struct NutTokens {
    flags: StatusFlags,
    idx: u8,
}

impl Iterator for NutTokens {
    type Item = &'static str;
    fn next(&mut self) -> Option<&'static str> {
        if self.flags.is_empty() {
            // A zero byte is reported once, as NUT does.
            return if self.idx == 0 {
                self.idx = 1;
                Some("OFF")
            } else {
                None
            };
        }
        while let Some((bit, tok)) = TOKENS.get(usize::from(self.idx)) {
            self.idx += 1;
            if self.flags.0 & bit != 0 {
                return Some(tok);
            }
        }
        None
    }
}

/// Space-separated NUT tokens, e.g. `OB LB`.
impl fmt::Display for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.nut_tokens().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
        }
        Ok(())
    }
}

impl fmt::Debug for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusFlags({:#04x} \"{}\")", self.0, self)
    }
}

macro_rules! register {
    ($(#[$m:meta])* $name:ident { $($(#[$bm:meta])* $bit:ident = $mask:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name(pub u8);
        impl $name {
            $($(#[$bm])* pub const fn $bit(self) -> bool { self.0 & $mask != 0 })*
            pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
                parse_hex_u8(line).map($name)
            }
            pub fn emit(self, out: &mut impl Sink) -> Result<(), EmitError> {
                out.put_all(&hex_digits(self.0))
            }
        }
    };
}

register!(
    /// Register 1 (`~`).
    Register1 {
        wakeup_mode = 0x01,
        bypass_internal_fault = 0x02,
        going_to_bypass = 0x04,
        bypass_by_command = 0x08,
        returning_from_bypass = 0x10,
        manual_bypass = 0x20,
        ready_on_user_command = 0x40,
        ready_on_command_or_line = 0x80,
    }
);

register!(
    /// Register 2 (`'`).
    Register2 {
        electronics_fan_failure = 0x01,
        isolation_fan_failure = 0x02,
        bypass_supply_failure = 0x04,
        output_select_failure = 0x08,
        dc_imbalance = 0x10,
        /// apcupsd reports "battery disconnected" from this bit.
        battery_disconnected = 0x20,
        trim_boost_relay_fault = 0x40,
        bad_output_voltage = 0x80,
    }
);

register!(
    /// Register 3 (`8`).
    Register3 {
        off_after_low_battery = 0x01,
        cannot_transfer_overload = 0x02,
        main_relay_fault = 0x04,
        /// Asleep after `@`.
        asleep = 0x08,
        /// In shutdown after `S`.
        in_soft_shutdown = 0x10,
        charger_failure = 0x20,
        bypass_relay_fault = 0x40,
        over_temperature = 0x80,
    }
);
