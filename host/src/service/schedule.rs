//! When the next scheduled shutdown fires.

use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::config::Schedule;

/// The next time `s` fires strictly after `now` (in the host's local offset), and how long
/// the UPS should then stay asleep before turning back on.
pub fn next_fire(
    s: &Schedule,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Option<(OffsetDateTime, Duration)> {
    let local = now.to_offset(offset);
    let window = Duration::seconds(i64::try_from(s.window_s()).ok()?);
    let fire = match *s {
        Schedule::Once { at, .. } => {
            let t = at.assume_offset(offset);
            (t > now).then_some(t)?
        }
        Schedule::Daily { at, .. } => {
            let today = PrimitiveDateTime::new(local.date(), at).assume_offset(offset);
            if today > now {
                today
            } else {
                today + Duration::days(1)
            }
        }
        Schedule::Weekly { day, at, .. } => {
            let ahead = (i64::from(day.number_days_from_monday())
                - i64::from(local.weekday().number_days_from_monday()))
            .rem_euclid(7);
            let t = PrimitiveDateTime::new(local.date(), at).assume_offset(offset)
                + Duration::days(ahead);
            if t > now { t } else { t + Duration::weeks(1) }
        }
    };
    Some((fire, window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn daily_and_weekly_roll_forward() {
        let s = Schedule::parse("daily 01:00 wake 06:00").unwrap();
        let now = datetime!(2026-11-27 12:00 UTC);
        let (t, w) = next_fire(&s, now, UtcOffset::UTC).unwrap();
        assert_eq!(t, datetime!(2026-11-28 01:00 UTC));
        assert_eq!(w, Duration::hours(5));
        // 2026-11-27 is a Friday.
        let s = Schedule::parse("weekly sat 23:00 wake sun 07:00").unwrap();
        let (t, w) = next_fire(&s, now, UtcOffset::UTC).unwrap();
        assert_eq!(t, datetime!(2026-11-28 23:00 UTC));
        assert_eq!(w, Duration::hours(8));
        let s = Schedule::parse("weekly fri 11:00 wake fri 12:00").unwrap();
        let (t, _) = next_fire(&s, now, UtcOffset::UTC).unwrap();
        assert_eq!(t, datetime!(2026-12-04 11:00 UTC));
    }

    #[test]
    fn once_in_the_past_never_fires() {
        let s = Schedule::parse("once 2026-01-01T10:00 wake 2026-01-01T12:00").unwrap();
        assert!(next_fire(&s, datetime!(2026-11-27 12:00 UTC), UtcOffset::UTC).is_none());
    }
}
