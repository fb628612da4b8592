//! The operator command grammar shared by stdin, the TCP control port and
//! scenario steps. Parsing is pure so scenario files are checked up front.

/// One operator command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Mains(bool),
    /// Input voltage (V) while mains is "on".
    Input(f64),
    /// Load in % of rated power.
    Load(f64),
    /// `battery fail` disconnects/fails the battery, `battery ok` restores it.
    BatteryOk(bool),
    ReplaceBattery(bool),
    Unplug,
    Replug,
    /// `mute on`: the cable stays plugged but the UPS stops answering (a hung unit).
    Mute(bool),
    Garbage(usize),
    /// `inject BYTES`: put these exact bytes on the line (e.g. a lone `!` that is noise).
    Inject(Vec<u8>),
    /// `self-test`: a battery self-test started from the front panel (or the UPS's schedule).
    PanelSelfTest,
    Noise(bool),
    PowerCycle,
    Speed(f64),
    /// `set VAR VALUE`: write an EEPROM variable directly.
    Set(u8, String),
    /// `wait D`: a scenario pause; a no-op elsewhere.
    Wait(u64),
    Status,
    Eeprom,
    Help,
}

pub const HELP: &str = "commands: mains on|off, input V, load PCT, battery fail|ok, replace-battery on|off, \
unplug, replug, mute on|off, garbage N, inject BYTES, self-test, noise on|off, power-cycle, speed N, set VAR VALUE, wait DURATION, status, eeprom, help";

const MAX_GARBAGE: usize = 4096;

fn on_off(word: Option<&str>, on: &str, off: &str) -> Result<bool, String> {
    match word {
        Some(w) if w.eq_ignore_ascii_case(on) => Ok(true),
        Some(w) if w.eq_ignore_ascii_case(off) => Ok(false),
        _ => Err(format!("expected '{on}' or '{off}'")),
    }
}

fn number(word: Option<&str>, what: &str, min: f64, max: f64) -> Result<f64, String> {
    let w = word.ok_or_else(|| format!("missing {what}"))?;
    let v: f64 = w
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{what} must be a number, got '{w}'"))?;
    if !v.is_finite() || v < min || v > max {
        return Err(format!("{what} must be between {min} and {max}"));
    }
    Ok(v)
}

/// Parse one control line.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Err("empty command".into());
    };
    let arg = words.next();
    let cmd_l = cmd.to_ascii_lowercase();
    let command = match cmd_l.as_str() {
        "mains" => Command::Mains(on_off(arg, "on", "off")?),
        "input" => Command::Input(number(arg, "input voltage", 0.0, 400.0)?),
        "load" => Command::Load(number(arg, "load", 0.0, 200.0)?),
        "battery" => Command::BatteryOk(on_off(arg, "ok", "fail")?),
        "replace-battery" => Command::ReplaceBattery(on_off(arg, "on", "off")?),
        "unplug" => Command::Unplug,
        "replug" => Command::Replug,
        "mute" => Command::Mute(on_off(arg, "on", "off")?),
        "garbage" => Command::Garbage(number(arg, "byte count", 1.0, MAX_GARBAGE as f64)? as usize),
        "noise" => Command::Noise(on_off(arg, "on", "off")?),
        "inject" => {
            let b = arg.ok_or("usage: inject BYTES (e.g. inject !)")?;
            if b.len() > 64 || !b.is_ascii() {
                return Err("inject takes 1 to 64 ASCII bytes".into());
            }
            Command::Inject(b.as_bytes().to_vec())
        }
        "self-test" => Command::PanelSelfTest,
        "power-cycle" => Command::PowerCycle,
        "speed" => Command::Speed(number(arg, "speed", 0.01, 100_000.0)?),
        "set" => {
            let var = arg.ok_or("usage: set VAR VALUE")?;
            let &[v] = var.as_bytes() else {
                return Err("VAR is one EEPROM letter (u l e o s q p k r E c x)".into());
            };
            // Values may contain spaces (`set c MY UPS`).
            let rest: Vec<&str> = words.by_ref().collect();
            if rest.is_empty() {
                return Err("usage: set VAR VALUE".into());
            }
            return Ok(Command::Set(v, rest.join(" ")));
        }
        "wait" => Command::Wait(parse_duration_ms(arg.ok_or("usage: wait DURATION")?)?),
        "status" => Command::Status,
        "eeprom" => Command::Eeprom,
        "help" | "?" => Command::Help,
        _ => return Err(format!("unknown command '{cmd}' (try 'help')")),
    };
    let takes_arg = !matches!(
        command,
        Command::Unplug
            | Command::Replug
            | Command::PanelSelfTest
            | Command::PowerCycle
            | Command::Status
            | Command::Eeprom
            | Command::Help
    );
    if let Some(extra) = if takes_arg { words.next() } else { arg } {
        return Err(format!("unexpected '{extra}'"));
    }
    Ok(command)
}

/// Parse "1h2m3s", "500ms", "90s", "1.5s" or a bare number of seconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_ms(secs, t);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration '{t}' lacks a unit"))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = num.parse().map_err(|_| format!("bad duration '{t}'"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("bad unit '{unit}' in duration '{t}'")),
        };
        total += n * scale;
        rest = next;
    }
    secs_to_ms(total, t)
}

fn secs_to_ms(secs: f64, text: &str) -> Result<u64, String> {
    // Ten years of simulated time is plenty and keeps arithmetic far from overflow.
    if !secs.is_finite() || !(0.0..=315_360_000.0).contains(&secs) {
        return Err(format!("duration '{text}' out of range"));
    }
    Ok((secs * 1000.0).round() as u64)
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
    fn parses_grammar() {
        assert_eq!(parse("mains off"), Ok(Command::Mains(false)));
        assert_eq!(parse("  MAINS   on "), Ok(Command::Mains(true)));
        assert_eq!(parse("input 95"), Ok(Command::Input(95.0)));
        assert_eq!(parse("load 80%"), Ok(Command::Load(80.0)));
        assert_eq!(parse("battery fail"), Ok(Command::BatteryOk(false)));
        assert_eq!(parse("garbage 16"), Ok(Command::Garbage(16)));
        assert_eq!(parse("inject !"), Ok(Command::Inject(b"!".to_vec())));
        assert_eq!(parse("self-test"), Ok(Command::PanelSelfTest));
        assert_eq!(
            parse("set c MY UPS"),
            Ok(Command::Set(b'c', "MY UPS".into()))
        );
        assert_eq!(parse("wait 1m30s"), Ok(Command::Wait(90_000)));
        for bad in [
            "",
            "mains",
            "mains maybe",
            "load -1",
            "load NaN",
            "load 1e999",
            "speed 0",
            "garbage 99999",
            "frobnicate",
            "status now",
            "set",
            "set uu 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1h2m3s"), Ok(3_723_000));
        assert_eq!(parse_duration_ms("2.5"), Ok(2_500));
        for bad in ["", "s", "10x", "-5", "1e30", "5 s", "1..2s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }
}
