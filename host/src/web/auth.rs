//! The authentication state behind the one gate of the web API: account lockout, per-source
//! throttling, the single session and its CSRF token. Pure logic: every call takes `now`, so
//! tests (and the hidden test clock of `upsguard run`) control time.
//!
//! Every credential check (API login, form login, takeover, setup token, password change)
//! goes through [`Auth::begin_attempt`] / [`Auth::finish_attempt`], so failures count the same
//! wherever they happen and whatever the client does with the answer.
//!
//! # Lockout: what it must guarantee
//!
//! Product §8.7 promises "3 failed logins → the account is locked for 2 minutes", and the
//! PowerChute lessons add that unauthenticated noise must not lock the real administrator out
//! indefinitely. Three properties, against any mix of attacking addresses:
//!
//! - (a) **bounded guessing**: at most [`MAX_FAILURES`] failed checks per lock cycle, and a cycle
//!   lasts at least [`LOCK_DURATION`]; so ≈3 per 2 minutes in a steady attack, never more than
//!   4 in any 2-minute window (the 4th is the lock's one grace check, below);
//! - (b) **bounded denial**: an administrator on a clean address (no failure in
//!   [`CLEAN_AFTER`], or a success since) gets a password check within one lock period
//!   (≤ 2 min) while any number of already-seen addresses keep failing in turns; each *new*
//!   address an attacker spends can delay them by at most one more lock period;
//! - (c) **bounded memory**: at most [`MAX_SOURCES`] tracked sources.
//!
//! # How
//!
//! 1. **Failures always count.** Every failed check adds to the account's counter whoever
//!    sent it; 3 lock the account for [`LOCK_DURATION`]. (The previous design stopped counting
//!    the failures of the address that caused the last lock for 10 minutes: that address then
//!    had ~100 free password checks per 10 minutes and the account never locked.)
//! 2. **A locked account checks no password**, from any source, with one exception: the lock's
//!    single *grace check*, granted to the first clean source that asks. Refused attempts are
//!    not counted and do not extend the lock, so a lock always ends on time. A failed grace
//!    check is counted towards the next lock (carried), so a lock cycle still holds at most 3
//!    failures; its source waits out the lock like the others.
//! 3. **Per-source throttling beside the account lock.** Each source (an IPv4 address, or an
//!    IPv6 /64, since one host holds a whole /64) has a token bucket ([`BUCKET_CAPACITY`],
//!    one token per [`BUCKET_REFILL_S`] s), taken before anything else: a throttled source costs
//!    nothing and counts nowhere. Every source that contributed a failure to a lock gets a
//!    *strike* and a penalty during which its own attempts are refused: the first strike lasts
//!    exactly the lock (an administrator's own three typos cost two minutes, as promised), each
//!    further strike within [`STRIKE_MEMORY`] doubles it, up to [`MAX_PENALTY`].
//!
//! Why that defeats the two known attacks:
//!
//! - *One address hammering* gets 3 checks, then is refused for the lock, then 3 more, then 4
//!   minutes, 8, … — (a) holds and the account does lock each time.
//! - *Addresses taking turns* (A locks, B waits for the lock to end and locks again, …) used to
//!   keep the administrator out forever. Now every address that failed is not clean, so during
//!   each lock the grace check is the administrator's: they get in within one lock period.
//!   To take the grace check from them the attacker must spend a clean address per lock, and
//!   that address is then not clean for [`CLEAN_AFTER`]; with a botnet of fresh addresses the
//!   administrator may still have to wait, but (a) still holds — no design can tell the
//!   administrator's first packet from a fresh attacker's.
//! - Memory: sources are kept in one map of at most [`MAX_SOURCES`]. When it is full, sources
//!   with nothing worth remembering (no penalty, no recent failure or strike) are forgotten
//!   first, oldest first; if every tracked source is dirty, the oldest are forgotten anyway and
//!   grace checks stop for [`CLEAN_AFTER`], because a forgotten dirty source would look clean.
//!   Strikes and penalties reset on a successful check from that source.
//!
//! The single session: random 256-bit id and CSRF token, idle timeout and absolute lifetime.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Failed credential checks before the account locks.
pub const MAX_FAILURES: u32 = 3;
/// How long the account stays locked.
pub const LOCK_DURATION: Duration = Duration::from_secs(120);
/// Longest per-source penalty after repeated locks.
pub const MAX_PENALTY: Duration = Duration::from_secs(3600);
/// A source's strikes are forgotten this long after its last one.
pub const STRIKE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// A source with a failure this recent gets no grace check during a lock.
pub const CLEAN_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A session ends this long after login whatever the activity.
pub const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Credential checks a source may burst.
pub const BUCKET_CAPACITY: f64 = 10.0;
/// One more credential check per this many seconds.
pub const BUCKET_REFILL_S: f64 = 6.0;
/// Sources remembered at most (see the module doc for what is forgotten first).
pub const MAX_SOURCES: usize = 4096;
/// IPv6 sources are grouped by this prefix length (one host or LAN holds a whole /64).
const IPV6_SOURCE_PREFIX: u32 = 64;
/// Name of the session cookie.
pub const COOKIE_NAME: &str = "ug_session";
/// Request header the UI sets on automatic refreshes (dashboard polling): such requests are
/// authenticated as usual but do not count as activity for the idle timeout.
pub const BACKGROUND_HEADER: &str = "x-upsguard-background";

