//! The link driver state machine. See the module docs of [`crate::link`].

use heapless::Deque;

use super::request::{Active, Outcome, Step};
use super::snapshot::store;
use super::{
    CommState, LinkConfig, LinkEvent, RequestError, RequestFailure, RequestId, RequestResult,
    Stamped, Transmit, UpsRequest, UpsSnapshot,
};
use crate::framer::{FrameEvent, Framer, FramerMode};
use crate::time::{Duration, Instant};
use crate::wire::{
    AlarmDelay, Alert, CapabilityTable, Centi, Command, CommandSet, Encoded, Firmware, Pacing,
    ParseError, ProtocolInfo, Register1, Register2, Register3, ReplyKind, SelfTestInterval,
    SelfTestResult, Sensitivity, SettingVar, StatusFlags, TransferCause, Value, parse_hex_u8,
    parse_runtime_seconds, parse_text, parse_uint, trim, trim_end,
};

/// Line buffer: the longest reply is `^Z` (≈210 bytes on a Smart-UPS 420).
const FRAME_BUF: usize = 256;
/// Events of one input; the Agent drains after every call (overflow is counted).
const EVENT_CAP: usize = 24;
/// Operator requests waiting for the line; a fifth is refused (`QueueFull`).
const QUEUE_CAP: usize = 4;
const INITIAL_BACKOFF: Duration = Duration::from_millis(1000);
/// Distinct alerts held at once; more than that in one group is line noise.
const HELD_CAP: usize = 4;
/// An idle-line hold that keeps being extended by a continuous burst is closed after this, so
/// a noisy line cannot hold up polling for longer.
const MAX_HOLD: Duration = Duration::from_millis(500);

/// Measurements rotated within the byte budget, with their expected reply length including
/// CR LF (see [`LinkConfig::reply_budget_bytes_per_sec`] for the arithmetic). Most useful first.
const ROTATION: [(Command, u8); 16] = [
    (Command::InputVoltage, 7),
    (Command::OutputVoltage, 7),
    (Command::Load, 7),
    (Command::BatteryCharge, 7),
    (Command::Runtime, 7),
    (Command::BatteryVoltage, 7),
    (Command::LineFrequency, 7),
    (Command::Temperature, 7),
    (Command::LineQuality, 4),
    (Command::TransferCause, 3),
    (Command::SelfTestResult, 4),
    (Command::MaxLineVoltage, 7),
    (Command::MinLineVoltage, 7),
    (Command::Register1, 4),
    (Command::Register2, 4),
    (Command::Register3, 4),
];

/// Status alerts waiting for a `Q` that confirms or refutes them.
const PROVISIONAL_CAP: usize = 4;
/// How long a transfer to battery waits for `G` (its cause) before it counts as an outage
/// anyway: a UPS that never answers must not hide a power failure.
const CAUSE_WAIT: Duration = Duration::from_millis(2000);
/// A self-test longer than this is no longer believed: the UPS stayed on battery after it
/// (mains failed during the test), so it is an outage. APC tests last about 8–15 s.
const SELF_TEST_MAX: Duration = Duration::from_secs(30);
/// After a self-test the UPS is back on line; its `X` result is read within this.
const SELF_TEST_RESULT_WAIT: Duration = Duration::from_secs(10);
/// A transfer to battery this soon after our own `W` is that self-test (for units without `G`).
const ORDERED_TEST_WINDOW: Duration = Duration::from_secs(5);

/// How old runtime and charge may get while on battery before they jump the rotation.
const ON_BATTERY_REFRESH: Duration = Duration::from_millis(2000);

/// Settings re-read every `slow_poll_interval`, with expected reply lengths.
const SLOW: [(Command, u8); 10] = [
    (Command::UpperTransferVoltage, 5),
    (Command::LowerTransferVoltage, 5),
    (Command::MinReturnCharge, 4),
    (Command::OutputVoltageSetting, 5),
    (Command::Sensitivity, 3),
    (Command::LowBatteryWarning, 4),
    (Command::ShutdownDelay, 5),
    (Command::AlarmDelay, 3),
    (Command::ReturnDelay, 5),
    (Command::SelfTestInterval, 5),
];

/// Discovery order: command set first, then firmware (its locale filters `^Z`), identity,
/// capabilities, settings. Steps whose byte is not in the `a` set are skipped.
const DISCOVERY: [Command; 20] = [
    Command::ProtocolInfo,
    Command::FirmwareRevision,
    Command::OldFirmware,
    Command::ModelName,
    Command::SerialNumber,
    Command::ManufactureDate,
    Command::BatteryDate,
    Command::UpsId,
    Command::NominalBatteryVoltage,
    Command::OutputVoltageSetting,
    Command::Capabilities,
    Command::UpperTransferVoltage,
    Command::LowerTransferVoltage,
    Command::MinReturnCharge,
    Command::Sensitivity,
    Command::LowBatteryWarning,
    Command::ShutdownDelay,
    Command::AlarmDelay,
    Command::ReturnDelay,
    Command::SelfTestInterval,
];

/// Assumed command set when `a` fails (very old units): everything we use. Variables the UPS
/// lacks answer `NA` and drop out; controls are attempted and may be refused.
const FALLBACK: &[u8] = b"\x01\x0e\x1a\x7f'-789@ABCDEFGKLMNOPQRSUVWXYZbcefgjklmnopqrsuxy~";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connected,
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Handshake,
    Discovery(usize),
    Status,
    Measure(usize),
    Slow(usize),
    Request,
    Close,
}

#[derive(Debug, Clone)]
struct Exchange {
    cmd: Command,
    purpose: Purpose,
    bytes: Encoded,
    sent: usize,
    /// When the next unsent byte may go out.
    next_at: Instant,
    /// Reply deadline, set once every byte has been sent.
    deadline: Option<Instant>,
    attempt: u8,
    /// When the exchange began: a reply says nothing about what happened after this.
    started: Instant,
}

impl Exchange {
    fn unsent(&self) -> bool {
        self.sent < self.bytes.len()
    }
}

/// Alert bytes waiting for the line-noise check (see [`LinkConfig::alert_quiet`]).
#[derive(Debug, Clone)]
struct Held {
    /// Distinct alerts in arrival order (runs of the same alert collapsed).
    alerts: heapless::Vec<Alert, HELD_CAP>,
    /// Alert bytes in the group, repeats included.
    count: u32,
    /// Already known to be line noise (other bytes around it, or too many alerts).
    noise: bool,
    /// `Some`: held on an idle line until this instant; `None`: held until the reply of the
    /// exchange in flight.
    deadline: Option<Instant>,
    /// When the group's first byte arrived.
    started: Instant,
}

impl Held {
    fn new(deadline: Option<Instant>, started: Instant) -> Self {
        Held {
            alerts: heapless::Vec::new(),
            count: 0,
            noise: false,
            deadline,
            started,
        }
    }

    fn add(&mut self, a: Alert) {
        self.count = self.count.saturating_add(1);
        if self.alerts.last() != Some(&a) && self.alerts.push(a).is_err() {
            self.noise = true;
        }
    }
}

enum Plan {
    Now(Command, Purpose),
    StartRequest,
    At(Instant),
    Idle,
}

