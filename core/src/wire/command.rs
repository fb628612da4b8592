//! Host→UPS commands and their pacing.
//!
//! Every command is one byte except the paced sequences:
//! * `@nnn` (shutdown and return): `@`, silence (200 ms: the UPS must not answer), then the
//!   three digits `digit_gap` apart (NUT: 50 ms, proven on hardware; apcupsd: 2 s).
//! * `K`…`K`, `Z`…`Z`, `^N`…`^N`: the byte twice, `double_send_gap` apart (≈1.5 s like NUT).
//! * string write (`c`/`x`): the driver queries the variable and reads its reply first, then
//!   sends `-`, silence, and exactly 8 characters (space padded) `digit_gap` apart.
//!
//! Expected replies and NUT's timeouts are given by [`Command::reply_kind`].

use heapless::Vec;

use crate::time::Duration;

/// What a command expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReplyKind {
    /// One value line (or `NA`). NUT waits 3 s.
    Line,
    /// One long line that legitimately contains alert bytes (`a`, `^Z`); read in raw mode.
    /// NUT waits 6 s.
    LongLine,
    /// `SM` (`Y`). NUT waits 1.5 s.
    SmartMode,
    /// `OK` (or `*` on old units); `NO`/`NA` is a refusal. NUT waits 1.5 s for shutdown acks.
    Ack,
    /// `OK`, or `!`/`$` alerts instead of a line (`U`, `D`): any reply except `NA`/`NO`.
    AckOrAlert,
    /// `OK` or nothing at all (`Z`…`Z`, `^N`…`^N`): silence is success.
    OptionalAck,
}

impl ReplyKind {
    /// NUT 2.8.0's timeout for this kind of reply.
    pub const fn nut_timeout(self) -> Duration {
        match self {
            ReplyKind::Line | ReplyKind::AckOrAlert => Duration::from_millis(3000),
            ReplyKind::LongLine => Duration::from_millis(6000),
            ReplyKind::SmartMode | ReplyKind::Ack | ReplyKind::OptionalAck => {
                Duration::from_millis(1500)
            }
        }
    }
}

/// Which 8-character string variable a [`Command::WriteString`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StringVar {
    /// `c`: UPS identification.
    UpsId,
    /// `x`: last battery replacement date.
    BatteryDate,
}

impl StringVar {
    pub const fn byte(self) -> u8 {
        match self {
            StringVar::UpsId => b'c',
            StringVar::BatteryDate => b'x',
        }
    }
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'c' => Some(StringVar::UpsId),
            b'x' => Some(StringVar::BatteryDate),
            _ => None,
        }
    }
}

