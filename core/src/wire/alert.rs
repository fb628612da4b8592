//! Unsolicited single-byte alerts (`! $ % + ? = * # & |`), sent by the UPS without CR LF.

/// One asynchronous alert byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Alert {
    /// `!`: transferred to battery (repeated every 30 s until low battery).
    LineFail = b'!',
    /// `$`: back on mains.
    LineRestored = b'$',
    /// `%`: low battery.
    LowBattery = b'%',
    /// `+`: battery recharged past the low level.
    BatteryRestored = b'+',
    /// `?`: abnormal condition (overload, shut down on low battery, …).
    Abnormal = b'?',
    /// `=`: abnormal condition cleared.
    AbnormalCleared = b'=',
    /// `*`: about to turn off (old units; also their shutdown acknowledgement).
    AboutToTurnOff = b'*',
    /// `#`: replace battery (repeated every 5 h).
    ReplaceBattery = b'#',
    /// `&`: check the alarm register (Measure-UPS).
    CheckAlarmRegister = b'&',
    /// `|`: an EEPROM variable changed (~5 s after a write).
    EepromChanged = b'|',
}

impl Alert {
    pub const ALL: [Alert; 10] = [
        Alert::LineFail,
        Alert::LineRestored,
        Alert::LowBattery,
        Alert::BatteryRestored,
        Alert::Abnormal,
        Alert::AbnormalCleared,
        Alert::AboutToTurnOff,
        Alert::ReplaceBattery,
        Alert::CheckAlarmRegister,
        Alert::EepromChanged,
    ];

    pub const fn from_byte(b: u8) -> Option<Alert> {
        Some(match b {
            b'!' => Alert::LineFail,
            b'$' => Alert::LineRestored,
            b'%' => Alert::LowBattery,
            b'+' => Alert::BatteryRestored,
            b'?' => Alert::Abnormal,
            b'=' => Alert::AbnormalCleared,
            b'*' => Alert::AboutToTurnOff,
            b'#' => Alert::ReplaceBattery,
            b'&' => Alert::CheckAlarmRegister,
            b'|' => Alert::EepromChanged,
            _ => return None,
        })
    }

    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    const fn bit(self) -> u16 {
        1 << (match self {
            Alert::LineFail => 0,
            Alert::LineRestored => 1,
            Alert::LowBattery => 2,
            Alert::BatteryRestored => 3,
            Alert::Abnormal => 4,
            Alert::AbnormalCleared => 5,
            Alert::AboutToTurnOff => 6,
            Alert::ReplaceBattery => 7,
            Alert::CheckAlarmRegister => 8,
            Alert::EepromChanged => 9,
        })
    }
}

/// The set of alerts a UPS declares in its `a` reply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AlertSet(u16);

impl AlertSet {
    pub const EMPTY: AlertSet = AlertSet(0);
    pub const fn contains(self, a: Alert) -> bool {
        self.0 & a.bit() != 0
    }
    pub fn insert(&mut self, a: Alert) {
        self.0 |= a.bit();
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Members in the canonical order of [`Alert::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Alert> {
        Alert::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Alert> for AlertSet {
    fn from_iter<I: IntoIterator<Item = Alert>>(iter: I) -> Self {
        let mut s = AlertSet::EMPTY;
        iter.into_iter().for_each(|a| s.insert(a));
        s
    }
}

impl core::fmt::Debug for AlertSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AlertSet(\"")?;
        for a in self.iter() {
            core::fmt::Write::write_char(f, char::from(a.as_byte()))?;
        }
        f.write_str("\")")
    }
}