/// The sans-I/O UPS-Link driver. See the [module docs](crate::link).
#[derive(Debug)]
pub struct LinkDriver {
    framer: Framer<FRAME_BUF>,
    s: State,
}

#[derive(Debug)]
struct State {
    cfg: LinkConfig,
    pacing: Pacing,
    snap: UpsSnapshot,
    events: Deque<LinkEvent, EVENT_CAP>,
    updated: bool,
    now: Instant,
    phase: Phase,
    ex: Option<Exchange>,
    retry: Option<(Command, Purpose, u8)>,
    framer_mode: FramerMode,
    clear_framer: bool,
    hs_attempts: u8,
    hs_next_at: Instant,
    hs_backoff: Duration,
    need_discovery: bool,
    discovering: bool,
    disc_idx: usize,
    supported: CommandSet,
    failures: u8,
    next_status_at: Instant,
    status_urgent: bool,
    rot_idx: usize,
    /// Reply-byte credit in milli-bytes, as of `credit_at`.
    credit: i64,
    credit_at: Instant,
    next_slow_at: Instant,
    slow_idx: Option<usize>,
    queue: Deque<(RequestId, UpsRequest), QUEUE_CAP>,
    active: Option<Active>,
    next_id: u32,
    /// Alerts not yet acted on (line-noise check).
    held: Option<Held>,
    /// When the last byte was received.
    last_rx_at: Option<Instant>,
    /// Set while an exchange completes: whether its reply was valid (confirms held alerts).
    reply_ok: bool,
    /// Status alerts that passed the line-noise check, with when they did. They change
    /// nothing until a `Q` begun after them answers (see [`State::resolve_provisional`]).
    provisional: heapless::Vec<(Alert, Instant), PROVISIONAL_CAP>,
    /// When the current `Q` (or status request) exchange began.
    q_started: Option<Instant>,
    /// Transfer to battery whose cause (`G`) is not known yet: since when.
    cause_check: Option<Instant>,
    /// Read `G` / `X` next, ahead of the rotation.
    urgent_g: bool,
    urgent_x: bool,
    /// A self-test the UPS is running (on battery on purpose).
    self_test: Option<SelfTestTrack>,
    /// When our own `W` was acknowledged.
    test_ordered_at: Option<Instant>,
}

/// A battery self-test in progress, from the transfer to battery until its result is read.
#[derive(Debug, Clone, Copy)]
struct SelfTestTrack {
    /// `Running`: on battery; `Ending`: back on line, waiting for `X`.
    ending: bool,
    /// When the current phase began.
    since: Instant,
    /// `X` before the test: a different reading while on battery means the test is over.
    x_before: Option<SelfTestResult>,
}

impl LinkDriver {
    pub fn new(config: LinkConfig) -> Self {
        LinkDriver {
            framer: Framer::new(),
            s: State {
                cfg: config,
                pacing: config.pacing(),
                snap: UpsSnapshot::default(),
                events: Deque::new(),
                updated: false,
                now: Instant(0),
                phase: Phase::Handshake,
                ex: None,
                retry: None,
                framer_mode: FramerMode::Normal,
                clear_framer: false,
                hs_attempts: 0,
                hs_next_at: Instant(0),
                hs_backoff: INITIAL_BACKOFF,
                need_discovery: true,
                discovering: false,
                disc_idx: 0,
                supported: CommandSet::from_bytes(FALLBACK),
                failures: 0,
                next_status_at: Instant(0),
                status_urgent: false,
                rot_idx: 0,
                credit: 0,
                credit_at: Instant(0),
                next_slow_at: Instant(0),
                slow_idx: None,
                queue: Deque::new(),
                active: None,
                next_id: 1,
                held: None,
                last_rx_at: None,
                reply_ok: false,
                provisional: heapless::Vec::new(),
                q_started: None,
                cause_check: None,
                urgent_g: false,
                urgent_x: false,
                self_test: None,
                test_ordered_at: None,
            },
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.s.cfg
    }

    /// Feeds received bytes. Alerts are held for the line-noise check
    /// ([`LinkConfig::alert_quiet`]); all bytes of one call count as one burst.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.s.observe(now);
        // A hold whose quiet time has passed is settled before these (later) bytes.
        self.s.settle_hold(now);
        for &b in bytes {
            match self.framer.push(b) {
                Some(FrameEvent::Alert(a)) => self.s.on_alert(now, a),
                ev => {
                    self.s.on_other_byte(now);
                    match ev {
                        Some(FrameEvent::Line(l)) => self.s.on_line(now, l),
                        Some(FrameEvent::Error(e)) => debug!("framer: {}", e),
                        _ => {}
                    }
                }
            }
            self.s.last_rx_at = Some(now);
            self.sync_framer();
        }
        self.s.flush_updated();
    }

    /// Processes timers; call when [`Self::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.s.observe(now);
        self.drive(now);
    }

    /// Bytes to write now; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let now = self.s.observe(now);
        self.drive(now);
        self.s.next_bytes(now)
    }

    /// The next instant at which [`Self::handle_timeout`] (or `poll_transmit`) has work. While
    /// an alert is held on an idle line this is the end of its hold
    /// ([`LinkConfig::alert_quiet`]): wake then, or the alert is acted on late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.s.poll_timeout()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.s.events.pop_front()
    }

    pub fn snapshot(&self) -> &UpsSnapshot {
        &self.s.snap
    }

    /// Queues a command; it runs after the current exchange, with correct pacing.
    pub fn request(&mut self, now: Instant, req: UpsRequest) -> Result<RequestId, RequestError> {
        self.s.observe(now);
        self.s.request(req)
    }

    /// The port was reopened: start again with the handshake (and rediscover).
    pub fn reset(&mut self, now: Instant) {
        let now = self.s.observe(now);
        self.framer.clear();
        self.framer.set_mode(FramerMode::Normal);
        self.s.reset(now);
    }

    /// Sends `R` (back to dumb mode) and then reports [`LinkEvent::Closed`]. A paced command
    /// already under way is finished first; everything queued fails with `Closed`.
    pub fn shutdown_link(&mut self, now: Instant) {
        let now = self.s.observe(now);
        self.s.shutdown_link(now);
        self.sync_framer();
    }

    fn drive(&mut self, now: Instant) {
        self.s.drive(now);
        self.sync_framer();
        self.s.flush_updated();
    }

    fn sync_framer(&mut self) {
        if core::mem::take(&mut self.s.clear_framer) {
            self.framer.clear();
        }
        self.framer.set_mode(self.s.framer_mode);
    }
}

impl State {
    fn observe(&mut self, now: Instant) -> Instant {
        // Time never goes backwards for us, whatever the caller passes.
        self.now = self.now.max(now);
        self.now
    }

    fn emit(&mut self, e: LinkEvent) {
        if self.events.push_back(e).is_err() {
            self.snap.events_dropped = self.snap.events_dropped.saturating_add(1);
        }
    }

    fn flush_updated(&mut self) {
        if core::mem::take(&mut self.updated) {
            self.emit(LinkEvent::Updated);
        }
    }

    fn set_comm(&mut self, now: Instant, c: CommState) {
        if self.snap.comm != c {
            self.snap.comm = c;
            self.snap.comm_since = Some(now);
        }
    }

    // ---------------------------------------------------------------- scheduling

