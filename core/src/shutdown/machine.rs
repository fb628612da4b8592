//! The shutdown state machine proper. See the module docs of [`crate::shutdown`].

use heapless::Deque;

use super::config::{ShutdownConfig, ShutdownPolicy, UpsOffMode, check_sleep};
use super::observation::{CalibrationState, Observation, SelfTestResult};
use crate::event::{Event, EventId};
use crate::time::{Duration, Instant};

/// Clear hysteresis for runtime-based conditions: one step of the Smart protocol's
/// whole-minute runtime reading, so a value flickering between two minutes does not flood
/// the log with active/cleared pairs.
pub const RUNTIME_HYSTERESIS: Duration = Duration::from_secs(60);
/// Clear hysteresis for Temperature Exceeded, in tenths of °C (2.0 °C).
pub const TEMPERATURE_HYSTERESIS_DC: i16 = 20;

/// Room for the events of a few calls (one observation emits at most about a dozen); the
/// host, or the Agent, drains after every call. Sized for a 4 KiB appliance RAM budget.
const EVENT_QUEUE: usize = 24;
/// One call emits at most four actions (cancel + a whole new A = 0 sequence).
const ACTION_QUEUE: usize = 8;

/// Why a shutdown sequence runs (or is pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ShutdownReason {
    /// Runtime below A + B + margin while on battery (always armed).
    LowRuntime,
    /// Policy Immediately / AfterOnBattery.
    OnBattery,
    LowBattery,
    /// Policy Threshold: charge or runtime at or below the configured limit.
    Threshold,
    TimeOnBatteryExceeded,
    Overload,
    TemperatureExceeded,
    CommLostOnBattery,
    /// Operator's Shutdown Now (UI/CLI).
    ShutdownNow,
    /// A scheduled shutdown fired by the host.
    Scheduled,
    /// `upsguard sleep` with the OS shutdown first.
    Sleep,
}

impl ShutdownReason {
    /// Requested by a person or a schedule (not by UPS conditions): never cancelled by the
    /// power state, only by [`ShutdownMachine::cancel`].
    pub const fn is_requested(self) -> bool {
        matches!(
            self,
            ShutdownReason::ShutdownNow | ShutdownReason::Scheduled | ShutdownReason::Sleep
        )
    }

    /// The catalogue event behind the reason, if any.
    pub const fn event(self) -> Option<EventId> {
        match self {
            ShutdownReason::LowRuntime => Some(EventId::LowRuntime),
            ShutdownReason::OnBattery => Some(EventId::OnBattery),
            ShutdownReason::LowBattery => Some(EventId::LowBattery),
            ShutdownReason::TimeOnBatteryExceeded => Some(EventId::TimeOnBatteryExceeded),
            ShutdownReason::Overload => Some(EventId::Overload),
            ShutdownReason::TemperatureExceeded => Some(EventId::TemperatureExceeded),
            ShutdownReason::CommLostOnBattery => Some(EventId::CommLostOnBattery),
            ShutdownReason::Threshold
            | ShutdownReason::ShutdownNow
            | ShutdownReason::Scheduled
            | ShutdownReason::Sleep => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::LowRuntime => "low_runtime",
            ShutdownReason::OnBattery => "on_battery",
            ShutdownReason::LowBattery => "low_battery",
            ShutdownReason::Threshold => "threshold",
            ShutdownReason::TimeOnBatteryExceeded => "time_on_battery_exceeded",
            ShutdownReason::Overload => "overload",
            ShutdownReason::TemperatureExceeded => "temperature_exceeded",
            ShutdownReason::CommLostOnBattery => "comm_lost_on_battery",
            ShutdownReason::ShutdownNow => "shutdown_now",
            ShutdownReason::Scheduled => "scheduled",
            ShutdownReason::Sleep => "sleep",
        }
    }

    /// Caused by the power situation: ends (cancels) when mains is back.
    const fn ends_with_power_return(self) -> bool {
        matches!(
            self,
            ShutdownReason::LowRuntime
                | ShutdownReason::OnBattery
                | ShutdownReason::LowBattery
                | ShutdownReason::Threshold
                | ShutdownReason::TimeOnBatteryExceeded
                | ShutdownReason::CommLostOnBattery
        )
    }
}

/// Where the machine is, for the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    Idle,
    /// A trigger condition holds and must persist until `fires_at` (the earliest one).
    Pending {
        reason: ShutdownReason,
        since: Instant,
        fires_at: Instant,
    },
    /// Graceful Shutdown Started; the command file runs until `until`. Cancellable.
    CommandFile {
        reason: ShutdownReason,
        since: Instant,
        until: Instant,
    },
    /// The OS shutdown was started. Nothing cancels it.
    OsShutdown {
        reason: ShutdownReason,
        since: Instant,
    },
    /// The host reported the OS shutdown done and this machine still runs (simulation, or
    /// a halt that did not take the service down). No new sequence starts until the UPS is
    /// back on line, then the machine is idle again.
    Completed {
        reason: ShutdownReason,
        since: Instant,
        at: Instant,
    },
}