/// Why a credential check was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked; seconds until this source may try again.
    Locked { retry_after_s: u64 },
    /// This source is sending too many attempts, or is serving a penalty for repeated locks;
    /// seconds until the next is accepted.
    Throttled { retry_after_s: u64 },
}

/// What a finished failed attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Counted; this many failures so far towards the next lock.
    Counted(u32),
    /// This failure locked the account.
    LockedNow,
}

/// A permission to check one credential; give it back to [`Auth::finish_attempt`].
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    /// The source key (see [`source_key`]).
    source: IpAddr,
    /// The lock's grace check.
    grace: bool,
}

/// What is remembered about one source.
#[derive(Debug, Clone, Copy)]
struct SourceState {
    tokens: f64,
    /// Last attempt (bucket refill and eviction order).
    last: Instant,
    strikes: u32,
    last_strike: Option<Instant>,
    penalty_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl SourceState {
    fn new(now: Instant) -> Self {
        Self {
            tokens: BUCKET_CAPACITY,
            last: now,
            strikes: 0,
            last_strike: None,
            penalty_until: None,
            last_failure: None,
        }
    }

    fn penalised(&self, now: Instant) -> Option<Duration> {
        self.penalty_until
            .filter(|p| now < *p)
            .map(|p| p.saturating_duration_since(now))
    }

    fn clean(&self, now: Instant) -> bool {
        self.last_failure
            .is_none_or(|t| now.saturating_duration_since(t) >= CLEAN_AFTER)
    }

    /// Nothing here that an attacker would gain from us forgetting.
    fn forgettable(&self, now: Instant) -> bool {
        self.penalised(now).is_none()
            && self.clean(now)
            && self
                .last_strike
                .is_none_or(|t| now.saturating_duration_since(t) >= STRIKE_MEMORY)
    }
}

#[derive(Debug, Clone, Copy)]
struct Lock {
    until: Instant,
    grace_used: bool,
}

/// The key a source is tracked under: IPv4 (also when IPv4-mapped), or the IPv6 /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_SOURCE_PREFIX);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// `LOCK_DURATION × 2^(strikes−1)`, at most [`MAX_PENALTY`].
fn penalty_for(strikes: u32) -> Duration {
    let doublings = strikes.saturating_sub(1).min(16);
    LOCK_DURATION
        .checked_mul(1u32 << doublings)
        .unwrap_or(MAX_PENALTY)
        .min(MAX_PENALTY)
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
    /// Failures towards the next lock, and the sources they came from (≤ MAX_FAILURES).
    failures: u32,
    contributors: Vec<IpAddr>,
    in_flight: u32,
    lock: Option<Lock>,
    sources: HashMap<IpAddr, SourceState>,
    /// Dirty sources had to be forgotten: no grace checks until then.
    no_grace_until: Option<Instant>,
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
            contributors: Vec::new(),
            in_flight: 0,
            lock: None,
            sources: HashMap::new(),
            no_grace_until: None,
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
        match self.lock {
            Some(l) if now < l.until => Some(secs_ceil(l.until - now).max(1)),
            Some(_) => {
                self.lock = None;
                None
            }
            None => None,
        }
    }

