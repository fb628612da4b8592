//! The authentication state behind the one gate of the web API: account lockout, per-source
//! throttling, the single session and its CSRF token. Pure logic: every call takes `now`, so
//! tests (and the hidden test clock of `upsguard run`) control time.
//!
//! Rules (product §8.7–8.9 and the PowerChute lessons):
//! - every credential check (API login, form login, takeover, setup token, password change)
//!   goes through [`Auth::begin_attempt`] / [`Auth::finish_attempt`], so failures count the
//!   same wherever they happen and whatever the client does with the answer;
//! - 3 failures lock the account for 2 minutes; attempts during the lock are refused without
//!   checking anything and do not extend it, so a lock always ends on time;
//! - beside it, a token bucket per source address: a throttled source is refused before any
//!   check and its refused attempts count nowhere; a source that caused a lock cannot cause the
//!   next one for [`LOCK_BLAME`] (its failures are still refused, just not counted), so one
//!   noisy address cannot keep the administrator locked out;
//! - one session: random 256-bit id and CSRF token, idle timeout and absolute lifetime.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Failed credential checks before the account locks.
pub const MAX_FAILURES: u32 = 3;
/// How long the account stays locked.
pub const LOCK_DURATION: Duration = Duration::from_secs(120);
/// After causing a lock, a source's failures do not count toward the next one for this long.
pub const LOCK_BLAME: Duration = Duration::from_secs(600);
/// A session ends this long after login whatever the activity.
pub const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Credential checks a source may burst.
pub const BUCKET_CAPACITY: f64 = 10.0;
/// One more credential check per this many seconds.
pub const BUCKET_REFILL_S: f64 = 6.0;
/// Sources remembered at most (oldest full buckets are dropped first).
const MAX_SOURCES: usize = 4096;
/// Name of the session cookie.
pub const COOKIE_NAME: &str = "ug_session";
/// Request header the UI sets on automatic refreshes (dashboard polling): such requests are
/// authenticated as usual but do not count as activity for the idle timeout.
pub const BACKGROUND_HEADER: &str = "x-upsguard-background";

/// Why a credential check was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked; seconds until it unlocks.
    Locked { retry_after_s: u64 },
    /// This source is sending too many attempts; seconds until the next is accepted.
    Throttled { retry_after_s: u64 },
}

/// What a finished failed attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Counted; this many failures so far.
    Counted(u32),
    /// This failure locked the account.
    LockedNow,
    /// Not counted: the source caused the previous lock (still refused).
    NotCounted,
}

/// A permission to check one credential; give it back to [`Auth::finish_attempt`].
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    source: IpAddr,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The one session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    pub username: String,
    pub created: Instant,
    pub last_seen: Instant,
}

/// Why a request carries no valid session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionProblem {
    Missing,
    Expired,
}

#[derive(Debug)]
pub struct Auth {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    /// Source that caused the last lock, and until when it is not counted.
    blamed: Option<(IpAddr, Instant)>,
    buckets: HashMap<IpAddr, Bucket>,
    session: Option<Session>,
    idle_timeout: Duration,
}