impl Phase {
    /// The stable id of the phase (status, API, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Pending { .. } => "pending",
            Phase::CommandFile { .. } => "command_file",
            Phase::OsShutdown { .. } => "os_shutdown",
            Phase::Completed { .. } => "completed",
        }
    }
}

/// What the host must do. Each is emitted at most once per shutdown sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Phase A: run the shutdown command file, which may take `duration`.
    RunCommandFile { duration: Duration },
    /// Write the killpower flag file so that `upsguard killpower`, late in the halt, turns
    /// the UPS off in `mode`. Always emitted just before [`Action::StartOsShutdown`] so the
    /// flag exists before the halt can reach the hook.
    ArmUpsTurnOff { mode: UpsOffMode },
    /// Phase B: run the OS shutdown command. Irrevocable.
    StartOsShutdown,
    /// Stop the command file (if still running) and remove any state of the cancelled
    /// sequence.
    CancelShutdown,
    /// Send the UPS turn-off/sleep command now, without shutting the OS down
    /// (`upsguard sleep` without `graceful`).
    TurnOffUpsNow { mode: UpsOffMode },
}

/// An operator or schedule request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError {
    /// The OS shutdown already started.
    AlreadyShuttingDown,
    /// Another shutdown sequence is running its command file.
    Busy,
    /// Sleep duration zero or beyond `@999` (99.9 h).
    InvalidSleep,
}

/// A cancel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CancelError {
    /// Nothing is running or pending.
    NothingToCancel,
    /// The OS shutdown already started; it can never be cancelled.
    TooLate,
    /// Runtime is below A + B + margin: a later shutdown could not finish on battery.
    LowRuntime,
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RequestError::AlreadyShuttingDown => "the OS shutdown has already started",
            RequestError::Busy => "a shutdown sequence is already running",
            RequestError::InvalidSleep => "sleep must be 1 to 99 hours",
        })
    }
}

impl core::fmt::Display for CancelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CancelError::NothingToCancel => "no shutdown is running or pending",
            CancelError::TooLate => "the OS shutdown has started and cannot be cancelled",
            CancelError::LowRuntime => "runtime is too low to postpone the shutdown",
        })
    }
}

impl core::error::Error for RequestError {}
impl core::error::Error for CancelError {}

/// Internal shutdown triggers, in priority order (the first ready one names the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    LowRuntime,
    LowBattery,
    Threshold,
    OnBattery,
    CommLostOnBattery,
    TimeOnBattery,
    Temperature,
    Overload,
}

const TRIGGERS: [Trigger; 8] = [
    Trigger::LowRuntime,
    Trigger::LowBattery,
    Trigger::Threshold,
    Trigger::OnBattery,
    Trigger::CommLostOnBattery,
    Trigger::TimeOnBattery,
    Trigger::Temperature,
    Trigger::Overload,
];

impl Trigger {
    const fn reason(self) -> ShutdownReason {
        match self {
            Trigger::LowRuntime => ShutdownReason::LowRuntime,
            Trigger::LowBattery => ShutdownReason::LowBattery,
            Trigger::Threshold => ShutdownReason::Threshold,
            Trigger::OnBattery => ShutdownReason::OnBattery,
            Trigger::CommLostOnBattery => ShutdownReason::CommLostOnBattery,
            Trigger::TimeOnBattery => ShutdownReason::TimeOnBatteryExceeded,
            Trigger::Temperature => ShutdownReason::TemperatureExceeded,
            Trigger::Overload => ShutdownReason::Overload,
        }
    }
}

/// A set of event ids (the catalogue has fewer than 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct EventSet(u64);

