//! Link driver configuration, and the polling budget derived from the line speed.

use crate::time::Duration;
use crate::wire::Pacing;

/// Tunables of the [`super::LinkDriver`]. `Default` gives values that suit a 3rd-generation
/// Smart-UPS at 2400 baud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LinkConfig {
    /// `Q` is read this often, so the status is never older than about this (default 1 s).
    pub status_interval: Duration,
    /// Settings (`u l e o s q p k r E`) are re-read this often (default 10 min), and at once
    /// after a setting change or a `|` alert.
    pub slow_poll_interval: Duration,
    /// Timeout for an ordinary reply line. NUT uses 3 s, but real units answer in tens of ms
    /// and we want a dead link detected within ~2 s, so the default is 1 s (apcupsd's value).
    pub reply_timeout: Duration,
    /// Timeout for the long `a` and `^Z` replies (NUT: 6 s).
    pub long_reply_timeout: Duration,
    /// Timeout for `Y` and for acknowledgements (`OK`/`*`) (NUT: 1.5 s).
    pub ack_timeout: Duration,
    /// Extra attempts for a query that timed out.
    pub retries: u8,
    /// Consecutive failed exchanges that mean Communication Lost (default 2: with a 1 s
    /// reply timeout and 1 s status interval, a dead link is reported within ~2 s).
    pub max_consecutive_failures: u8,
    /// `Y` attempts before the first Communication Lost (NUT: 5).
    pub handshake_retries: u8,
    /// After that, `Y` is retried with exponential backoff from 1 s up to this.
    pub handshake_backoff_max: Duration,
    /// Silence after the first byte of `@` and of a string write (NUT: 200 ms).
    pub silence: Duration,
    /// Gap between `@` digits and string characters (NUT: 50 ms; apcupsd-style: 2 s).
    pub digit_gap: Duration,
    /// Gap between the two bytes of `K`, `Z`, `^N` (NUT: ≈1.5 s).
    pub double_send_gap: Duration,
    /// Serial speed, for the polling budget.
    pub baud: u32,
    /// Share of the UPS→host line that polling may use, in percent (default 10).
    pub max_line_busy_percent: u8,
    /// How long the line must be quiet on *both* sides of an alert byte for the driver to act
    /// on it. A UPS sends an alert as a lone byte on an idle line (ups-link-protocol.md §3.2);
    /// line noise comes in bursts. An alert with another received byte within this window
    /// before or after it (or in the same `handle_input` call) is counted as line noise and
    /// answered with an immediate `Q` re-read instead; a run of the same alert byte (`!!`)
    /// counts as one alert. During an exchange, alerts wait for the reply line instead: a
    /// valid reply confirms them, a garbage reply or a timeout makes them noise.
    ///
    /// Default: [`Self::alert_quiet_for_baud`]`(baud)` = 1.5 byte times, rounded up to whole
    /// ms. 8N1 costs 10 bit times per byte, so at 2400 baud one byte takes 10 / 2400 s =
    /// 4.17 ms and 1.5 bytes take 6.25 ms → **7 ms**. That is longer than the gap between two
    /// back-to-back bytes of a burst (≤ 1 byte time) plus some read jitter, and short enough
    /// for the latency target: a genuine power-fail alert must be a logged event within
    /// **10 ms** (p99), which leaves 3 ms after the 7 ms hold for the read, the wake-up at
    /// [`super::LinkDriver::poll_timeout`] and the event log. (Waiting for a confirming `Q`
    /// instead would cost ≥ 5 byte times ≈ 21 ms.) `Duration::ZERO` disables the filter:
    /// every alert is acted on the moment its byte arrives.
    pub alert_quiet: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            status_interval: Duration::from_millis(1000),
            slow_poll_interval: Duration::from_secs(600),
            reply_timeout: Duration::from_millis(1000),
            long_reply_timeout: Duration::from_millis(6000),
            ack_timeout: Duration::from_millis(1500),
            retries: 1,
            max_consecutive_failures: 2,
            handshake_retries: 5,
            handshake_backoff_max: Duration::from_secs(16),
            silence: Duration::from_millis(200),
            digit_gap: Duration::from_millis(50),
            double_send_gap: Duration::from_millis(1500),
            baud: 2400,
            max_line_busy_percent: 10,
            alert_quiet: Self::alert_quiet_for_baud(2400),
        }
    }
}

impl LinkConfig {
    /// 1.5 byte times at `baud` (8N1: 15 bit times), rounded up to whole ms: 7 ms at 2400
    /// baud, 2 ms at 9600. See [`Self::alert_quiet`].
    pub const fn alert_quiet_for_baud(baud: u32) -> Duration {
        let baud = if baud == 0 { 1 } else { baud as u64 };
        Duration::from_millis(15_000u64.div_ceil(baud))
    }

    pub fn pacing(&self) -> Pacing {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Pacing {
            silence_ms: ms(self.silence),
            digit_gap_ms: ms(self.digit_gap),
            double_send_gap_ms: ms(self.double_send_gap),
        }
    }

    /// Reply bytes per second that polling may consume.
    ///
    /// 8N1 framing costs 10 bit times per byte, so 2400 baud carries 240 bytes/s; 10 % of that
    /// is **24 reply bytes/s**. `Q` every second costs 4 of them (`08` CR LF), leaving 20 B/s
    /// for the rotated measurements `L O P f j B F C 9 G X M N ~ ' 8`, whose replies total
    /// 93 bytes (ten `nnn.n`/`nn.nn`/`nnnn:` values of 7 bytes incl. CR LF, six 2-char and one
    /// 1-char code): one full rotation every ≈4.7 s. The driver enforces this with a byte
    /// credit that accrues at this rate and is charged with each actual reply's length.
    /// Discovery and user requests are one-off bursts and are not throttled.
    pub fn reply_budget_bytes_per_sec(&self) -> u32 {
        (self.baud / 10).saturating_mul(u32::from(self.max_line_busy_percent.min(100))) / 100
    }
}