    fn budget(&self) -> i64 {
        i64::from(self.cfg.reply_budget_bytes_per_sec())
    }

    fn credit_now(&self, now: Instant) -> i64 {
        let cap = self.budget() * self.cfg.status_interval.as_millis().max(1000) as i64;
        let dt = now
            .saturating_since(self.credit_at)
            .as_millis()
            .min(1 << 32) as i64;
        self.credit.saturating_add(self.budget() * dt).min(cap)
    }

    fn charge(&mut self, now: Instant, bytes: usize) {
        self.credit = self.credit_now(now).saturating_sub(bytes as i64 * 1000);
        self.credit_at = now;
    }

    /// When `cost` reply bytes will be affordable (`None`: never, the budget is zero).
    fn affordable_at(&self, now: Instant, cost: u8) -> Option<Instant> {
        let need = i64::from(cost) * 1000 - self.credit_now(now);
        if need <= 0 {
            return Some(now);
        }
        let b = self.budget();
        (b > 0).then(|| now + Duration::from_millis(((need + b - 1) / b) as u64))
    }

    fn next_rot(&self) -> Option<usize> {
        // On battery, runtime and charge decide the shutdown: keep them at most
        // `ON_BATTERY_REFRESH` old (apcupsd polls every second on battery) and let the rest
        // of the rotation share what the budget leaves.
        let on_battery = self
            .snap
            .status
            .is_some_and(|s| s.value.contains(StatusFlags::OB));
        if on_battery {
            let m = &self.snap.measurements;
            let stale = |at: Option<Instant>| {
                at.is_none_or(|t| self.now.saturating_since(t) >= ON_BATTERY_REFRESH)
            };
            for (cmd, at) in [
                (Command::Runtime, m.runtime_seconds.map(|v| v.at)),
                (Command::BatteryCharge, m.charge_percent.map(|v| v.at)),
            ] {
                if stale(at) && self.supported.contains(cmd.first_byte()) {
                    return ROTATION.iter().position(|(c, _)| *c == cmd);
                }
            }
        }
        self.natural_rot()
    }

    /// The next measurement in plain rotation order.
    fn natural_rot(&self) -> Option<usize> {
        (0..ROTATION.len())
            .map(|k| (self.rot_idx + k) % ROTATION.len())
            .find(|i| {
                ROTATION
                    .get(*i)
                    .is_some_and(|(c, _)| self.supported.contains(c.first_byte()))
            })
    }

    fn next_slow_from(&self, from: usize) -> Option<usize> {
        (from..SLOW.len()).find(|i| {
            SLOW.get(*i)
                .is_some_and(|(c, _)| self.supported.contains(c.first_byte()))
        })
    }

    fn request_ready(&self) -> bool {
        match self.queue.front() {
            // Settings need the capability table, which discovery reads.
            Some((_, UpsRequest::SetSetting { .. })) => !self.discovering,
            Some(_) => true,
            None => false,
        }
    }