macro_rules! commands {
    ($( $(#[$m:meta])* $name:ident = $byte:literal => $reply:ident, )*) => {
        /// Every UPS-Link command (§2–§4 of the protocol notes).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum Command {
            $( $(#[$m])* $name, )*
            /// `@nnn`: shutdown, return after `nnn` × 6 min (plus `r`). Reply: ack. Paced.
            ShutdownReturn { tenths_of_hour: u16 },
            /// `K`…`K`: shutdown after `p` s, stay off. Reply: ack after the 2nd byte.
            ShutdownStayOff,
            /// `Z`…`Z`: output off now, stay off. Reply: usually none.
            TurnOff,
            /// `^N`…`^N`: output on. Reply: none.
            TurnOn,
            /// `-` + 8 chars: writes `c`/`x` (query the variable first). Reply: ack.
            WriteString { var: StringVar, value: [u8; 8] },
        }

        impl Command {
            /// The command's first (for most commands, only) byte.
            pub const fn first_byte(&self) -> u8 {
                match self {
                    $( Command::$name => $byte, )*
                    Command::ShutdownReturn { .. } => b'@',
                    Command::ShutdownStayOff => b'K',
                    Command::TurnOff => b'Z',
                    Command::TurnOn => 0x0E,
                    Command::WriteString { .. } => b'-',
                }
            }

            /// The single-byte command (or double-sent one) starting with `b`. `@` and string
            /// writes need arguments and are not returned.
            pub const fn from_byte(b: u8) -> Option<Command> {
                match b {
                    $( $byte => Some(Command::$name), )*
                    b'K' => Some(Command::ShutdownStayOff),
                    b'Z' => Some(Command::TurnOff),
                    0x0E => Some(Command::TurnOn),
                    _ => None,
                }
            }

            /// The reply this command expects.
            pub const fn reply_kind(&self) -> ReplyKind {
                match self {
                    $( Command::$name => ReplyKind::$reply, )*
                    Command::ShutdownReturn { .. }
                    | Command::ShutdownStayOff
                    | Command::WriteString { .. } => ReplyKind::Ack,
                    Command::TurnOff | Command::TurnOn => ReplyKind::OptionalAck,
                }
            }
        }
    };
}

commands! {
    // --- identification and static data (§2.1) ---
    /// `^A`: model name (text, may be space/NUL padded).
    ModelName = 0x01 => Line,
    /// `b`: firmware `SKU.rev.locale` (`60.11.D`).
    FirmwareRevision = b'b' => Line,
    /// `V`: old 3-char firmware/model code (`IWD`).
    OldFirmware = b'V' => Line,
    /// `n`: serial number.
    SerialNumber = b'n' => Line,
    /// `m`: manufacture date.
    ManufactureDate = b'm' => Line,
    /// `x`: last battery replacement date (writable string).
    BatteryDate = b'x' => Line,
    /// `c`: UPS identification (writable string).
    UpsId = b'c' => Line,
    /// `g`: nominal battery voltage (`024`).
    NominalBatteryVoltage = b'g' => Line,
    /// `o`: output voltage on battery (`115`); also a cyclable setting.
    OutputVoltageSetting = b'o' => Line,
    /// `y`: copyright string.
    Copyright = b'y' => Line,
    /// `v`: Measure-UPS firmware.
    MeasureUpsFirmware = b'v' => Line,
    /// `a`: protocol info and command set (raw read).
    ProtocolInfo = b'a' => LongLine,
    /// `^Z`: EEPROM permitted values (read keeping `#`).
    Capabilities = 0x1A => LongLine,
    // --- measurements (§2.2) ---
    /// `B`: battery voltage (`27.87`).
    BatteryVoltage = b'B' => Line,
    /// `C`: internal temperature (`036.0` °C).
    Temperature = b'C' => Line,
    /// `F`: line frequency (`60.00`).
    LineFrequency = b'F' => Line,
    /// `L`: input line voltage (`118.3`).
    InputVoltage = b'L' => Line,
    /// `M`: max line voltage since the last `M` (reading resets it).
    MaxLineVoltage = b'M' => Line,
    /// `N`: min line voltage since the last `N`.
    MinLineVoltage = b'N' => Line,
    /// `O`: output voltage.
    OutputVoltage = b'O' => Line,
    /// `P`: load (% of rating).
    Load = b'P' => Line,
    /// `f`: battery charge (%).
    BatteryCharge = b'f' => Line,
    /// `j`: runtime in minutes with a colon (`0327:`).
    Runtime = b'j' => Line,
    /// `9`: line quality (`FF` acceptable, `00` not).
    LineQuality = b'9' => Line,
    /// `/`: load current (Matrix).
    LoadCurrent = b'/' => Line,
    /// `\`: apparent load (Matrix).
    ApparentLoad = b'\\' => Line,
    /// `h`: ambient humidity (Measure-UPS).
    AmbientHumidity = b'h' => Line,
    /// `t`: ambient temperature (Measure-UPS).
    AmbientTemperature = b't' => Line,
    /// `T`: uptime or Measure-UPS II temperature.
    Uptime = b'T' => Line,
    /// `>`: external battery packs.
    ExternalBatteryPacks = b'>' => Line,
    /// `<`: bad battery packs.
    BadBatteryPacks = b'<' => Line,
    /// `d`: hours since the last self-test (apcupsd only).
    HoursSinceSelfTest = b'd' => Line,
    // --- status-type queries (§2.3) ---
    /// `Q`: status register (hex).
    Status = b'Q' => Line,
    /// `G`: cause of the last transfer.
    TransferCause = b'G' => Line,
    /// `X`: last self-test result.
    SelfTestResult = b'X' => Line,
    /// `7`: DIP switches (hex).
    DipSwitches = b'7' => Line,
    /// `~`: register 1.
    Register1 = b'~' => Line,
    /// `'`: register 2.
    Register2 = b'\'' => Line,
    /// `8`: register 3.
    Register3 = b'8' => Line,
    /// `I`: Measure-UPS alarm enable.
    AlarmEnable = b'I' => Line,
    /// `J`: Measure-UPS alarm status.
    AlarmStatus = b'J' => Line,
    /// `i`: Measure-UPS dry contacts.
    DryContacts = b'i' => Line,
    // --- EEPROM settings (§2.4) ---
    /// `u`: upper transfer voltage.
    UpperTransferVoltage = b'u' => Line,
    /// `l`: lower transfer voltage.
    LowerTransferVoltage = b'l' => Line,
    /// `e`: minimum return charge.
    MinReturnCharge = b'e' => Line,
    /// `s`: sensitivity.
    Sensitivity = b's' => Line,
    /// `q`: low-battery warning (min).
    LowBatteryWarning = b'q' => Line,
    /// `p`: shutdown delay (s).
    ShutdownDelay = b'p' => Line,
    /// `k`: alarm delay.
    AlarmDelay = b'k' => Line,
    /// `r`: return delay (s).
    ReturnDelay = b'r' => Line,
    /// `E`: self-test interval.
    SelfTestInterval = b'E' => Line,
    /// `^L`: front-panel language (Matrix).
    PanelLanguage = 0x0C => Line,
    /// `^V`: output voltage selection (Matrix).
    OutputVoltageSelect = 0x16 => Line,
    /// `w`: run-time conservation (Matrix).
    RuntimeConservation = b'w' => Line,
    /// `[`: Measure-UPS temperature high limit.
    AmbientTemperatureHigh = b'[' => Line,
    /// `]`: Measure-UPS temperature low limit.
    AmbientTemperatureLow = b']' => Line,
    /// `{`: Measure-UPS humidity high limit.
    AmbientHumidityHigh = b'{' => Line,
    /// `}`: Measure-UPS humidity low limit.
    AmbientHumidityLow = b'}' => Line,
    // --- controls (§4) ---
    /// `Y`: enter smart mode → `SM`.
    SmartMode = b'Y' => SmartMode,
    /// `R`: back to dumb mode → `BYE`.
    DumbMode = b'R' => Line,
    /// `S`: soft shutdown (on battery only) → `OK`/`*`.
    SoftShutdown = b'S' => Ack,
    /// `DEL`: abort a pending `S`/`@`/`K` → `OK`.
    AbortShutdown = 0x7F => Ack,
    /// `W`: start (or stop) the battery self-test → `OK`.
    SelfTest = b'W' => Ack,
    /// `A`: front-panel test → `OK`.
    PanelTest = b'A' => Ack,
    /// `U`: simulate power failure → `OK` or `!`/`$`.
    SimulatePowerFail = b'U' => AckOrAlert,
    /// `D`: runtime calibration start/abort → anything but `NA`/`NO`.
    Calibrate = b'D' => AckOrAlert,
    /// `^`: bypass toggle (Matrix) → `BYP`/`INV`/`ERR`.
    BypassToggle = b'^' => Line,
    /// `z`: EEPROM factory reset → `CLEAR`.
    FactoryReset = b'z' => Line,
    /// `-`: cycle the last-queried EEPROM variable → `OK`/`NO`/`NA`.
    CycleNext = b'-' => Ack,
    /// `+`: cycle backwards (unused by the daemons).
    CyclePrevious = b'+' => Ack,
    /// `ESC`: NUT's fallback after a failed `Y`; aborts partial input.
    Escape = 0x1B => Line,
}

/// One byte to send and how long to wait (since the previous byte) before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PacedByte {
    pub gap_ms: u32,
    pub byte: u8,
}

/// Inter-byte timing for paced commands (defaults: NUT's, proven on hardware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pacing {
    /// Silence after the first byte of `@` and of a string write (UPS must not answer).
    pub silence_ms: u32,
    /// Gap between the digits of `@nnn` and the characters of a string write.
    pub digit_gap_ms: u32,
    /// Gap between the two bytes of `K`, `Z`, `^N`.
    pub double_send_gap_ms: u32,
}

impl Pacing {
    pub const NUT: Pacing = Pacing {
        silence_ms: 200,
        digit_gap_ms: 50,
        double_send_gap_ms: 1500,
    };
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::NUT
    }
}

