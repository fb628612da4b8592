//! The emulated EEPROM: the settings a host can read, cycle with `-`/`+`, or
//! (for `c` and `x`) overwrite with an 8-character string. Persisted as JSON.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Permitted values per variable, in `^Z` order for the "D" (USA 120 V) locale.
/// This table and [`CAPABILITIES`] must describe the same sets.
pub const PERMITTED: &[(u8, &[&str])] = &[
    (b'u', &["127", "130", "133", "136"]),
    (b'l', &["106", "103", "100", "097"]),
    (b'e', &["00", "15", "50", "90"]),
    (b'o', &["115"]),
    (b's', &["H", "M", "L", "L"]),
    (b'q', &["02", "05", "07", "10"]),
    (b'p', &["020", "180", "300", "600"]),
    (b'k', &["0", "T", "L", "N"]),
    (b'r', &["000", "060", "180", "300"]),
    (b'E', &["336", "168", "ON ", "OFF"]),
];

/// The `^Z` reply (protocol §7.1), byte for byte.
pub const CAPABILITIES: &str = "#uD43127130133136lD43106103100097e44200155090oD13115s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168ON OFF";

/// Longest accepted EEPROM file; anything bigger is not ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eeprom {
    /// Upper transfer voltage (V).
    pub u: String,
    /// Lower transfer voltage (V).
    pub l: String,
    /// Minimum charge (%) before restarting after a shutdown.
    pub e: String,
    /// Output voltage on battery (V).
    pub o: String,
    /// Sensitivity.
    pub s: String,
    /// Low-battery warning time (minutes).
    pub q: String,
    /// Shutdown grace delay (s).
    pub p: String,
    /// Alarm delay.
    pub k: String,
    /// Wake-up delay (s).
    pub r: String,
    /// Automatic self-test interval.
    #[serde(rename = "E")]
    pub self_test_interval: String,
    /// UPS identification (8 chars max).
    pub c: String,
    /// Last battery replacement date.
    pub x: String,
}

impl Default for Eeprom {
    fn default() -> Self {
        Eeprom {
            u: "127".into(),
            l: "103".into(),
            e: "00".into(),
            o: "115".into(),
            s: "H".into(),
            q: "02".into(),
            p: "020".into(),
            k: "0".into(),
            r: "000".into(),
            self_test_interval: "336".into(),
            c: "UPS_IDEN".into(),
            x: "01/15/99".into(),
        }
    }
}

fn permitted(var: u8) -> Option<&'static [&'static str]> {
    PERMITTED
        .iter()
        .find(|(v, _)| *v == var)
        .map(|(_, vals)| *vals)
}

/// True for the variables that `-`/`+` cycle through a permitted list.
pub fn is_enum_var(var: u8) -> bool {
    permitted(var).is_some()
}

/// True for the free-text variables written as 8 characters.
pub fn is_string_var(var: u8) -> bool {
    var == b'c' || var == b'x'
}

impl Eeprom {
    fn slot(&mut self, var: u8) -> Option<&mut String> {
        Some(match var {
            b'u' => &mut self.u,
            b'l' => &mut self.l,
            b'e' => &mut self.e,
            b'o' => &mut self.o,
            b's' => &mut self.s,
            b'q' => &mut self.q,
            b'p' => &mut self.p,
            b'k' => &mut self.k,
            b'r' => &mut self.r,
            b'E' => &mut self.self_test_interval,
            b'c' => &mut self.c,
            b'x' => &mut self.x,
            _ => return None,
        })
    }

    /// Current value of a variable, exactly as sent on the wire.
    pub fn get(&self, var: u8) -> Option<&str> {
        Some(match var {
            b'u' => &self.u,
            b'l' => &self.l,
            b'e' => &self.e,
            b'o' => &self.o,
            b's' => &self.s,
            b'q' => &self.q,
            b'p' => &self.p,
            b'k' => &self.k,
            b'r' => &self.r,
            b'E' => &self.self_test_interval,
            b'c' => &self.c,
            b'x' => &self.x,
            _ => return None,
        })
    }

    /// Move an enumerated variable to the next (or previous) distinct permitted
    /// value, wrapping round. Duplicates in the list (`HMLL`) are skipped so a
    /// host walking the list always sees a change.
    pub fn cycle(&mut self, var: u8, forward: bool) -> bool {
        let Some(vals) = permitted(var) else {
            return false;
        };
        let mut distinct: Vec<&str> = Vec::new();
        for v in vals {
            if !distinct.contains(v) {
                distinct.push(v);
            }
        }
        let Some(slot) = self.slot(var) else {
            return false;
        };
        let n = distinct.len();
        let idx = distinct
            .iter()
            .position(|v| *v == slot.as_str())
            .unwrap_or(0);
        let next = if forward {
            (idx + 1) % n
        } else {
            (idx + n - 1) % n
        };
        if let Some(v) = distinct.get(next) {
            *slot = (*v).to_string();
        }
        true
    }