    /// What to do next when no exchange is in flight. Pure, so `poll_timeout` can use it.
    fn plan(&self, now: Instant) -> Plan {
        match self.phase {
            Phase::Closed => return Plan::Idle,
            Phase::Closing => return Plan::Now(Command::DumbMode, Purpose::Close),
            Phase::Handshake if now >= self.hs_next_at => {
                return Plan::Now(Command::SmartMode, Purpose::Handshake);
            }
            Phase::Handshake => return Plan::At(self.hs_next_at),
            Phase::Connected => {}
        }
        if let Some((c, p, _)) = self.retry {
            return Plan::Now(c, p);
        }
        // A multi-step request continues at once: `-` must follow its variable's query.
        if let Some(a) = &self.active {
            return Plan::Now(a.command(), Purpose::Request);
        }
        if self.status_urgent || now >= self.next_status_at {
            return Plan::Now(Command::Status, Purpose::Status);
        }
        // The cause of a transfer decides between outage and self-test: ahead of the rest.
        for (urgent, cmd) in [
            (self.urgent_g, Command::TransferCause),
            (self.urgent_x, Command::SelfTestResult),
        ] {
            if urgent
                && self.supported.contains(cmd.first_byte())
                && let Some(i) = ROTATION.iter().position(|(c, _)| *c == cmd)
            {
                return Plan::Now(cmd, Purpose::Measure(i));
            }
        }
        if self.request_ready() {
            return Plan::StartRequest;
        }
        if self.discovering {
            return match DISCOVERY.get(self.disc_idx) {
                Some(c) => Plan::Now(*c, Purpose::Discovery(self.disc_idx)),
                None => Plan::At(self.next_status_at),
            };
        }
        let mut wake = self.next_status_at;
        let slow = match self.slow_idx {
            Some(i) => Some(i),
            None if now >= self.next_slow_at => self.next_slow_from(0),
            None => {
                wake = wake.min(self.next_slow_at);
                None
            }
        };
        let candidates = [
            slow.and_then(|i| SLOW.get(i).map(|(c, cost)| (*c, *cost, Purpose::Slow(i)))),
            self.next_rot().and_then(|i| {
                ROTATION
                    .get(i)
                    .map(|(c, cost)| (*c, *cost, Purpose::Measure(i)))
            }),
        ];
        for (cmd, cost, purpose) in candidates.into_iter().flatten() {
            match self.affordable_at(now, cost) {
                Some(t) if t <= now => return Plan::Now(cmd, purpose),
                Some(t) => wake = wake.min(t),
                None => {}
            }
            // Slow items wait their turn ahead of the rotation, so the rotation cannot
            // starve them of credit.
            if matches!(purpose, Purpose::Slow(_)) {
                break;
            }
        }
        Plan::At(wake)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let t = self.poll_timeout_io();
        match (t, self.cause_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_timeout_io(&self) -> Option<Instant> {
        if let Some(d) = self.idle_hold() {
            // Nothing is sent while an alert is held on an idle line.
            return Some(d);
        }
        if let Some(ex) = &self.ex {
            return if ex.unsent() {
                Some(ex.next_at)
            } else {
                ex.deadline
            };
        }
        match self.plan(self.now) {
            Plan::Now(..) | Plan::StartRequest => Some(self.now),
            Plan::At(t) => Some(t),
            Plan::Idle => None,
        }
    }

    fn drive(&mut self, now: Instant) {
        self.expire_cause(now);
        self.settle_hold(now);
        if self.idle_hold().is_some() {
            return;
        }
        if self
            .ex
            .as_ref()
            .is_some_and(|ex| ex.deadline.is_some_and(|d| now >= d))
        {
            self.complete(now, Outcome::Timeout);
        }
        // A few rounds: starting a request may finish it at once (refused before sending).
        for _ in 0..4 {
            if self.ex.is_some() {
                return;
            }
            match self.plan(now) {
                Plan::Now(cmd, purpose) => {
                    let attempt = self.retry.take().map_or(0, |(_, _, a)| a);
                    self.begin(now, cmd, purpose, attempt);
                }
                Plan::StartRequest => self.start_request(now),
                Plan::At(_) | Plan::Idle => return,
            }
        }
    }

    fn timeout_for(&self, cmd: Command) -> Duration {
        match cmd.reply_kind() {
            ReplyKind::Line => self.cfg.reply_timeout,
            ReplyKind::LongLine => self.cfg.long_reply_timeout,
            ReplyKind::SmartMode | ReplyKind::Ack | ReplyKind::OptionalAck => self.cfg.ack_timeout,
            ReplyKind::AckOrAlert => self.cfg.ack_timeout.max(self.cfg.reply_timeout),
        }
    }

    fn begin(&mut self, now: Instant, cmd: Command, purpose: Purpose, attempt: u8) {
        match cmd {
            Command::Status => self.q_started = Some(now),
            Command::TransferCause => self.urgent_g = false,
            Command::SelfTestResult => self.urgent_x = false,
            _ => {}
        }
        match purpose {
            Purpose::Status => {
                self.next_status_at = now + self.cfg.status_interval;
                self.status_urgent = false;
            }
            // A priority read (on battery) does not move the rotation, which would starve
            // the items before it.
            Purpose::Measure(i) if self.natural_rot() == Some(i) => {
                self.rot_idx = (i + 1) % ROTATION.len();
            }
            Purpose::Slow(i) => self.slow_idx = Some(i),
            _ => {}
        }
        self.framer_mode = match cmd {
            Command::ProtocolInfo => FramerMode::Raw,
            Command::Capabilities => FramerMode::Capabilities,
            _ => FramerMode::Normal,
        };
        // NUT flushes before every command: a partial line now can only be stale.
        self.clear_framer = true;
        self.ex = Some(Exchange {
            cmd,
            purpose,
            bytes: cmd.encode_with(&self.pacing),
            sent: 0,
            next_at: now,
            deadline: None,
            attempt,
            started: now,
        });
    }

    fn next_bytes(&mut self, now: Instant) -> Option<Transmit> {
        if self.idle_hold().is_some() {
            return None;
        }
        let timeout = self.ex.as_ref().map(|ex| self.timeout_for(ex.cmd))?;
        let ex = self.ex.as_mut()?;
        if !ex.unsent() || ex.next_at > now {
            return None;
        }
        let mut t = Transmit {
            bytes: heapless::Vec::new(),
        };
        // The first due byte, plus any that follow with no gap.
        while let Some(pb) = ex.bytes.get(ex.sent) {
            if !t.bytes.is_empty() && pb.gap_ms != 0 {
                break;
            }
            if t.bytes.push(pb.byte).is_err() {
                break;
            }
            ex.sent += 1;
        }
        match ex.bytes.get(ex.sent) {
            Some(pb) => ex.next_at = now + Duration::from_millis(u64::from(pb.gap_ms)),
            None => ex.deadline = Some(now + timeout),
        }
        Some(t)
    }

    // ---------------------------------------------------------------- input

    fn on_line(&mut self, now: Instant, line: &[u8]) {
        let Some(ex) = &self.ex else {
            debug!("unsolicited line ignored");
            return;
        };
        if ex.sent == 0 {
            return; // Stale: our command has not gone out yet.
        }
        if ex.purpose == Purpose::Handshake && trim(line) != b"SM" {
            return; // Leftovers from before smart mode; keep waiting for SM.
        }
        // A reply while a paced command is still being sent aborts the rest of it (NUT's
        // silence check): the UPS refused or misread it.
        self.complete(now, Outcome::Line(line));
    }

    // ---------------------------------------------------------------- alerts and line noise

    /// Whether a reply is expected: our command (or its first byte) has gone out.
    fn reply_expected(&self) -> bool {
        self.ex.as_ref().is_some_and(|ex| ex.sent > 0)
    }

    /// The deadline of an alert held on an idle line, if any.
    fn idle_hold(&self) -> Option<Instant> {
        self.held.as_ref().and_then(|h| h.deadline)
    }

    /// An alert byte arrived.
    fn on_alert(&mut self, now: Instant, alert: Alert) {
        // Alerts that double as the acknowledgement end the exchange at once, as before.
        if self.alert_acks(alert) {
            self.act_on_alert(now, alert);
            self.complete(now, Outcome::AlertAck);
            return;
        }
        let quiet = self.cfg.alert_quiet;
        if quiet == Duration::ZERO {
            self.act_on_alert(now, alert);
            return;
        }
        if self.reply_expected() {
            // Held until the reply line: a valid reply confirms it.
            let h = self.held.get_or_insert_with(|| Held::new(None, now));
            h.add(alert);
            return;
        }
        let deadline = |started: Instant| (now + quiet).min(started + MAX_HOLD.max(quiet));
        match &mut self.held {
            Some(h) => {
                // Within the window of the held group: only a run of the same alert is
                // still an alert.
                if h.alerts.iter().any(|a| *a != alert) {
                    h.noise = true;
                }
                h.add(alert);
                if h.deadline.is_some() {
                    h.deadline = Some(deadline(h.started));
                }
            }
            None => {
                let quiet_before = self
                    .last_rx_at
                    .is_none_or(|t| now.saturating_since(t) >= quiet);
                let mut h = Held::new(Some(deadline(now)), now);
                h.noise = !quiet_before;
                h.add(alert);
                self.held = Some(h);
            }
        }
    }

    /// A byte that is not an alert arrived (part of a line, CR, LF, NUL, garbage).
    fn on_other_byte(&mut self, now: Instant) {
        if !self.reply_expected() {
            self.snap.garbage_bytes = self.snap.garbage_bytes.saturating_add(1);
        }
        if let Some(h) = &mut self.held
            && let Some(d) = h.deadline
        {
            // Next to a held alert on an idle line: the alert was line noise.
            h.noise = true;
            let quiet = self.cfg.alert_quiet;
            h.deadline = Some(d.max((now + quiet).min(h.started + MAX_HOLD.max(quiet))));
        }
    }

    /// Resolves the held alerts once their time has come: an idle-line hold at its deadline,
    /// an exchange hold whose exchange went away without a reply (reset, close).
    fn settle_hold(&mut self, now: Instant) {
        let due = match &self.held {
            None => false,
            Some(h) => match h.deadline {
                Some(d) => now >= d,
                None => !self.reply_expected(),
            },
        };
        if due && let Some(h) = self.held.take() {
            let confirmed = h.deadline.is_some();
            self.resolve_held(now, h, confirmed);
        }
    }

    /// Acts on the held alerts if `confirmed` (and not known to be noise), else counts them
    /// as line noise and re-reads the status.
    fn resolve_held(&mut self, now: Instant, h: Held, confirmed: bool) {
        if confirmed && !h.noise {
            for a in h.alerts {
                self.act_on_alert(now, a);
            }
            return;
        }
        debug!("{} alert byte(s) discarded as line noise", h.count);
        self.snap.noise_alerts = self.snap.noise_alerts.saturating_add(h.count);
        self.emit(LinkEvent::LineNoise { alerts: h.count });
        // A genuine change hidden in the burst still shows in the status register.
        self.status_urgent = true;
    }

    /// Whether `alert` is the acknowledgement of the request exchange in flight.
    fn alert_acks(&self, alert: Alert) -> bool {
        let Some(ex) = &self.ex else { return false };
        if ex.purpose != Purpose::Request || ex.unsent() || ex.sent == 0 {
            return false;
        }
        let kind = ex.cmd.reply_kind();
        match alert {
            Alert::AboutToTurnOff => matches!(kind, ReplyKind::Ack | ReplyKind::OptionalAck),
            Alert::LineFail | Alert::LineRestored => kind == ReplyKind::AckOrAlert,
            _ => false,
        }
    }

    /// An alert that passed the line-noise check. A status alert is only provisional: one
    /// noise byte that looks like `!` must not shut a server down, so the flags change only
    /// when the `Q` re-read (sent at once) says so ([`State::resolve_provisional`]).
    fn act_on_alert(&mut self, now: Instant, alert: Alert) {
        self.emit(LinkEvent::Alert(alert));
        match alert {
            Alert::EepromChanged => {
                if self.slow_idx.is_none() {
                    self.next_slow_at = now;
                }
            }
            Alert::AboutToTurnOff | Alert::CheckAlarmRegister => {}
            _ => {
                if self.provisional.is_full() {
                    self.provisional.remove(0);
                }
                let _ = self.provisional.push((alert, now));
                self.status_urgent = true;
            }
        }
    }

    /// A `Q` reply begun at `asked` arrived: settle the alerts that came before it. One the
    /// status contradicts (a lone `!` while `Q` says on line, a late `$` while it still says
    /// on battery) is counted as refuted and changes nothing.
    fn resolve_provisional(&mut self, asked: Instant, flags: StatusFlags) {
        let mut i = 0;
        while let Some(&(alert, at)) = self.provisional.get(i) {
            if at > asked {
                i += 1;
                continue;
            }
            self.provisional.remove(i);
            if !alert_agrees(alert, flags) {
                debug!("alert {} refuted by the status", alert.as_byte());
                self.snap.refuted_alerts = self.snap.refuted_alerts.saturating_add(1);
                self.emit(LinkEvent::AlertRefuted(alert));
            }
        }
    }

    fn set_status(&mut self, now: Instant, new: StatusFlags) {
        let old = self.snap.status.map(|s| s.value);
        if let Some(asked) = self.q_started {
            self.resolve_provisional(asked, new);
        }
        let was_ob = old.is_some_and(|f| f.contains(StatusFlags::OB));
        let is_ob = new.contains(StatusFlags::OB);
        if is_ob && !was_ob {
            self.on_transfer_to_battery(now);
        } else if was_ob && !is_ob {
            self.on_back_from_battery(now);
        }
        if old != Some(new) {
            self.emit(LinkEvent::StatusChanged { old, new });
        }
        self.snap.status = Some(Stamped {
            value: new,
            at: now,
        });
        self.sync_cause_flags();
    }

    // ---------------------------------------------------------------- self-test vs outage

    /// `Q` just went on battery. A self-test (ours, the UPS's schedule, the front panel) does
    /// that too; `G` tells them apart, so it is read next and the transfer stays "cause
    /// pending" until it answers (bounded by [`CAUSE_WAIT`]).
    fn on_transfer_to_battery(&mut self, now: Instant) {
        self.self_test = None;
        if self.supported.contains(b'G') {
            self.cause_check = Some(now);
            self.urgent_g = true;
        } else if self
            .test_ordered_at
            .is_some_and(|t| now.saturating_since(t) <= ORDERED_TEST_WINDOW)
        {
            self.start_self_test(now);
        }
    }

    fn on_back_from_battery(&mut self, now: Instant) {
        self.cause_check = None;
        self.urgent_g = false;
        if let Some(t) = &mut self.self_test {
            t.ending = true;
            t.since = now;
            if self.supported.contains(b'X') {
                self.urgent_x = true;
            } else {
                self.self_test = None;
            }
        }
    }

    fn start_self_test(&mut self, now: Instant) {
        info!("self-test in progress (on battery on purpose)");
        self.test_ordered_at = None;
        self.self_test = Some(SelfTestTrack {
            ending: false,
            since: now,
            x_before: self.snap.self_test.map(|x| x.value),
        });
        if self.supported.contains(b'X') {
            // Watch `X`: a new result while still on battery ends the test early.
            self.urgent_x = false;
        }
    }

    /// `G` answered (or gave up) for an exchange begun at `asked`.
    fn cause_known(&mut self, now: Instant, asked: Instant) {
        let Some(since) = self.cause_check else {
            return;
        };
        if asked < since {
            return; // Asked before the transfer: says nothing about it.
        }
        self.cause_check = None;
        let fresh = self
            .snap
            .last_transfer
            .filter(|c| c.at >= since)
            .map(|c| c.value);
        let ordered = self
            .test_ordered_at
            .is_some_and(|t| since.saturating_since(t) <= ORDERED_TEST_WINDOW);
        if fresh == Some(TransferCause::SelfTest) || (fresh.is_none() && ordered) {
            self.start_self_test(now);
        }
        self.sync_cause_flags();
    }

    /// `X` was read by an exchange begun at `asked`.
    fn self_test_result_read(&mut self, asked: Instant) {
        let Some(t) = self.self_test else { return };
        if asked < t.since {
            return;
        }
        let x = self.snap.self_test.map(|x| x.value);
        if t.ending || x != t.x_before {
            // Back on line with the result in hand, or a new result while still on battery
            // (the test ended and mains is gone: from now on this is an outage).
            self.self_test = None;
            self.sync_cause_flags();
        }
    }

    /// Time limits on the cause check and the self-test (a unit that never answers, a test
    /// that never ends, must not hide an outage).
    fn expire_cause(&mut self, now: Instant) {
        if self
            .cause_check
            .is_some_and(|t| now.saturating_since(t) >= CAUSE_WAIT)
        {
            warn!("no transfer cause within the wait: treated as a power failure");
            self.cause_check = None;
            self.urgent_g = false;
        }
        if let Some(t) = self.self_test {
            let limit = if t.ending {
                SELF_TEST_RESULT_WAIT
            } else {
                SELF_TEST_MAX
            };
            if now.saturating_since(t.since) >= limit {
                if !t.ending {
                    warn!("self-test still on battery after its limit: treated as a power failure");
                }
                self.self_test = None;
                self.urgent_x = false;
            }
        }
        self.sync_cause_flags();
    }

    fn cause_deadline(&self) -> Option<Instant> {
        let c = self.cause_check.map(|t| t + CAUSE_WAIT);
        let t = self.self_test.map(|t| {
            t.since
                + if t.ending {
                    SELF_TEST_RESULT_WAIT
                } else {
                    SELF_TEST_MAX
                }
        });
        match (c, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn sync_cause_flags(&mut self) {
        let pending = self.cause_check.is_some();
        let testing = self.self_test.is_some();
        if self.snap.power_cause_pending != pending || self.snap.self_test_running != testing {
            self.snap.power_cause_pending = pending;
            self.snap.self_test_running = testing;
            self.updated = true;
        }
    }

    // ---------------------------------------------------------------- completion

    fn complete(&mut self, now: Instant, outcome: Outcome<'_>) {
        let Some(ex) = self.ex.take() else { return };
        self.framer_mode = FramerMode::Normal;
        // Alerts held for this exchange: confirmed by a valid reply, noise otherwise. The
        // paths below clear `reply_ok` when the line does not parse.
        let held = self.held.take_if(|h| h.deadline.is_none());
        self.reply_ok = matches!(outcome, Outcome::Line(_) | Outcome::AlertAck);
        self.dispatch(now, ex, outcome);
        if let Some(h) = held {
            let ok = self.reply_ok;
            self.resolve_held(now, h, ok);
        }
    }

    fn dispatch(&mut self, now: Instant, ex: Exchange, outcome: Outcome<'_>) {
        if matches!(ex.cmd, Command::ProtocolInfo | Command::Capabilities) {
            // Alert bytes were kept inside these replies; re-read the status to catch them.
            self.status_urgent = true;
        }
        match ex.purpose {
            Purpose::Handshake => match outcome {
                Outcome::Line(_) => self.on_smart_mode(now),
                _ => self.handshake_failed(now),
            },
            Purpose::Close => {
                self.phase = Phase::Closed;
                self.set_comm(now, CommState::Closed);
                self.emit(LinkEvent::Closed);
            }
            Purpose::Request => self.request_outcome(now, ex.cmd, outcome),
            Purpose::Discovery(_) | Purpose::Status | Purpose::Measure(_) | Purpose::Slow(_) => {
                match outcome {
                    Outcome::Line(l) => {
                        if !matches!(ex.purpose, Purpose::Discovery(_)) {
                            self.charge(now, l.len() + 2);
                        }
                        self.query_reply(now, &ex, l);
                    }
                    _ => self.query_failed(now, &ex),
                }
            }
        }
    }

    fn query_reply(&mut self, now: Instant, ex: &Exchange, line: &[u8]) {
        match self.apply(now, ex.cmd, line) {
            Ok(()) | Err(ParseError::NotReady) => self.failures = 0,
            Err(ParseError::NotAvailable) => {
                self.failures = 0;
                if ex.cmd != Command::Status {
                    // As NUT: a variable answering NA is gone for this session.
                    info!("{} answered NA, dropped", ex.cmd.first_byte());
                    self.supported.remove(ex.cmd.first_byte());
                }
            }
            Err(_) => {
                self.reply_ok = false;
                // Wrong format: a late or corrupted reply, or a unit-specific value. The UPS
                // is talking, so this is not a link failure; it is not retried either (the
                // next poll reads it again). Counting it could turn one odd variable into an
                // endless lost/rediscover loop.
                warn!("bad reply to {}", ex.cmd.first_byte());
            }
        }
        self.query_done(now, ex);
    }

    fn query_failed(&mut self, now: Instant, ex: &Exchange) {
        // Discovery timeouts do not count towards Communication Lost: some old units stay
        // silent on `a` (NUT then falls back), and `Q`, polled in between, still detects a
        // dead link within the bound.
        if !matches!(ex.purpose, Purpose::Discovery(_)) {
            self.failures = self.failures.saturating_add(1);
        }
        if self.failures >= self.cfg.max_consecutive_failures.max(1) {
            self.comm_lost(now);
        } else if ex.attempt < self.cfg.retries {
            self.retry = Some((ex.cmd, ex.purpose, ex.attempt + 1));
        } else {
            self.query_done(now, ex);
        }
    }

    /// Moves the discovery / settings pass on after an item finished (or was given up).
    fn query_done(&mut self, now: Instant, ex: &Exchange) {
        match ex.cmd {
            Command::TransferCause => self.cause_known(now, ex.started),
            Command::SelfTestResult => self.self_test_result_read(ex.started),
            _ => {}
        }
        match ex.purpose {
            Purpose::Discovery(i) => {
                if ex.cmd == Command::ProtocolInfo && self.snap.protocol.is_none() {
                    self.supported = CommandSet::from_bytes(FALLBACK);
                }
                self.advance_discovery(now, i + 1);
            }
            Purpose::Slow(i) => {
                self.slow_idx = self.next_slow_from(i + 1);
                if self.slow_idx.is_none() {
                    self.next_slow_at = now + self.cfg.slow_poll_interval;
                }
            }
            _ => {}
        }
    }

    fn discovery_wanted(&self, cmd: Command) -> bool {
        match cmd {
            Command::ProtocolInfo => true,
            Command::OldFirmware => {
                self.snap.identity.firmware.is_none() && self.supported.contains(b'V')
            }
            c => self.supported.contains(c.first_byte()),
        }
    }

    fn advance_discovery(&mut self, now: Instant, from: usize) {
        let mut i = from;
        while let Some(c) = DISCOVERY.get(i) {
            if self.discovery_wanted(*c) {
                self.disc_idx = i;
                return;
            }
            i += 1;
        }
        self.discovering = false;
        self.slow_idx = None;
        self.next_slow_at = now + self.cfg.slow_poll_interval;
        info!("discovery complete");
        self.emit(LinkEvent::Identified);
    }

    fn on_smart_mode(&mut self, now: Instant) {
        self.phase = Phase::Connected;
        self.hs_attempts = 0;
        self.hs_backoff = INITIAL_BACKOFF;
        self.failures = 0;
        if self.snap.comm != CommState::Established {
            self.set_comm(now, CommState::Established);
            info!("communication established");
            self.emit(LinkEvent::CommEstablished);
        }
        self.next_status_at = now;
        self.credit = 0;
        self.credit_at = now;
        if core::mem::take(&mut self.need_discovery) {
            // A UPS that went silent may have been power-cycled back into dumb mode,
            // replaced, or reconfigured: we cannot tell, so discover again.
            self.discovering = true;
            self.snap.protocol = None;
            self.supported = CommandSet::from_bytes(FALLBACK);
            self.disc_idx = 0;
        }
    }

    fn handshake_failed(&mut self, now: Instant) {
        self.hs_attempts = self.hs_attempts.saturating_add(1);
        if self.hs_attempts < self.cfg.handshake_retries.max(1) {
            self.hs_next_at = now;
            return;
        }
        if self.snap.comm != CommState::Lost {
            self.report_lost(now);
        }
        self.hs_next_at = now + self.hs_backoff;
        self.hs_backoff = Duration(
            self.hs_backoff
                .as_millis()
                .saturating_mul(2)
                .min(self.cfg.handshake_backoff_max.as_millis()),
        )
        .max(Duration::from_millis(1));
    }

    fn report_lost(&mut self, now: Instant) {
        self.set_comm(now, CommState::Lost);
        warn!("communication lost");
        self.emit(LinkEvent::CommLost);
        self.fail_requests(RequestFailure::CommLost);
    }

    fn comm_lost(&mut self, now: Instant) {
        if self.snap.comm != CommState::Lost {
            self.report_lost(now);
        }
        self.ex = None;
        self.retry = None;
        self.framer_mode = FramerMode::Normal;
        self.phase = Phase::Handshake;
        self.hs_attempts = 0;
        self.hs_backoff = INITIAL_BACKOFF;
        self.hs_next_at = now;
        self.need_discovery = true;
        self.discovering = false;
        self.slow_idx = None;
        self.failures = 0;
        self.status_urgent = false;
        self.forget_line_state();
    }

    /// A lost or reopened link: pending alerts, a cause check or a self-test say nothing
    /// about the UPS found after it.
    fn forget_line_state(&mut self) {
        self.provisional.clear();
        self.q_started = None;
        self.cause_check = None;
        self.urgent_g = false;
        self.urgent_x = false;
        self.self_test = None;
        self.sync_cause_flags();
    }

    fn reset(&mut self, now: Instant) {
        self.ex = None;
        self.retry = None;
        // The port was reopened: bytes from before say nothing about the new line.
        self.held = None;
        self.last_rx_at = None;
        if let Some(a) = self.active.take() {
            self.emit(LinkEvent::RequestDone {
                id: a.id,
                result: RequestResult::Failed(RequestFailure::CommLost),
            });
        }
        self.framer_mode = FramerMode::Normal;
        self.phase = Phase::Handshake;
        self.hs_attempts = 0;
        self.hs_backoff = INITIAL_BACKOFF;
        self.hs_next_at = now;
        self.need_discovery = true;
        self.discovering = false;
        self.slow_idx = None;
        self.failures = 0;
        self.status_urgent = false;
        self.forget_line_state();
    }

    fn shutdown_link(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.fail_queued(RequestFailure::Closed);
        self.retry = None;
        let keep = self
            .ex
            .as_ref()
            .is_some_and(|ex| ex.sent > 0 && ex.cmd.is_paced());
        if !keep {
            self.ex = None;
            self.framer_mode = FramerMode::Normal;
            if let Some(a) = self.active.take() {
                self.finish_request(now, a, RequestResult::Failed(RequestFailure::Closed));
            }
        }
        self.phase = Phase::Closing;
    }

    // ---------------------------------------------------------------- replies → snapshot

    /// Parses a reply to `cmd` and stores it in the snapshot.
    fn apply(&mut self, now: Instant, cmd: Command, line: &[u8]) -> Result<(), ParseError> {
        let m = &mut self.snap.measurements;
        let mut changed = false;
        match cmd {
            Command::Status => {
                let s = StatusFlags::parse(line)?;
                self.set_status(now, s);
            }
            Command::InputVoltage => {
                changed = store(&mut m.input_voltage, Centi::parse(line)?, now)
            }
            Command::OutputVoltage => {
                changed = store(&mut m.output_voltage, Centi::parse(line)?, now);
            }
            Command::MaxLineVoltage => {
                changed = store(&mut m.max_line_voltage, Centi::parse(line)?, now);
            }
            Command::MinLineVoltage => {
                changed = store(&mut m.min_line_voltage, Centi::parse(line)?, now);
            }
            Command::LineFrequency => changed = store(&mut m.frequency, Centi::parse(line)?, now),
            Command::Load => changed = store(&mut m.load_percent, Centi::parse(line)?, now),
            Command::BatteryCharge => {
                changed = store(&mut m.charge_percent, Centi::parse(line)?, now);
            }
            Command::BatteryVoltage => {
                changed = store(&mut m.battery_voltage, Centi::parse(line)?, now);
            }
            Command::Temperature => changed = store(&mut m.temperature, Centi::parse(line)?, now),
            Command::Runtime => {
                changed = store(&mut m.runtime_seconds, parse_runtime_seconds(line)?, now);
            }
            Command::LineQuality => changed = store(&mut m.line_quality, parse_hex_u8(line)?, now),
            Command::TransferCause => {
                changed = store(
                    &mut self.snap.last_transfer,
                    TransferCause::parse(line)?,
                    now,
                );
            }
            Command::SelfTestResult => {
                let v = SelfTestResult::parse(line)?;
                let known = self.snap.self_test.is_some();
                changed = store(&mut self.snap.self_test, v, now);
                if changed && known {
                    self.emit(LinkEvent::SelfTestResult(v));
                }
            }
            Command::Register1 => {
                let v = Register1::parse(line)?;
                let old = self.snap.registers.reg1.map(|r| r.value.0);
                changed = store(&mut self.snap.registers.reg1, v, now);
                self.register_changed(1, old, v.0);
            }
            Command::Register2 => {
                let v = Register2::parse(line)?;
                let old = self.snap.registers.reg2.map(|r| r.value.0);
                changed = store(&mut self.snap.registers.reg2, v, now);
                self.register_changed(2, old, v.0);
            }
            Command::Register3 => {
                let v = Register3::parse(line)?;
                let old = self.snap.registers.reg3.map(|r| r.value.0);
                changed = store(&mut self.snap.registers.reg3, v, now);
                self.register_changed(3, old, v.0);
            }
            Command::ModelName => {
                store(&mut self.snap.identity.model, parse_text(line)?, now);
            }
            Command::SerialNumber => {
                store(&mut self.snap.identity.serial, parse_text(line)?, now);
            }
            Command::ManufactureDate => {
                store(
                    &mut self.snap.identity.manufacture_date,
                    parse_text(line)?,
                    now,
                );
            }
            Command::BatteryDate => {
                store(&mut self.snap.identity.battery_date, parse_text(line)?, now);
            }
            Command::UpsId => {
                store(&mut self.snap.identity.ups_id, parse_text(line)?, now);
            }
            Command::FirmwareRevision | Command::OldFirmware => {
                let fw = if cmd == Command::FirmwareRevision {
                    Firmware::parse_b(line)?
                } else {
                    Firmware::parse_v(line)?
                };
                self.snap.identity.locale = Some(fw.locale);
                store(&mut self.snap.identity.firmware, fw, now);
            }
            Command::NominalBatteryVoltage => {
                store(
                    &mut self.snap.identity.nominal_battery_voltage,
                    u16_of(line)?,
                    now,
                );
            }
            Command::ProtocolInfo => {
                let info = ProtocolInfo::parse(line)?;
                self.supported = info.commands;
                self.snap.protocol = Some(info);
            }
            Command::Capabilities => {
                let t = CapabilityTable::parse(line, self.snap.identity.locale)?;
                if t.is_truncated() {
                    warn!("capability string truncated; fragment ignored");
                }
                self.snap.capabilities = Some(t);
            }
            _ => return self.apply_setting(now, cmd, line),
        }
        self.updated |= changed;
        Ok(())
    }

    fn apply_setting(&mut self, now: Instant, cmd: Command, line: &[u8]) -> Result<(), ParseError> {
        let Some(var) = SettingVar::from_byte(cmd.first_byte()) else {
            return Ok(()); // A reply we do not track.
        };
        let st = &mut self.snap.settings;
        let (was_known, changed) = match var {
            SettingVar::TransferHigh => (
                st.transfer_high.is_some(),
                store(&mut st.transfer_high, u16_of(line)?, now),
            ),
            SettingVar::TransferLow => (
                st.transfer_low.is_some(),
                store(&mut st.transfer_low, u16_of(line)?, now),
            ),
            SettingVar::MinReturnCharge => (
                st.min_return_charge_pct.is_some(),
                store(&mut st.min_return_charge_pct, u8_of(line)?, now),
            ),
            SettingVar::OutputVoltage => {
                let id = &mut self.snap.identity;
                (
                    id.nominal_output_voltage.is_some(),
                    store(&mut id.nominal_output_voltage, u16_of(line)?, now),
                )
            }
            SettingVar::Sensitivity => (
                st.sensitivity.is_some(),
                store(&mut st.sensitivity, Sensitivity::parse(line)?, now),
            ),
            SettingVar::LowBatteryWarning => (
                st.low_battery_warning_min.is_some(),
                store(&mut st.low_battery_warning_min, u8_of(line)?, now),
            ),
            SettingVar::ShutdownDelay => (
                st.shutdown_delay_s.is_some(),
                store(&mut st.shutdown_delay_s, u16_of(line)?, now),
            ),
            SettingVar::AlarmDelay => (
                st.alarm_delay.is_some(),
                store(&mut st.alarm_delay, AlarmDelay::parse(line)?, now),
            ),
            SettingVar::ReturnDelay => (
                st.return_delay_s.is_some(),
                store(&mut st.return_delay_s, u16_of(line)?, now),
            ),
            SettingVar::SelfTestInterval => (
                st.self_test_interval.is_some(),
                store(
                    &mut st.self_test_interval,
                    SelfTestInterval::parse(line)?,
                    now,
                ),
            ),
        };
        // (known before, changed): report changes, not first reads.
        if changed
            && was_known
            && let Some(value) = Value::new(trim_end(trim(line)))
        {
            self.emit(LinkEvent::SettingChanged { var, value });
        }
        Ok(())
    }

    fn register_changed(&mut self, register: u8, old: Option<u8>, new: u8) {
        if let Some(old) = old
            && old != new
        {
            self.emit(LinkEvent::RegisterChanged { register, old, new });
        }
    }

    // ---------------------------------------------------------------- requests

    fn request(&mut self, req: UpsRequest) -> Result<RequestId, RequestError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(RequestError::Closed);
        }
        let needs: &[u8] = match &req {
            UpsRequest::ShutdownReturn { tenths_of_hour } if *tenths_of_hour > 999 => {
                return Err(RequestError::InvalidValue);
            }
            UpsRequest::WriteString { var, value } => {
                if Command::write_string(*var, value).is_none() {
                    return Err(RequestError::InvalidValue);
                }
                &[var.byte(), b'-']
            }
            UpsRequest::SetSetting { var, value } => {
                if let Some(caps) = &self.snap.capabilities
                    && !permits(caps, *var, value)
                {
                    return Err(RequestError::NotPermitted);
                }
                &[var.byte(), b'-']
            }
            UpsRequest::CalibrationStart | UpsRequest::CalibrationAbort => b"D",
            UpsRequest::KillPower => &[],
            UpsRequest::SelfTest => b"W",
            UpsRequest::SimulatePowerFail => b"U",
            UpsRequest::PanelTest => b"A",
            UpsRequest::SoftShutdown => b"S",
            UpsRequest::ShutdownReturn { .. } => b"@",
            UpsRequest::ShutdownStayOff => b"K",
            UpsRequest::TurnOff => b"Z",
            UpsRequest::TurnOn => b"\x0e",
            UpsRequest::AbortShutdown => b"\x7f",
        };
        if self.snap.protocol.is_some() && !needs.iter().all(|b| self.supported.contains(*b)) {
            return Err(RequestError::NotSupported);
        }
        let id = RequestId(self.next_id);
        self.queue
            .push_back((id, req))
            .map_err(|_| RequestError::QueueFull)?;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    fn start_request(&mut self, now: Instant) {
        let Some((id, req)) = self.queue.pop_front() else {
            return;
        };
        let mut active = Active::new(id, req, self.snap.status.map(|s| s.value));
        if let UpsRequest::SetSetting { var, value } = &active.req {
            let permitted = self
                .snap
                .capabilities
                .as_ref()
                .and_then(|c| c.permitted(var.byte()));
            let failure = if !self.supported.contains(var.byte()) {
                Some(RequestFailure::NotSupported)
            } else if !permitted.is_some_and(|p| p.iter().any(|v| v.matches(value.as_bytes()))) {
                Some(RequestFailure::NotPermitted)
            } else {
                None
            };
            if let Some(f) = failure {
                self.finish_request(now, active, RequestResult::Failed(f));
                return;
            }
            // One full wrap plus one: enough to reach any permitted value.
            active.max_cycles = permitted.map_or(32, |p| p.len() as u8).saturating_add(1);
        }
        let cmd = active.command();
        self.active = Some(active);
        self.begin(now, cmd, Purpose::Request, 0);
    }

    fn request_outcome(&mut self, now: Instant, cmd: Command, outcome: Outcome<'_>) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        if let Outcome::Line(l) = outcome {
            self.failures = 0;
            if a.is_status_query() || a.is_var_query() {
                // The reply is real data: keep the snapshot current too.
                if let Err(ParseError::Invalid | ParseError::Overflow | ParseError::Empty) =
                    self.apply(now, cmd, l)
                {
                    self.reply_ok = false;
                }
            }
        }
        let step = a.advance(outcome);
        if matches!(
            step,
            Step::Finished(RequestResult::Failed(RequestFailure::UnexpectedReply))
        ) {
            self.reply_ok = false;
        }
        match step {
            Step::Continue if self.phase == Phase::Closing => {
                self.finish_request(now, a, RequestResult::Failed(RequestFailure::Closed));
            }
            Step::Continue => self.active = Some(a),
            Step::Finished(result) => self.finish_request(now, a, result),
        }
    }

    fn finish_request(&mut self, now: Instant, a: Active, result: RequestResult) {
        if matches!(a.req, UpsRequest::SelfTest) && matches!(result, RequestResult::Done) {
            self.test_ordered_at = Some(now);
        }
        if matches!(a.req, UpsRequest::SetSetting { .. }) && matches!(result, RequestResult::Done) {
            // Re-read all settings now: one change can move others (e.g. `o` moves `u`/`l`).
            self.slow_idx = None;
            self.next_slow_at = now;
        }
        self.emit(LinkEvent::RequestDone { id: a.id, result });
    }

    fn fail_queued(&mut self, f: RequestFailure) {
        while let Some((id, _)) = self.queue.pop_front() {
            self.emit(LinkEvent::RequestDone {
                id,
                result: RequestResult::Failed(f),
            });
        }
    }

    fn fail_requests(&mut self, f: RequestFailure) {
        if let Some(a) = self.active.take() {
            self.emit(LinkEvent::RequestDone {
                id: a.id,
                result: RequestResult::Failed(f),
            });
        }
        self.fail_queued(f);
    }
}

/// Whether a status reading bears out an alert.
fn alert_agrees(alert: Alert, f: StatusFlags) -> bool {
    match alert {
        Alert::LineFail => f.contains(StatusFlags::OB),
        Alert::LineRestored => f.contains(StatusFlags::OL) && !f.contains(StatusFlags::OB),
        Alert::LowBattery => f.contains(StatusFlags::LB),
        Alert::BatteryRestored => !f.contains(StatusFlags::LB),
        Alert::ReplaceBattery => f.contains(StatusFlags::RB),
        Alert::Abnormal => f.contains(StatusFlags::OVER),
        Alert::AbnormalCleared => !f.contains(StatusFlags::OVER),
        Alert::EepromChanged | Alert::AboutToTurnOff | Alert::CheckAlarmRegister => true,
    }
}

fn permits(caps: &CapabilityTable, var: SettingVar, value: &Value) -> bool {
    caps.permitted(var.byte())
        .is_some_and(|p| p.iter().any(|v| v.matches(value.as_bytes())))
}

fn u16_of(line: &[u8]) -> Result<u16, ParseError> {
    u16::try_from(parse_uint(line)?).map_err(|_| ParseError::Overflow)
}

fn u8_of(line: &[u8]) -> Result<u8, ParseError> {
    u8::try_from(parse_uint(line)?).map_err(|_| ParseError::Overflow)
}