    /// How many sources are remembered (bounded by [`MAX_SOURCES`]).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// The state of `key`, created if new; makes room first when the map is full.
    fn source(&mut self, key: IpAddr, now: Instant) -> &mut SourceState {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&key) {
            self.make_room(now);
        }
        self.sources
            .entry(key)
            .or_insert_with(|| SourceState::new(now))
    }

    /// Forget a quarter of the map: sources with nothing worth remembering first, oldest
    /// first; if there are not enough, the oldest dirty ones too, and then no grace checks for
    /// [`CLEAN_AFTER`] (a forgotten dirty source would look clean).
    fn make_room(&mut self, now: Instant) {
        let quota = (MAX_SOURCES / 4).max(1);
        let mut order: Vec<(bool, Instant, IpAddr)> = self
            .sources
            .iter()
            .map(|(k, s)| (!s.forgettable(now), s.last, *k))
            .collect();
        // Forgettable (false) before dirty (true), then oldest first.
        order.sort_unstable_by_key(|(dirty, last, _)| (*dirty, *last));
        let mut dropped_dirty = false;
        for (dirty, _, k) in order.into_iter().take(quota) {
            dropped_dirty |= dirty;
            self.sources.remove(&k);
        }
        if dropped_dirty {
            self.no_grace_until = Some(now.checked_add(CLEAN_AFTER).unwrap_or(now));
        }
    }

    fn take_token(s: &mut SourceState, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed / BUCKET_REFILL_S).min(BUCKET_CAPACITY);
        s.last = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            // Whole seconds until one token is there, at least 1.
            let wait = ((1.0 - s.tokens) * BUCKET_REFILL_S).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }

    /// May `source` check a credential now? Order matters: the per-source bucket first (a
    /// throttled source costs nothing and counts nowhere), then the source's own penalty, then
    /// the account lock (only its one grace check, for a clean source), then the in-flight cap
    /// (parallel attempts cannot exceed the failure budget).
    pub fn begin_attempt(&mut self, source: IpAddr, now: Instant) -> Result<Attempt, Refusal> {
        let key = source_key(source);
        let lock_left = self.lock_remaining(now);
        let grace_allowed = self.no_grace_until.is_none_or(|t| now >= t);
        let s = self.source(key, now);
        Self::take_token(s, now).map_err(|w| Refusal::Throttled { retry_after_s: w })?;
        if let Some(p) = s.penalised(now) {
            let p = secs_ceil(p).max(1);
            return Err(match lock_left {
                Some(l) => Refusal::Locked {
                    retry_after_s: l.max(p),
                },
                None => Refusal::Throttled { retry_after_s: p },
            });
        }
        let clean = s.clean(now);
        if let Some(left) = lock_left {
            if let Some(l) = self.lock.as_mut()
                && !l.grace_used
                && clean
                && grace_allowed
            {
                l.grace_used = true;
                self.in_flight += 1;
                return Ok(Attempt {
                    source: key,
                    grace: true,
                });
            }
            return Err(Refusal::Locked {
                retry_after_s: left,
            });
        }
        if self.failures + self.in_flight >= MAX_FAILURES {
            return Err(Refusal::Throttled { retry_after_s: 1 });
        }
        self.in_flight += 1;
        Ok(Attempt {
            source: key,
            grace: false,
        })
    }

    /// Record the result of a check begun with [`Self::begin_attempt`]. Every failure counts.
    pub fn finish_attempt(&mut self, a: Attempt, ok: bool, now: Instant) -> Option<FailOutcome> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if ok {
            self.failures = 0;
            self.contributors.clear();
            // It knows the password: whatever it did before is forgiven.
            if let Some(s) = self.sources.get_mut(&a.source) {
                s.strikes = 0;
                s.last_strike = None;
                s.penalty_until = None;
                s.last_failure = None;
            }
            return None;
        }
        let lock_until = self.lock.filter(|l| now < l.until).map(|l| l.until);
        let s = self.source(a.source, now);
        s.last_failure = Some(now);
        if a.grace
            && let Some(until) = lock_until
        {
            // The grace check failed: this source waits out the lock like the others.
            s.penalty_until = Some(s.penalty_until.map_or(until, |p| p.max(until)));
        }
        self.failures += 1;
        if !self.contributors.contains(&a.source) {
            self.contributors.push(a.source);
        }
        if self.failures >= MAX_FAILURES && lock_until.is_none() {
            self.lock_now(now);
            return Some(FailOutcome::LockedNow);
        }
        Some(FailOutcome::Counted(self.failures))
    }

    /// Lock the account and give every contributing source a strike and its penalty.
    fn lock_now(&mut self, now: Instant) {
        // checked: a test clock far in the future must not panic the server.
        let until = now.checked_add(LOCK_DURATION).unwrap_or(now);
        self.lock = Some(Lock {
            until,
            grace_used: false,
        });
        self.failures = 0;
        for key in std::mem::take(&mut self.contributors) {
            let s = self.source(key, now);
            if s.last_strike
                .is_some_and(|t| now.saturating_duration_since(t) >= STRIKE_MEMORY)
            {
                s.strikes = 0;
            }
            s.strikes = s.strikes.saturating_add(1);
            s.last_strike = Some(now);
            let end = now.checked_add(penalty_for(s.strikes)).unwrap_or(until);
            s.penalty_until = Some(s.penalty_until.map_or(end, |p| p.max(end)));
        }
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

    const S: Duration = Duration::from_secs(1);

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
        // Refused during the lock — the contributors, and after the one grace check every
        // other source too — and refusals do not extend it.
        for k in 0..5 {
            let now = t0 + Duration::from_secs(100 + k);
            for src in ["192.0.2.1", "192.0.2.2"] {
                assert!(matches!(
                    a.begin_attempt(ip(src), now),
                    Err(Refusal::Locked { .. })
                ));
            }
        }
        // The grace check (design change: a clean source gets one check per lock, so noise
        // cannot keep the administrator out); it failed, so it is carried to the next lock.
        assert_eq!(
            fail(&mut a, "192.0.2.9", t0 + 110 * S),
            Ok(Some(FailOutcome::Counted(1)))
        );
        assert_eq!(
            a.begin_attempt(ip("192.0.2.10"), t0 + 111 * S).unwrap_err(),
            Refusal::Locked { retry_after_s: 9 }
        );
        assert_eq!(a.lock_remaining(t0 + 119 * S), Some(1));
        // On time, for everyone (a first strike's penalty is exactly the lock).
        for src in ["192.0.2.1", "192.0.2.9"] {
            let t = a.begin_attempt(ip(src), t0 + LOCK_DURATION).unwrap();
            assert_eq!(a.finish_attempt(t, true, t0 + LOCK_DURATION), None);
        }
    }

    /// Issue 7, lockout bypass: the address that caused a lock used to be not counted for 10
    /// minutes (≈100 free checks). Now its failures count and lock the account again.
    #[test]
    fn the_source_that_caused_a_lock_still_counts() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        for _ in 0..3 {
            let _ = fail(&mut a, "198.51.100.7", t0);
        }
        let after = t0 + LOCK_DURATION;
        assert_eq!(
            fail(&mut a, "198.51.100.7", after),
            Ok(Some(FailOutcome::Counted(1)))
        );
        assert_eq!(
            fail(&mut a, "198.51.100.7", after),
            Ok(Some(FailOutcome::Counted(2)))
        );
        assert_eq!(
            fail(&mut a, "198.51.100.7", after),
            Ok(Some(FailOutcome::LockedNow))
        );
        assert!(a.lock_remaining(after).is_some());
    }

    /// Seconds since `t0`, for assertion messages.
    fn at(times: &[Instant], t0: Instant) -> Vec<u64> {
        times
            .iter()
            .map(|t| t.duration_since(t0).as_secs())
            .collect()
    }

    /// Most checks begun in any `window` (sorted times).
    fn max_in_window(times: &[Instant], window: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// A patient attacker: tries as often as it is allowed, waiting exactly the Retry-After
    /// it was given (so it never wastes its bucket on refusals). Returns the checks it got.
    struct Attacker {
        src: IpAddr,
        next: Instant,
    }

    impl Attacker {
        fn new(src: &str, t0: Instant) -> Self {
            Self {
                src: ip(src),
                next: t0,
            }
        }

        fn act(&mut self, a: &mut Auth, now: Instant, checks: &mut Vec<Instant>) -> u32 {
            let mut locks = 0;
            while now >= self.next {
                match a.begin_attempt(self.src, now) {
                    Ok(t) => {
                        checks.push(now);
                        if a.finish_attempt(t, false, now) == Some(FailOutcome::LockedNow) {
                            locks += 1;
                        }
                    }
                    Err(
                        Refusal::Locked { retry_after_s } | Refusal::Throttled { retry_after_s },
                    ) => {
                        self.next = now + Duration::from_secs(retry_after_s);
                    }
                }
            }
            locks
        }
    }

    /// Issue 7, lockout bypass scripted: one address trying as hard as it may for 15 minutes.
    #[test]
    fn one_address_hammering_gets_at_most_3_checks_per_lock() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let mut checks = Vec::new();
        let mut locks = 0;
        let mut x = Attacker::new("203.0.113.66", t0);
        for k in 0..15 * 60 {
            locks += x.act(&mut a, t0 + k * S, &mut checks);
        }
        let shown = at(&checks, t0);
        assert!(max_in_window(&checks, LOCK_DURATION) <= 3, "{shown:?}");
        // Locks at 0, 2, 6 and 14 min (penalties 2, 4, 8 min): the account locks every time.
        assert_eq!(locks, 4, "{shown:?}");
        assert_eq!(checks.len(), 12, "{shown:?}");
    }

    /// Issue 7, lockout denial: two addresses taking turns kept the account locked forever.
    /// Now a third, clean address gets its check within one lock period.
    #[test]
    fn addresses_taking_turns_cannot_keep_the_administrator_out() {
        for admin_at in [0u32, 1, 5, 59, 119, 120, 121, 300, 601] {
            let t0 = Instant::now();
            let mut a = Auth::new(Duration::from_secs(900));
            let mut checks = Vec::new();
            let mut admin_in = None;
            let mut x = Attacker::new("198.51.100.1", t0);
            let mut y = Attacker::new("198.51.100.2", t0);
            for k in 0..20 * 60 {
                let now = t0 + k * S;
                // The attackers act first in every second.
                x.act(&mut a, now, &mut checks);
                y.act(&mut a, now, &mut checks);
                // The administrator retries every 5 s from a clean address.
                if k >= admin_at
                    && (k - admin_at) % 5 == 0
                    && let Ok(t) = a.begin_attempt(ip("192.0.2.50"), now)
                {
                    assert_eq!(a.finish_attempt(t, true, now), None);
                    admin_in = Some(k - admin_at);
                    break;
                }
            }
            let waited = admin_in.expect("the administrator never got in");
            assert!(
                waited <= 120 + 5,
                "admin from {admin_at} s waited {waited} s"
            );
            assert!(
                max_in_window(&checks, LOCK_DURATION) <= 4,
                "{:?}",
                at(&checks, t0)
            );
        }
    }

    /// (a) from any number of addresses: a fresh address for every attempt.
    #[test]
    fn fresh_addresses_cannot_exceed_the_guess_budget() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let mut checks = Vec::new();
        let mut n: u32 = 0;
        for k in 0..30 * 60 {
            let now = t0 + k * S;
            for _ in 0..5 {
                n += 1;
                let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
                if let Ok(t) = a.begin_attempt(src, now) {
                    checks.push(now);
                    let _ = a.finish_attempt(t, false, now);
                }
            }
        }
        // 3 per lock cycle (the grace failure is carried), ≤ 4 in any 2-minute window.
        assert!(max_in_window(&checks, LOCK_DURATION) <= 4);
        assert!(checks.len() <= 3 * 15 + 3, "{}", checks.len());
        // (c) 9000 sources seen, the map stays bounded.
        assert!(
            a.tracked_sources() <= MAX_SOURCES,
            "{}",
            a.tracked_sources()
        );
    }

    #[test]
    fn repeat_offenders_wait_longer_and_are_forgiven_later() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        let src = "203.0.113.9";
        let mut now = t0;
        let mut expected = vec![];
        for strike in 1..=8u32 {
            for _ in 0..3 {
                let _ = fail(&mut a, src, now);
            }
            let p = match a.begin_attempt(ip(src), now + S) {
                Err(Refusal::Locked { retry_after_s }) => retry_after_s,
                other => panic!("{other:?}"),
            };
            expected.push((strike, p));
            // Wait it out (and let the bucket refill).
            now += Duration::from_secs(p + 60);
        }
        let secs: Vec<u64> = expected.iter().map(|(_, p)| *p).collect();
        assert_eq!(secs, [119, 239, 479, 959, 1919, 3599, 3599, 3599]);
        // A day later the strikes are gone: a first strike again.
        now += STRIKE_MEMORY;
        for _ in 0..3 {
            let _ = fail(&mut a, src, now);
        }
        assert_eq!(
            a.begin_attempt(ip(src), now + S).unwrap_err(),
            Refusal::Locked { retry_after_s: 119 }
        );
    }

    #[test]
    fn a_success_forgives_the_source() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        for _ in 0..3 {
            let _ = fail(&mut a, "192.0.2.7", t0);
        }
        let t = a
            .begin_attempt(ip("192.0.2.7"), t0 + LOCK_DURATION)
            .unwrap();
        assert_eq!(a.finish_attempt(t, true, t0 + LOCK_DURATION), None);
        // Clean again: it gets the next lock's grace check.
        let t1 = t0 + 2 * LOCK_DURATION;
        for _ in 0..3 {
            let _ = fail(&mut a, "198.51.100.3", t1);
        }
        assert!(a.begin_attempt(ip("192.0.2.7"), t1 + S).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_one_source() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        for i in 0..3 {
            let _ = fail(&mut a, &format!("2001:db8:1:2::{i:x}"), t0);
        }
        // Another address in the same /64 is the same (locked-out) source, not a clean one.
        assert!(matches!(
            a.begin_attempt(ip("2001:db8:1:2:ffff::1"), t0 + S),
            Err(Refusal::Locked { .. })
        ));
        assert!(a.begin_attempt(ip("2001:db8:1:3::1"), t0 + S).is_ok());
        assert_eq!(
            source_key(ip("::ffff:192.0.2.1")),
            source_key(ip("192.0.2.1"))
        );
    }

    #[test]
    fn a_map_full_of_dirty_sources_stops_grace_checks() {
        let t0 = Instant::now();
        let mut a = Auth::new(Duration::from_secs(900));
        // Every tracked source has failed; one more source makes room by forgetting dirty
        // ones, so a "clean" look can no longer be trusted.
        let mut now = t0;
        for n in 0..=MAX_SOURCES as u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let s = a.source(source_key(src), now);
            s.last_failure = Some(now);
            now += Duration::from_millis(1);
        }
        assert!(a.tracked_sources() <= MAX_SOURCES);
        for _ in 0..3 {
            let _ = fail(&mut a, "198.51.100.1", now);
        }
        assert!(matches!(
            a.begin_attempt(ip("192.0.2.77"), now + S),
            Err(Refusal::Locked { .. })
        ));
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