    /// Set a variable to a permitted value (enums) or up to 8 printable
    /// characters (`c`, `x`). Used by the control port and the string write.
    pub fn set(&mut self, var: u8, value: &str) -> Result<(), String> {
        if is_string_var(var) {
            let v = value.trim_end_matches([' ', '\r']);
            if v.len() > 8 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(format!(
                    "{} takes up to 8 printable ASCII characters",
                    var as char
                ));
            }
            if let Some(slot) = self.slot(var) {
                *slot = v.to_string();
            }
            return Ok(());
        }
        let vals =
            permitted(var).ok_or_else(|| format!("unknown EEPROM variable '{}'", var as char))?;
        // Accept "ON" for "ON " and numbers without their zero padding.
        let found = vals
            .iter()
            .find(|v| v.trim_end() == value.trim_end() || same_number(v, value))
            .ok_or_else(|| {
                format!(
                    "{} must be one of {}",
                    var as char,
                    vals.join(",").replace(' ', "")
                )
            })?;
        if let Some(slot) = self.slot(var) {
            *slot = (*found).to_string();
        }
        Ok(())
    }

    /// Back to factory settings, keeping `c` and `x` (the `z` command).
    pub fn factory_reset(&mut self) {
        let keep = (self.c.clone(), self.x.clone());
        *self = Eeprom::default();
        self.c = keep.0;
        self.x = keep.1;
    }

    /// Check every value against the permitted lists (for loaded files).
    pub fn validate(&self) -> Result<(), String> {
        let mut copy = self.clone();
        for (var, _) in PERMITTED {
            let v = self.get(*var).unwrap_or_default().to_string();
            copy.set(*var, &v)?;
        }
        for var in [b'c', b'x'] {
            let v = self.get(var).unwrap_or_default().to_string();
            copy.set(var, &v)?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn from_json(text: &str) -> Result<Eeprom, String> {
        let mut e: Eeprom = serde_json::from_str(text).map_err(|e| format!("EEPROM file: {e}"))?;
        e.validate().map_err(|e| format!("EEPROM file: {e}"))?;
        // Normalise (e.g. "ON" -> "ON ").
        for (var, _) in PERMITTED {
            let v = e.get(*var).unwrap_or_default().to_string();
            e.set(*var, &v)?;
        }
        Ok(e)
    }

    /// Load from `path`, or create it with factory values if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Eeprom, String> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.len() > MAX_FILE_BYTES {
                    return Err(format!("EEPROM file {} is too large", path.display()));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                Eeprom::from_json(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let eep = Eeprom::default();
                eep.save(path)?;
                Ok(eep)
            }
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Write atomically (temp file + rename) so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text + "\n").map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

fn same_number(permitted: &str, given: &str) -> bool {
    match (permitted.trim().parse::<u32>(), given.trim().parse::<u32>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_match_table() {
        // Parse the ^Z string and compare with PERMITTED so the two never drift.
        let b = CAPABILITIES.as_bytes();
        assert_eq!(b[0], b'#');
        let mut i = 1;
        let mut seen = 0;
        while i < b.len() {
            let (var, n, w) = (b[i], (b[i + 2] - b'0') as usize, (b[i + 3] - b'0') as usize);
            let vals: Vec<&str> = (0..n)
                .map(|k| &CAPABILITIES[i + 4 + k * w..i + 4 + (k + 1) * w])
                .collect();
            assert_eq!(
                permitted(var).unwrap(),
                vals.as_slice(),
                "var {}",
                var as char
            );
            i += 4 + n * w;
            seen += 1;
        }
        assert_eq!(seen, PERMITTED.len());
        let d = Eeprom::default();
        d.validate().unwrap();
    }

    #[test]
    fn cycle_skips_duplicates_and_wraps() {
        let mut e = Eeprom::default();
        e.s = "L".into();
        assert!(e.cycle(b's', true));
        assert_eq!(e.s, "H");
        e.cycle(b'u', true);
        assert_eq!(e.u, "130");
        e.cycle(b'u', false);
        e.cycle(b'u', false);
        assert_eq!(e.u, "136");
        assert!(!e.cycle(b'c', true));
    }

    #[test]
    fn set_and_json_round_trip() {
        let mut e = Eeprom::default();
        e.set(b'p', "180").unwrap();
        e.set(b'E', "ON").unwrap();
        e.set(b'q', "5").unwrap();
        assert!(e.set(b'p', "42").is_err());
        assert!(e.set(b'c', "TOO LONG NAME").is_err());
        e.set(b'c', "RACK1\r\r\r").unwrap();
        assert_eq!(e.c, "RACK1");
        let back = Eeprom::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.self_test_interval, "ON ");
        assert!(Eeprom::from_json("{\"u\":\"999\"}").is_err());
        assert!(Eeprom::from_json("garbage").is_err());
    }
}