/// 32 random bytes as lower-case hex.
pub fn random_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Auth {
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            locked_until: None,
            blamed: None,
            buckets: HashMap::new(),
            session: None,
            idle_timeout,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// `[Web] idle_timeout_min` changed: applies to the live session too.
    pub fn set_idle_timeout(&mut self, d: Duration) {
        self.idle_timeout = d;
    }

    /// Seconds left on the account lock, if locked.
    pub fn lock_remaining(&mut self, now: Instant) -> Option<u64> {
        match self.locked_until {
            Some(t) if now < t => Some(secs_ceil(t - now).max(1)),
            Some(_) => {
                self.locked_until = None;
                None
            }
            None => None,
        }
    }

    fn take_token(&mut self, source: IpAddr, now: Instant) -> Result<(), u64> {
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            // Forget the sources that have been quiet longest; they would be full anyway.
            let mut ages: Vec<(IpAddr, Instant)> =
                self.buckets.iter().map(|(k, b)| (*k, b.last)).collect();
            ages.sort_by_key(|(_, t)| *t);
            for (ip, _) in ages.into_iter().take(MAX_SOURCES / 4) {
                self.buckets.remove(&ip);
            }
        }
        let b = self.buckets.entry(source).or_insert(Bucket {
            tokens: BUCKET_CAPACITY,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed / BUCKET_REFILL_S).min(BUCKET_CAPACITY);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            // Whole seconds until one token is there, at least 1.
            let wait = ((1.0 - b.tokens) * BUCKET_REFILL_S).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }

    /// May `source` check a credential now? Order matters: the per-source throttle first (a
    /// throttled source costs nothing and counts nowhere), then the account lock, then the
    /// in-flight cap (parallel attempts cannot exceed the failure budget).
    pub fn begin_attempt(&mut self, source: IpAddr, now: Instant) -> Result<Attempt, Refusal> {
        self.take_token(source, now)
            .map_err(|s| Refusal::Throttled { retry_after_s: s })?;
        if let Some(s) = self.lock_remaining(now) {
            return Err(Refusal::Locked { retry_after_s: s });
        }
        if self.failures + self.in_flight >= MAX_FAILURES {
            return Err(Refusal::Throttled { retry_after_s: 1 });
        }
        self.in_flight += 1;
        Ok(Attempt { source })
    }

    /// Record the result of a check begun with [`Self::begin_attempt`].
    pub fn finish_attempt(&mut self, a: Attempt, ok: bool, now: Instant) -> Option<FailOutcome> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if ok {
            self.failures = 0;
            return None;
        }
        if let Some((ip, until)) = self.blamed {
            if now >= until {
                self.blamed = None;
            } else if ip == a.source {
                return Some(FailOutcome::NotCounted);
            }
        }
        self.failures += 1;
        if self.failures >= MAX_FAILURES {
            self.failures = 0;
            // checked: a test clock far in the future must not panic the server.
            let until = now.checked_add(LOCK_DURATION).unwrap_or(now);
            self.locked_until = Some(until);
            self.blamed = Some((a.source, until.checked_add(LOCK_BLAME).unwrap_or(until)));
            return Some(FailOutcome::LockedNow);
        }
        Some(FailOutcome::Counted(self.failures))
    }

    /// The live session, if any (expired ones are dropped).
    pub fn active_session(&mut self, now: Instant) -> Option<&Session> {
        if let Some(s) = &self.session
            && (now.saturating_duration_since(s.last_seen) >= self.idle_timeout
                || now.saturating_duration_since(s.created) >= ABSOLUTE_LIFETIME)
        {
            self.session = None;
        }
        self.session.as_ref()
    }

    /// Whether `id` is the live session (constant-time compare).
    pub fn is_current(&mut self, id: &str, now: Instant) -> bool {
        self.active_session(now).is_some_and(|s| ct_eq(&s.id, id))
    }

    /// Start a new session (a fresh id and CSRF token: rotation at login), replacing any.
    pub fn login(&mut self, username: &str, now: Instant) -> Result<Session, String> {
        let s = Session {
            id: random_token()?,
            csrf: random_token()?,
            username: username.to_string(),
            created: now,
            last_seen: now,
        };
        self.session = Some(s.clone());
        Ok(s)
    }

    /// Check a session id and touch it. `Err(Expired)` when the id was the session that just
    /// timed out (so the client can say so).
    pub fn touch(&mut self, id: &str, now: Instant) -> Result<Session, SessionProblem> {
        self.check(id, now, true)
    }

    /// Check a session id; `activity` says whether the request counts against the idle
    /// timeout. A dashboard's automatic polling is not activity, or an unattended browser
    /// would keep a session alive for its whole absolute lifetime.
    pub fn check(
        &mut self,
        id: &str,
        now: Instant,
        activity: bool,
    ) -> Result<Session, SessionProblem> {
        let had = self.session.as_ref().is_some_and(|s| ct_eq(&s.id, id));
        match self.active_session(now) {
            Some(s) if ct_eq(&s.id, id) => {}
            _ if had => return Err(SessionProblem::Expired),
            _ => return Err(SessionProblem::Missing),
        }
        let s = self.session.as_mut().ok_or(SessionProblem::Missing)?;
        if activity {
            s.last_seen = now;
        }
        Ok(s.clone())
    }

    /// End the session with this id.
    pub fn logout(&mut self, id: &str) -> bool {
        if self.session.as_ref().is_some_and(|s| ct_eq(&s.id, id)) {
            self.session = None;
            true
        } else {
            false
        }
    }
}

