//! `[Schedule]`: planned shutdowns with a turn-on time.
//!
//! ```text
//! [Schedule]
//! weekend    = weekly sat 23:00 wake sun 07:00
//! nightly    = daily 01:00 wake 06:00
//! christmas  = once 2026-12-24T22:00 wake 2026-12-27T07:00
//! ```
//!
//! Grammar (case-insensitive words, single or multiple spaces):
//!
//! ```text
//! schedule = "once"   SP DATE "T" HHMM SP "wake" SP DATE "T" HHMM
//!          | "daily"  SP HHMM SP "wake" SP HHMM
//!          | "weekly" SP DAY SP HHMM SP "wake" SP DAY SP HHMM
//! DATE     = YYYY "-" MM "-" DD          ; year 2000..=9999
//! HHMM     = HH ":" MM                   ; 00:00..=23:59, host local time
//! DAY      = mon | tue | wed | thu | fri | sat | sun   (full names accepted)
//! ```
//!
//! Keys are schedule names (`[a-z0-9_]`, 1..=32, stored lowercase). The window from shutdown
//! to wake is the next wake time after the shutdown time (a daily `23:00 wake 06:00` is 7 h).
//! It must be at least the command-file duration plus the OS shutdown duration (product §4)
//! and at most 99.9 h, the longest the UPS can sleep (`@999`, tenths of an hour).

use std::fmt;

use time::{Date, Month, PrimitiveDateTime, Time, Weekday};

/// Most schedules one config may hold.
pub const MAX_SCHEDULES: usize = 32;
/// Longest window the UPS can sleep through: `@999` is 999 tenths of an hour.
pub const MAX_WINDOW_S: u64 = 999 * 360;

const DAY_S: u64 = 86_400;
const WEEK_S: u64 = 7 * DAY_S;

/// One scheduled shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Once {
        at: PrimitiveDateTime,
        wake: PrimitiveDateTime,
    },
    Daily {
        at: Time,
        wake: Time,
    },
    Weekly {
        day: Weekday,
        at: Time,
        wake_day: Weekday,
        wake: Time,
    },
}

fn parse_hhmm(s: &str) -> Result<Time, String> {
    let err = || {
        format!(
            "{} is not a time HH:MM (00:00 to 23:59)",
            super::ini::show(s)
        )
    };
    let b = s.as_bytes();
    if b.len() != 5 || b.get(2) != Some(&b':') {
        return Err(err());
    }
    let h = s
        .get(0..2)
        .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|x| x.parse::<u8>().ok());
    let m = s
        .get(3..5)
        .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|x| x.parse::<u8>().ok());
    match (h, m) {
        (Some(h), Some(m)) => Time::from_hms(h, m, 0).map_err(|_| err()),
        _ => Err(err()),
    }
}

fn parse_datetime(s: &str) -> Result<PrimitiveDateTime, String> {
    let err = || {
        format!(
            "{} is not a date and time YYYY-MM-DDTHH:MM",
            super::ini::show(s)
        )
    };
    let (date, time) = s.split_once(['T', 't']).ok_or_else(err)?;
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(err());
    };
    let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|c| c.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(err());
    }
    let y: i32 = y.parse().map_err(|_| err())?;
    if y < 2000 {
        return Err(format!("year {y} is before 2000"));
    }
    let m = m
        .parse::<u8>()
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(err)?;
    let d: u8 = d.parse().map_err(|_| err())?;
    let date = Date::from_calendar_date(y, m, d)
        .map_err(|_| format!("{} is not a valid calendar date", super::ini::show(s)))?;
    Ok(PrimitiveDateTime::new(date, parse_hhmm(time)?))
}

fn parse_day(s: &str) -> Result<Weekday, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => {
            return Err(format!(
                "{} is not a day (mon, tue, wed, thu, fri, sat, sun)",
                super::ini::show(s)
            ));
        }
    })
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

fn secs_of_day(t: Time) -> u64 {
    u64::from(t.hour()) * 3600 + u64::from(t.minute()) * 60
}

fn fmt_hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn fmt_datetime(dt: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        fmt_hhmm(dt.time())
    )
}

const GRAMMAR: &str = "expected 'once YYYY-MM-DDTHH:MM wake YYYY-MM-DDTHH:MM', 'daily HH:MM wake HH:MM' or 'weekly DAY HH:MM wake DAY HH:MM'";

impl Schedule {
    /// Parse the syntax only; window rules are checked by [`Schedule::check_window`].
    pub fn parse(value: &str) -> Result<Self, String> {
        let lower: Vec<String> = value
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let kw: Vec<&str> = lower.iter().map(String::as_str).collect();
        let s = match kw.as_slice() {
            ["once", at, "wake", wake] => {
                let (at, wake) = (parse_datetime(at)?, parse_datetime(wake)?);
                if wake <= at {
                    return Err("the wake time must be after the shutdown time".into());
                }
                Self::Once { at, wake }
            }
            ["daily", at, "wake", wake] => Self::Daily {
                at: parse_hhmm(at)?,
                wake: parse_hhmm(wake)?,
            },
            ["weekly", day, at, "wake", wake_day, wake] => Self::Weekly {
                day: parse_day(day)?,
                at: parse_hhmm(at)?,
                wake_day: parse_day(wake_day)?,
                wake: parse_hhmm(wake)?,
            },
            _ => return Err(GRAMMAR.into()),
        };
        if s.window_s() == 0 {
            return Err("the wake time equals the shutdown time".into());
        }
        Ok(s)
    }

