//! The service's monotonic clock, expressed in the core's millisecond `Instant`.

use std::time::Duration;

use upsguard_core::time::Instant;

/// Maps `std::time::Instant` onto the core's `Instant` (milliseconds since service start).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        let ms = self.origin.elapsed().as_millis();
        Instant(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// How long until `deadline` (zero if it has passed).
    pub fn until(&self, deadline: Instant) -> Duration {
        Duration::from_millis(deadline.0.saturating_sub(self.now().0))
    }
}