impl EventSet {
    const fn bit(id: EventId) -> u64 {
        // Fieldless enum → its index; the catalogue size is checked by a test.
        1u64 << ((id as u8) & 63)
    }
    const fn contains(self, id: EventId) -> bool {
        self.0 & Self::bit(id) != 0
    }
    fn set(&mut self, id: EventId, on: bool) {
        if on {
            self.0 |= Self::bit(id);
        } else {
            self.0 &= !Self::bit(id);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    Idle,
    CommandFile {
        reason: ShutdownReason,
        since: Instant,
        until: Instant,
        turn_off: Option<UpsOffMode>,
    },
    OsShutdown {
        reason: ShutdownReason,
        since: Instant,
    },
    Completed {
        reason: ShutdownReason,
        since: Instant,
        at: Instant,
    },
}

const fn secs(s: u32) -> Duration {
    Duration::from_secs(s as u64)
}

/// The sans-I/O shutdown state machine. Feed it [`observe`](Self::observe),
/// [`handle_timeout`](Self::handle_timeout) and operator requests with the current time;
/// drain [`poll_event`](Self::poll_event) and [`poll_action`](Self::poll_action) after
/// every call; wake it at [`poll_timeout`](Self::poll_timeout).
#[derive(Debug, Clone)]
pub struct ShutdownMachine {
    cfg: ShutdownConfig,
    /// Latest time seen; earlier `now`s are treated as this (time never runs backwards).
    now: Instant,

    // Last known UPS state.
    comm: Option<bool>,
    on_battery: Option<bool>,
    lb_flag: bool,
    /// Runtime in ms and when it was valid. While on battery it drains 1:1 with time
    /// (extrapolated between readings and while the link is down).
    runtime: Option<(u64, Instant)>,
    charge_tenths: Option<u16>,
    temperature_dc: Option<i16>,
    self_test: Option<SelfTestResult>,
    calibration: Option<CalibrationState>,

    /// Start of the current outage (On Battery active).
    outage_since: Option<Instant>,
    /// Active conditions: cleared-form ids, and the "on" side of pairs.
    active: EventSet,
    /// Low Battery derived from runtime (latched with hysteresis).
    lb_by_runtime: bool,

    /// When each trigger's condition started to hold (index as in `TRIGGERS`).
    trig_since: [Option<Instant>; TRIGGERS.len()],
    /// Triggers silenced by an operator cancel until their condition ends (bit = index).
    suppressed: u16,

    seq: Seq,
    events: Deque<Event, EVENT_QUEUE>,
    actions: Deque<Action, ACTION_QUEUE>,
    dropped_events: u32,
    dropped_actions: u32,
}

impl ShutdownMachine {
    pub fn new(config: ShutdownConfig) -> Self {
        ShutdownMachine {
            cfg: config,
            now: Instant(0),
            comm: None,
            on_battery: None,
            lb_flag: false,
            runtime: None,
            charge_tenths: None,
            temperature_dc: None,
            self_test: None,
            calibration: None,
            outage_since: None,
            active: EventSet::default(),
            lb_by_runtime: false,
            trig_since: [None; TRIGGERS.len()],
            suppressed: 0,
            seq: Seq::Idle,
            events: Deque::new(),
            actions: Deque::new(),
            dropped_events: 0,
            dropped_actions: 0,
        }
    }

    pub fn config(&self) -> &ShutdownConfig {
        &self.cfg
    }

    /// Replace the configuration. A running command-file phase keeps its deadline.
    pub fn set_config(&mut self, now: Instant, config: ShutdownConfig) {
        self.tick(now);
        self.cfg = config;
        self.step();
    }

    // ---------------------------------------------------------------- inputs

    /// A fresh snapshot from the link driver.
    pub fn observe(&mut self, now: Instant, obs: &Observation) {
        let now = self.tick(now);
        match obs.comm_ok {
            Some(false) => {
                if self.comm != Some(false) {
                    self.push_event(Event::active(EventId::CommLost, now));
                }
                self.comm = Some(false);
                self.active.set(EventId::CommLost, true);
                // Everything else in a dead link's snapshot would be stale.
                self.step();
                return;
            }
            Some(true) => {
                if self.comm != Some(true) {
                    self.push_event(Event::active(EventId::CommEstablished, now));
                }
                self.comm = Some(true);
                self.active.set(EventId::CommLost, false);
            }
            None => {}
        }

        if let Some(b) = obs.on_battery {
            let was = self.on_battery;
            if b && was != Some(true) {
                // Runtime does not drain on line: restart the extrapolation at the transfer.
                if let Some((ms, _)) = self.runtime {
                    self.runtime = Some((ms, now));
                }
            } else if !b && was == Some(true) {
                // Freeze the drained estimate until a fresh reading arrives.
                self.runtime = self.est_runtime_ms().map(|ms| (ms, now));
            }
            self.on_battery = Some(b);
        }
        if let Some(r) = obs.runtime_s {
            self.runtime = Some((u64::from(r).saturating_mul(1000), now));
        }
        if let Some(c) = obs.charge_tenths {
            self.charge_tenths = Some(c);
        }
        if let Some(v) = obs.low_battery {
            self.lb_flag = v;
        }
        if let Some(t) = obs.temperature_dc {
            self.temperature_dc = Some(t);
        }
        if let Some(c) = obs.calibration {
            self.observe_calibration(now, c);
        }
        if let Some(r) = obs.self_test {
            self.observe_self_test(now, r);
        }

        // On Battery / Input Power Restored, on the *effective* power state: a runtime
        // calibration runs on battery on purpose and is not an outage.
        if let Some(raw) = self.on_battery {
            // A self-test transfers to battery on purpose too (apcupsd and PowerChute make the
            // same distinction); Low Runtime, on the raw state, stays armed through both.
            let calibrating = self.calibration == Some(CalibrationState::Running);
            let testing = self.self_test == Some(SelfTestResult::InProgress);
            let eff = raw && !calibrating && !testing;
            if eff && !self.active.contains(EventId::OnBattery) {
                self.outage_since = Some(now);
            } else if !eff {
                self.outage_since = None;
            }
            self.set_condition(EventId::OnBattery, eff, now);
        }

        let flags = [
            (obs.overload, EventId::Overload),
            (obs.replace_battery, EventId::ReplaceBattery),
            (obs.battery_disconnected, EventId::BatteryDisconnected),
            (obs.boost, EventId::SmartBoost),
            (obs.trim, EventId::SmartTrim),
            (obs.output_off, EventId::UpsOutputOff),
            (obs.sleeping, EventId::UpsSleeping),
        ];
        for (v, id) in flags {
            if let Some(v) = v {
                self.set_condition(id, v, now);
            }
        }
        self.step();
    }

    /// Wake-up at (or after) [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        self.step();
    }

    /// The next instant at which time alone changes something (a persistence delay
    /// elapsing, the command file's end, the extrapolated runtime crossing a threshold).
    /// Always later than the latest `now` seen.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if t > self.now && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        match self.seq {
            Seq::CommandFile { until, .. } => consider(until),
            Seq::OsShutdown { .. } | Seq::Completed { .. } => {}
            Seq::Idle => {
                for (i, t) in TRIGGERS.iter().enumerate() {
                    if let Some(since) = self.trig_since.get(i).copied().flatten()
                        && !self.is_suppressed(i)
                    {
                        consider(since + self.delay(*t));
                    }
                }
            }
        }
        if self.on_battery == Some(true)
            && let Some((ms, at)) = self.runtime
        {
            let lr = self.cfg.low_runtime_threshold().as_millis();
            // est < level first holds 1 ms after est == level.
            if ms >= lr {
                consider(at + Duration(ms - lr + 1));
            }
            let lb = secs(self.cfg.low_battery_runtime_s).as_millis();
            if lb > 0 && ms >= lb {
                consider(at + Duration(ms - lb + 1));
            }
            if let ShutdownPolicy::Threshold { runtime_s, .. } = self.cfg.policy {
                let th = secs(runtime_s).as_millis();
                if ms >= th {
                    consider(at + Duration(ms - th));
                }
            }
        }
        if let (Some(since), Some(limit)) = (self.outage_since, self.cfg.time_on_battery_limit_s) {
            consider(since + secs(limit));
        }
        best
    }

    /// The host ran the OS shutdown and is still here (simulation: the step is only logged).
    /// The sequence is over: [`Phase::Completed`] until the UPS is back on line. Never
    /// emits [`Action::CancelShutdown`]: the killpower flag stays for the halt.
    pub fn os_shutdown_done(&mut self, now: Instant) {
        let now = self.tick(now);
        if let Seq::OsShutdown { reason, since } = self.seq {
            self.seq = Seq::Completed {
                reason,
                since,
                at: now,
            };
        }
        self.step();
    }

    /// How long until a shutdown sequence starts, as far as time and the draining runtime
    /// can tell: the earliest pending trigger, or while on battery the moment the estimated
    /// runtime reaches a runtime trigger (Low Runtime, always; the policy's runtime level).
    /// `Some(0)` once a sequence runs; `None` when nothing is expected (on line, or only
    /// an unpredictable trigger such as the UPS's low-battery flag is left).
    pub fn time_to_shutdown(&self) -> Option<Duration> {
        if self.seq != Seq::Idle {
            return Some(Duration::ZERO);
        }
        let now = self.now;
        let mut best: Option<Instant> = None;
        let mut consider = |t: Instant| {
            let t = t.max(now);
            if best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        if let Phase::Pending { fires_at, .. } = self.phase() {
            consider(fires_at);
        }
        let est = self.est_runtime_ms();
        if self.on_battery == Some(true)
            && let Some(ms) = est
        {
            let at_level = |level_ms: u64| now + Duration(ms.saturating_sub(level_ms));
            let lr = self.cfg.low_runtime_threshold().as_millis();
            consider(at_level(lr.saturating_sub(1)));
            let eff_ob = self.active.contains(EventId::OnBattery);
            if eff_ob {
                let lb = secs(self.cfg.low_battery_runtime_s).as_millis();
                if lb > 0 && self.cfg.policy != ShutdownPolicy::LowRuntimeOnly {
                    consider(at_level(lb.saturating_sub(1)) + secs(self.cfg.low_battery_delay_s));
                }
                if let ShutdownPolicy::Threshold { runtime_s, .. } = self.cfg.policy {
                    consider(at_level(secs(runtime_s).as_millis()));
                }
            }
        }
        best.map(|t| t - now)
    }

    /// The host's shutdown command file finished before its configured duration.
    pub fn command_file_finished(&mut self, now: Instant) {
        let now = self.tick(now);
        self.step();
        if let Seq::CommandFile {
            reason, turn_off, ..
        } = self.seq
        {
            self.enter_os_shutdown(now, reason, turn_off);
        }
    }

    /// Shutdown Now (UI/CLI). During a running command-file phase the sequence becomes the
    /// operator's: it no longer cancels when power returns.
    pub fn shutdown_now(&mut self, now: Instant) -> Result<(), RequestError> {
        let now = self.tick(now);
        self.step();
        match &mut self.seq {
            Seq::OsShutdown { .. } | Seq::Completed { .. } => {
                Err(RequestError::AlreadyShuttingDown)
            }
            Seq::CommandFile { reason, .. } => {
                *reason = ShutdownReason::ShutdownNow;
                Ok(())
            }
            Seq::Idle => {
                let turn_off = self.default_turn_off();
                self.start_sequence(now, ShutdownReason::ShutdownNow, turn_off);
                Ok(())
            }
        }
    }

    /// A scheduled shutdown fired. `wake_after`: the schedule's turn-on time, as a UPS sleep
    /// (otherwise the configured UPS turn-off applies).
    pub fn scheduled_shutdown(
        &mut self,
        now: Instant,
        wake_after: Option<Duration>,
    ) -> Result<(), RequestError> {
        self.tick(now);
        let turn_off = match wake_after {
            Some(d) => {
                check_sleep(d).map_err(|_| RequestError::InvalidSleep)?;
                Some(UpsOffMode::Sleep { duration: d })
            }
            None => self.default_turn_off(),
        };
        self.request(now, ShutdownReason::Scheduled, turn_off)
    }

    /// UPS sleep for `hours` (1..=99). `graceful`: shut the OS down first and sleep late in
    /// the halt; otherwise tell the UPS to sleep right away ([`Action::TurnOffUpsNow`]).
    pub fn sleep(&mut self, now: Instant, hours: u16, graceful: bool) -> Result<(), RequestError> {
        self.tick(now);
        if !(1..=99).contains(&hours) {
            return Err(RequestError::InvalidSleep);
        }
        let mode = UpsOffMode::sleep_hours(hours);
        if graceful {
            return self.request(now, ShutdownReason::Sleep, Some(mode));
        }
        self.tick(now);
        self.step();
        match self.seq {
            Seq::OsShutdown { .. } | Seq::Completed { .. } => {
                Err(RequestError::AlreadyShuttingDown)
            }
            Seq::CommandFile { .. } => Err(RequestError::Busy),
            Seq::Idle => {
                self.push_action(Action::TurnOffUpsNow { mode });
                Ok(())
            }
        }
    }

    /// Operator cancel. Allowed before the OS shutdown starts: stops a running sequence or
    /// a pending one. Trigger conditions that hold now stay silenced until they end, so
    /// the cancel sticks for this outage; Low Runtime is never silenced, and a cancel while
    /// it holds is refused.
    pub fn cancel(&mut self, now: Instant) -> Result<(), CancelError> {
        let now = self.tick(now);
        self.step();
        if let Seq::OsShutdown { .. } | Seq::Completed { .. } = self.seq {
            return Err(CancelError::TooLate);
        }
        if self.trigger_cond(Trigger::LowRuntime) {
            return Err(CancelError::LowRuntime);
        }
        let holding = self.holding_mask();
        match self.seq {
            Seq::Idle if holding & !self.suppressed == 0 => Err(CancelError::NothingToCancel),
            _ => {
                self.suppressed |= holding;
                if let Seq::CommandFile { .. } = self.seq {
                    self.cancel_sequence(now);
                }
                self.step();
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- outputs

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Where the shutdown stands.
    pub fn phase(&self) -> Phase {
        match self.seq {
            Seq::CommandFile {
                reason,
                since,
                until,
                ..
            } => Phase::CommandFile {
                reason,
                since,
                until,
            },
            Seq::OsShutdown { reason, since } => Phase::OsShutdown { reason, since },
            Seq::Completed { reason, since, at } => Phase::Completed { reason, since, at },
            Seq::Idle => {
                let mut best = Phase::Idle;
                for (i, t) in TRIGGERS.iter().enumerate() {
                    let Some(since) = self.trig_since.get(i).copied().flatten() else {
                        continue;
                    };
                    if self.is_suppressed(i) {
                        continue;
                    }
                    let fires_at = since + self.delay(*t);
                    let better = match best {
                        Phase::Pending { fires_at: b, .. } => fires_at < b,
                        _ => true,
                    };
                    if better {
                        best = Phase::Pending {
                            reason: t.reason(),
                            since,
                            fires_at,
                        };
                    }
                }
                best
            }
        }
    }

    /// The reason of the running or pending shutdown.
    pub fn reason(&self) -> Option<ShutdownReason> {
        match self.phase() {
            Phase::Idle => None,
            Phase::Pending { reason, .. }
            | Phase::CommandFile { reason, .. }
            | Phase::OsShutdown { reason, .. }
            | Phase::Completed { reason, .. } => Some(reason),
        }
    }

    /// Whether a condition is active: an id with a cleared form, or the first half of a
    /// pair (On Battery, Communication Lost, UPS Output Off, UPS Sleeping).
    pub fn is_active(&self, id: EventId) -> bool {
        self.active.contains(id)
    }

    /// Runtime as the machine estimates it now (drained since the last reading while on
    /// battery).
    pub fn estimated_runtime(&self) -> Option<Duration> {
        self.est_runtime_ms().map(Duration)
    }

    /// Events lost because the host did not drain the queue (should stay 0).
    pub fn dropped_events(&self) -> u32 {
        self.dropped_events
    }

    /// Actions lost because the host did not drain the queue (should stay 0).
    pub fn dropped_actions(&self) -> u32 {
        self.dropped_actions
    }

    // ---------------------------------------------------------------- internals

    fn tick(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn request(
        &mut self,
        now: Instant,
        reason: ShutdownReason,
        turn_off: Option<UpsOffMode>,
    ) -> Result<(), RequestError> {
        let now = self.tick(now);
        self.step();
        match self.seq {
            Seq::OsShutdown { .. } | Seq::Completed { .. } => {
                Err(RequestError::AlreadyShuttingDown)
            }
            Seq::CommandFile { .. } => Err(RequestError::Busy),
            Seq::Idle => {
                self.start_sequence(now, reason, turn_off);
                Ok(())
            }
        }
    }

    /// Re-evaluate everything that depends on state and time, in an order that makes
    /// power returning win over a deadline passing at the same instant.
    fn step(&mut self) {
        let now = self.now;
        if let Seq::Completed { .. } = self.seq
            && self.comm == Some(true)
            && self.on_battery == Some(false)
        {
            // The UPS is back on line after a completed sequence: ready for the next one.
            self.seq = Seq::Idle;
        }
        self.update_derived_events(now);
        self.update_triggers(now);
        self.check_cause_ended(now);
        if self.seq == Seq::Idle
            && let Some(t) = self.first_ready(now)
        {
            let turn_off = self.default_turn_off();
            self.start_sequence(now, t.reason(), turn_off);
        }
        if let Seq::CommandFile {
            reason,
            until,
            turn_off,
            ..
        } = self.seq
            && now >= until
        {
            self.enter_os_shutdown(now, reason, turn_off);
        }
    }

    fn est_runtime_ms(&self) -> Option<u64> {
        self.runtime.map(|(ms, at)| {
            if self.on_battery == Some(true) {
                ms.saturating_sub((self.now - at).as_millis())
            } else {
                ms
            }
        })
    }

    /// Events whose conditions depend on time, runtime and configuration.
    fn update_derived_events(&mut self, now: Instant) {
        let cfg = self.cfg;
        let raw_ob = self.on_battery == Some(true);
        let raw_ol = self.on_battery == Some(false);
        let eff_ob = self.active.contains(EventId::OnBattery);
        let est = self.est_runtime_ms();
        let hyst = RUNTIME_HYSTERESIS.as_millis();
        let below = |level: u64| est.is_some_and(|r| r < level);
        let above = |level: u64| est.is_some_and(|r| r >= level.saturating_add(hyst));

        let lr = cfg.low_runtime_threshold().as_millis();
        self.latch(
            EventId::LowRuntime,
            raw_ob && below(lr),
            raw_ol || above(lr),
            now,
        );

        let lb = secs(cfg.low_battery_runtime_s).as_millis();
        if lb == 0 || raw_ol || above(lb) {
            self.lb_by_runtime = false;
        } else if eff_ob && below(lb) {
            self.lb_by_runtime = true;
        }
        let low_battery = self.lb_flag || self.lb_by_runtime;
        self.set_condition(EventId::LowBattery, low_battery, now);

        match cfg.battery_discharged_runtime_s {
            None => self.latch(EventId::BatteryDischarged, false, true, now),
            Some(t) => {
                let t = secs(t).as_millis();
                let set = raw_ol && self.comm != Some(false) && below(t);
                self.latch(EventId::BatteryDischarged, set, above(t), now);
            }
        }

        let exceeded = match (self.outage_since, cfg.time_on_battery_limit_s) {
            (Some(since), Some(limit)) => now >= since + secs(limit),
            _ => false,
        };
        let tob_clear = self.outage_since.is_none() || cfg.time_on_battery_limit_s.is_none();
        self.latch(EventId::TimeOnBatteryExceeded, exceeded, tob_clear, now);

        match (cfg.temperature_limit_dc, self.temperature_dc) {
            (None, _) => self.latch(EventId::TemperatureExceeded, false, true, now),
            (Some(l), Some(t)) => self.latch(
                EventId::TemperatureExceeded,
                t >= l,
                t < l.saturating_sub(TEMPERATURE_HYSTERESIS_DC),
                now,
            ),
            (Some(_), None) => {}
        }

        let clob = self.comm == Some(false) && eff_ob;
        self.latch(
            EventId::CommLostOnBattery,
            clob,
            self.comm == Some(true),
            now,
        );
    }

    fn trigger_cond(&self, t: Trigger) -> bool {
        let cfg = &self.cfg;
        let eff_ob = self.active.contains(EventId::OnBattery);
        let est = self.est_runtime_ms();
        match t {
            Trigger::LowRuntime => {
                let lr = cfg.low_runtime_threshold().as_millis();
                self.on_battery == Some(true) && est.is_some_and(|r| r < lr)
            }
            Trigger::OnBattery => {
                matches!(
                    cfg.policy,
                    ShutdownPolicy::Immediately | ShutdownPolicy::AfterOnBattery { .. }
                ) && eff_ob
            }
            Trigger::LowBattery => {
                cfg.policy != ShutdownPolicy::LowRuntimeOnly
                    && eff_ob
                    && self.active.contains(EventId::LowBattery)
            }
            Trigger::Threshold => match cfg.policy {
                ShutdownPolicy::Threshold {
                    charge_pct,
                    runtime_s,
                } => {
                    let charge_low = self
                        .charge_tenths
                        .is_some_and(|c| c <= u16::from(charge_pct).saturating_mul(10));
                    let runtime_low = est.is_some_and(|r| r <= secs(runtime_s).as_millis());
                    eff_ob && (charge_low || runtime_low)
                }
                _ => false,
            },
            Trigger::CommLostOnBattery => {
                cfg.comm_lost_on_battery_shutdown_s.is_some()
                    && self.active.contains(EventId::CommLostOnBattery)
            }
            Trigger::TimeOnBattery => {
                cfg.time_on_battery_shutdown_s.is_some()
                    && self.active.contains(EventId::TimeOnBatteryExceeded)
            }
            Trigger::Temperature => {
                cfg.temperature_shutdown_s.is_some()
                    && self.active.contains(EventId::TemperatureExceeded)
            }
            Trigger::Overload => {
                cfg.overload_shutdown_s.is_some() && self.active.contains(EventId::Overload)
            }
        }
    }

    /// How long a trigger's condition must persist.
    fn delay(&self, t: Trigger) -> Duration {
        let cfg = &self.cfg;
        let s = match t {
            Trigger::LowRuntime | Trigger::Threshold => 0,
            Trigger::OnBattery => match cfg.policy {
                ShutdownPolicy::AfterOnBattery { seconds } => seconds,
                _ => 0,
            },
            Trigger::LowBattery => cfg.low_battery_delay_s,
            Trigger::CommLostOnBattery => cfg.comm_lost_on_battery_shutdown_s.unwrap_or(0),
            Trigger::TimeOnBattery => cfg.time_on_battery_shutdown_s.unwrap_or(0),
            Trigger::Temperature => cfg.temperature_shutdown_s.unwrap_or(0),
            Trigger::Overload => cfg.overload_shutdown_s.unwrap_or(0),
        };
        secs(s)
    }

    fn update_triggers(&mut self, now: Instant) {
        for (i, t) in TRIGGERS.iter().enumerate() {
            let holds = self.trigger_cond(*t);
            if let Some(slot) = self.trig_since.get_mut(i) {
                if !holds {
                    *slot = None;
                    // The condition ended: an earlier cancel no longer applies to it.
                    self.suppressed &= !(1u16 << i);
                } else if slot.is_none() {
                    *slot = Some(now);
                }
            }
        }
    }

    fn is_suppressed(&self, i: usize) -> bool {
        self.suppressed & (1u16 << (i & 15)) != 0
    }

    fn holding_mask(&self) -> u16 {
        let mut m = 0u16;
        for (i, since) in self.trig_since.iter().enumerate() {
            if since.is_some() {
                m |= 1u16 << (i & 15);
            }
        }
        m
    }

    fn first_ready(&self, now: Instant) -> Option<Trigger> {
        TRIGGERS.iter().enumerate().find_map(|(i, t)| {
            let since = self.trig_since.get(i).copied().flatten()?;
            (!self.is_suppressed(i) && now >= since + self.delay(*t)).then_some(*t)
        })
    }

    /// A condition-caused sequence whose cause ended before the OS shutdown: hand it to
    /// another ready trigger if there is one, else cancel it.
    fn check_cause_ended(&mut self, now: Instant) {
        let Seq::CommandFile { reason, .. } = self.seq else {
            return;
        };
        let ended = if reason.is_requested() {
            false
        } else if reason.ends_with_power_return() {
            self.comm == Some(true) && self.on_battery == Some(false)
        } else {
            match reason {
                ShutdownReason::Overload => !self.active.contains(EventId::Overload),
                ShutdownReason::TemperatureExceeded => {
                    !self.active.contains(EventId::TemperatureExceeded)
                }
                _ => false,
            }
        };
        if !ended {
            return;
        }
        match self.first_ready(now) {
            Some(t) => {
                if let Seq::CommandFile { reason, .. } = &mut self.seq {
                    *reason = t.reason();
                }
            }
            None => self.cancel_sequence(now),
        }
    }

    fn default_turn_off(&self) -> Option<UpsOffMode> {
        self.cfg.turn_off_ups.then_some(self.cfg.ups_off_mode)
    }

    fn start_sequence(
        &mut self,
        now: Instant,
        reason: ShutdownReason,
        turn_off: Option<UpsOffMode>,
    ) {
        self.push_event(Event::active(EventId::ShutdownStarted, now));
        let a = secs(self.cfg.command_file_s);
        if a.as_millis() > 0 {
            self.push_action(Action::RunCommandFile { duration: a });
            self.seq = Seq::CommandFile {
                reason,
                since: now,
                until: now + a,
                turn_off,
            };
        } else {
            self.enter_os_shutdown(now, reason, turn_off);
        }
    }

    fn enter_os_shutdown(
        &mut self,
        now: Instant,
        reason: ShutdownReason,
        turn_off: Option<UpsOffMode>,
    ) {
        if let Some(mode) = turn_off {
            self.push_action(Action::ArmUpsTurnOff { mode });
        }
        self.push_action(Action::StartOsShutdown);
        self.seq = Seq::OsShutdown { reason, since: now };
    }

    fn cancel_sequence(&mut self, now: Instant) {
        self.push_event(Event::active(EventId::ShutdownCancelled, now));
        self.push_action(Action::CancelShutdown);
        self.seq = Seq::Idle;
    }

    fn observe_calibration(&mut self, now: Instant, c: CalibrationState) {
        use CalibrationState::*;
        let prev = self.calibration;
        self.calibration = Some(c);
        // The first value seen is a baseline, not news.
        let Some(prev) = prev else { return };
        let id = match (prev, c) {
            (Running, Running) => None,
            (_, Running) => Some(EventId::CalibrationStarted),
            (Running, Aborted) => Some(EventId::CalibrationAborted),
            (Running, Finished) => Some(EventId::CalibrationFinished),
            // Ending while on battery means mains failed under it: the UPS aborted.
            (Running, Idle) if self.on_battery == Some(true) => Some(EventId::CalibrationAborted),
            (Running, Idle) => Some(EventId::CalibrationFinished),
            _ => None,
        };
        if let Some(id) = id {
            self.push_event(Event::active(id, now));
        }
    }

    fn observe_self_test(&mut self, now: Instant, r: SelfTestResult) {
        let prev = self.self_test;
        self.self_test = Some(r);
        let Some(prev) = prev else { return };
        if prev == r {
            return;
        }
        let id = match r {
            SelfTestResult::InProgress => EventId::SelfTestStarted,
            SelfTestResult::Passed => EventId::SelfTestPassed,
            SelfTestResult::Failed => EventId::SelfTestFailed,
            SelfTestResult::NoResult => return,
        };
        self.push_event(Event::active(id, now));
    }

    /// Level-triggered condition: emit the active form on rising, the cleared form (or the
    /// pair's other half) on falling.
    fn set_condition(&mut self, id: EventId, on: bool, now: Instant) {
        self.latch(id, on, !on, now);
    }

    /// Latched condition with separate set and clear tests (hysteresis).
    fn latch(&mut self, id: EventId, set: bool, clear: bool, now: Instant) {
        let active = self.active.contains(id);
        if set && !active {
            self.active.set(id, true);
            self.push_event(Event::active(id, now));
        } else if !set && clear && active {
            self.active.set(id, false);
            if id.has_cleared_form() {
                self.push_event(Event::cleared(id, now));
            } else if let Some(other) = id.opposite() {
                self.push_event(Event::active(other, now));
            }
        }
    }

    fn push_event(&mut self, e: Event) {
        if self.events.push_back(e).is_err() {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

    fn push_action(&mut self, a: Action) {
        if self.actions.push_back(a).is_err() {
            self.dropped_actions = self.dropped_actions.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_fits_the_event_set() {
        assert!(EventId::ALL.len() <= 64);
        for id in EventId::ALL {
            assert_eq!(
                EventId::ALL.iter().position(|x| *x == id),
                Some(id as usize)
            );
        }
    }
}