    /// Seconds from the shutdown to the next wake time.
    pub fn window_s(&self) -> u64 {
        match *self {
            Self::Once { at, wake } => u64::try_from((wake - at).whole_seconds()).unwrap_or(0),
            Self::Daily { at, wake } => (secs_of_day(wake) + DAY_S - secs_of_day(at)) % DAY_S,
            Self::Weekly {
                day,
                at,
                wake_day,
                wake,
            } => {
                let from = u64::from(day.number_days_from_monday()) * DAY_S + secs_of_day(at);
                let to = u64::from(wake_day.number_days_from_monday()) * DAY_S + secs_of_day(wake);
                (to + WEEK_S - from) % WEEK_S
            }
        }
    }

    /// The window must leave time for the command file and the OS shutdown, and must not be
    /// longer than the UPS can sleep.
    pub fn check_window(&self, min_window_s: u64) -> Result<(), String> {
        let w = self.window_s();
        if w < min_window_s {
            return Err(format!(
                "the window of {w} s is shorter than command_file_duration_s + os_shutdown_duration_s = {min_window_s} s"
            ));
        }
        if w > MAX_WINDOW_S {
            return Err(format!(
                "the window of {w} s is longer than the UPS can sleep (99.9 hours = {MAX_WINDOW_S} s)"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Once { at, wake } => {
                write!(f, "once {} wake {}", fmt_datetime(at), fmt_datetime(wake))
            }
            Self::Daily { at, wake } => write!(f, "daily {} wake {}", fmt_hhmm(at), fmt_hhmm(wake)),
            Self::Weekly {
                day,
                at,
                wake_day,
                wake,
            } => write!(
                f,
                "weekly {} {} wake {} {}",
                day_name(day),
                fmt_hhmm(at),
                day_name(wake_day),
                fmt_hhmm(wake)
            ),
        }
    }
}

/// Rule for schedule names: they are INI keys, so strictly `[a-z0-9_]`, 1..=32 characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 32
        || !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("schedule names are 1 to 32 characters from a-z, 0-9 and '_'".into());
    }
    Ok(lower)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_all_forms_and_round_trips() {
        for (text, window) in [
            ("weekly sat 23:00 wake sun 07:00", 8 * 3600),
            ("weekly sun 23:00 wake mon 01:00", 2 * 3600),
            ("daily 01:00 wake 06:00", 5 * 3600),
            ("daily 23:00 wake 06:00", 7 * 3600),
            ("once 2026-12-24T22:00 wake 2026-12-25T07:00", 9 * 3600),
        ] {
            let s = Schedule::parse(text).unwrap();
            assert_eq!(s.window_s(), window, "{text}");
            assert_eq!(s.to_string(), text);
            assert_eq!(Schedule::parse(&s.to_string()).unwrap(), s);
        }
        let s = Schedule::parse("WEEKLY Saturday 23:00   WAKE sunday 07:00").unwrap();
        assert_eq!(s.to_string(), "weekly sat 23:00 wake sun 07:00");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "daily 1:00 wake 06:00",
            "daily 24:00 wake 06:00",
            "daily 01:60 wake 06:00",
            "daily 01:00 06:00",
            "daily 01:00 wake 01:00",
            "weekly sat 23:00 wake sat 23:00",
            "weekly xyz 23:00 wake sun 07:00",
            "once 2026-02-30T22:00 wake 2026-03-01T07:00",
            "once 2026-12-24T22:00 wake 2026-12-24T21:00",
            "once 1999-12-24T22:00 wake 1999-12-25T07:00",
            "once 2026-12-24 22:00 wake 2026-12-25 07:00",
            "once +2026-12-24T22:00 wake 2026-12-25T07:00",
            "hourly 01:00 wake 02:00",
            "daily +1:00 wake 06:00",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn window_rules() {
        let s = Schedule::parse("daily 01:00 wake 01:05").unwrap();
        assert!(s.check_window(300).is_ok());
        let e = s.check_window(301).unwrap_err();
        assert!(e.contains("shorter than"), "{e}");
        let long = Schedule::parse("weekly mon 00:00 wake sun 00:00").unwrap();
        assert!(
            long.check_window(0)
                .unwrap_err()
                .contains("longer than the UPS can sleep")
        );
    }

    #[test]
    fn names() {
        assert_eq!(check_name("Shutdown1").unwrap(), "shutdown1");
        for bad in ["", "a-b", "a b", "a=b", "[x]", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Schedule::parse(&s);
        }

        #[test]
        fn weekly_round_trip(d1 in 0u8..7, h1 in 0u8..24, m1 in 0u8..60, d2 in 0u8..7, h2 in 0u8..24, m2 in 0u8..60) {
            let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let text = format!("weekly {} {h1:02}:{m1:02} wake {} {h2:02}:{m2:02}", days[d1 as usize], days[d2 as usize]);
            if let Ok(s) = Schedule::parse(&text) {
                prop_assert_eq!(s.to_string(), text);
                prop_assert!(s.window_s() > 0 && s.window_s() < WEEK_S);
            }
        }
    }
}