/// A paced byte sequence (at most 9 bytes: `-` + 8 characters).
pub type Encoded = Vec<PacedByte, 10>;

impl Command {
    /// `@nnn` with validation (`0..=999` tenths of an hour).
    pub const fn shutdown_return(tenths_of_hour: u16) -> Option<Command> {
        if tenths_of_hour <= 999 {
            Some(Command::ShutdownReturn { tenths_of_hour })
        } else {
            None
        }
    }

    /// A string write: up to 8 printable ASCII characters, padded with spaces.
    pub fn write_string(var: StringVar, value: &str) -> Option<Command> {
        let bytes = value.as_bytes();
        if bytes.len() > 8 || !bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
            return None;
        }
        let mut v = [b' '; 8];
        v.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
        Some(Command::WriteString { var, value: v })
    }

    /// Encodes with NUT's pacing.
    pub fn encode(&self) -> Encoded {
        self.encode_with(&Pacing::NUT)
    }

    /// Encodes into paced bytes. Values out of range are clamped (`@` to 999), never panics.
    pub fn encode_with(&self, p: &Pacing) -> Encoded {
        let mut out = Encoded::new();
        let mut put = |gap_ms: u32, byte: u8| {
            // Capacity covers the longest sequence; a failed push is unreachable.
            let _ = out.push(PacedByte { gap_ms, byte });
        };
        match *self {
            Command::ShutdownReturn { tenths_of_hour } => {
                let v = tenths_of_hour.min(999);
                put(0, b'@');
                put(p.silence_ms, b'0' + (v / 100) as u8);
                put(p.digit_gap_ms, b'0' + ((v / 10) % 10) as u8);
                put(p.digit_gap_ms, b'0' + (v % 10) as u8);
            }
            Command::ShutdownStayOff | Command::TurnOff | Command::TurnOn => {
                put(0, self.first_byte());
                put(p.double_send_gap_ms, self.first_byte());
            }
            Command::WriteString { value, .. } => {
                put(0, b'-');
                for (i, b) in value.iter().enumerate() {
                    put(if i == 0 { p.silence_ms } else { p.digit_gap_ms }, *b);
                }
            }
            _ => put(0, self.first_byte()),
        }
        out
    }

    /// Whether this command's bytes span time (the line must stay otherwise quiet meanwhile).
    pub const fn is_paced(&self) -> bool {
        matches!(
            self,
            Command::ShutdownReturn { .. }
                | Command::ShutdownStayOff
                | Command::TurnOff
                | Command::TurnOn
                | Command::WriteString { .. }
        )
    }
}