/// Whether a CSRF header value matches the session's token (constant time).
pub fn csrf_ok(session: &Session, header: Option<&str>) -> bool {
    header.is_some_and(|h| ct_eq(h.trim(), &session.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fail(a: &mut Auth, src: &str, now: Instant) -> Result<Option<FailOutcome>, Refusal> {
        let t = a.begin_attempt(ip(src), now)?;
        Ok(a.finish_attempt(t, false, now))
    }

    #[test]
    fn three_failures_lock_for_two_minutes_and_the_lock_ends_on_time() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        assert_eq!(
            fail(&mut a, "192.0.2.1", t0),
            Ok(Some(FailOutcome::Counted(1)))
        );
        assert_eq!(
            fail(&mut a, "192.0.2.2", t0),
            Ok(Some(FailOutcome::Counted(2)))
        );
        assert_eq!(
            fail(&mut a, "192.0.2.1", t0),
            Ok(Some(FailOutcome::LockedNow))
        );
        // Refused during the lock from anywhere, and refusals do not extend it.
        for k in 0..5 {
            let now = t0 + Duration::from_secs(100 + k);
            assert!(matches!(
                a.begin_attempt(ip("192.0.2.9"), now),
                Err(Refusal::Locked { .. })
            ));
        }
        let t = a
            .begin_attempt(ip("192.0.2.9"), t0 + LOCK_DURATION)
            .unwrap();
        assert_eq!(a.finish_attempt(t, true, t0 + LOCK_DURATION), None);
    }

    #[test]
    fn a_source_that_caused_a_lock_cannot_cause_the_next() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        for _ in 0..3 {
            let _ = fail(&mut a, "198.51.100.7", t0);
        }
        let after = t0 + LOCK_DURATION + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(
                fail(&mut a, "198.51.100.7", after),
                Ok(Some(FailOutcome::NotCounted))
            );
        }
        assert!(a.lock_remaining(after).is_none());
    }

    #[test]
    fn a_flooding_source_is_throttled_but_others_are_not() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let mut throttled = 0;
        for _ in 0..50 {
            if let Ok(t) = a.begin_attempt(ip("203.0.113.5"), t0) {
                a.finish_attempt(t, true, t0);
            } else {
                throttled += 1;
            }
        }
        assert_eq!(throttled, 40);
        assert!(a.begin_attempt(ip("203.0.113.6"), t0).is_ok());
    }

    #[test]
    fn background_polling_does_not_keep_a_session_alive() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let s = a.login("admin1", t0).unwrap();
        let mut t = t0;
        for _ in 0..449 {
            t += Duration::from_secs(2);
            assert!(a.check(&s.id, t, false).is_ok());
        }
        t += Duration::from_secs(2);
        assert_eq!(
            a.check(&s.id, t, false).unwrap_err(),
            SessionProblem::Expired
        );
    }

    #[test]
    fn sessions_rotate_expire_and_are_single() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let s1 = a.login("admin1", t0).unwrap();
        assert_eq!(s1.id.len(), 64);
        let s2 = a.login("admin1", t0).unwrap();
        assert_ne!(s1.id, s2.id);
        assert_ne!(s1.csrf, s2.csrf);
        assert_eq!(a.touch(&s1.id, t0).unwrap_err(), SessionProblem::Missing);
        assert!(a.touch(&s2.id, t0 + Duration::from_secs(899)).is_ok());
        let late = t0 + Duration::from_secs(899 + 900);
        assert_eq!(a.touch(&s2.id, late).unwrap_err(), SessionProblem::Expired);
        assert!(a.active_session(late).is_none());
        assert!(csrf_ok(&s2, Some(&s2.csrf)));
        // The absolute lifetime ends even a busy session.
        let s3 = a.login("admin1", t0).unwrap();
        let mut t = t0;
        while t < t0 + ABSOLUTE_LIFETIME - Duration::from_secs(600) {
            t += Duration::from_secs(600);
            assert!(a.touch(&s3.id, t).is_ok());
        }
        t += Duration::from_secs(600);
        assert_eq!(a.touch(&s3.id, t).unwrap_err(), SessionProblem::Expired);
        assert!(!csrf_ok(&s2, Some("x")));
        assert!(!csrf_ok(&s2, None));
    }
}
