//! The composed product: one [`Agent`] owns the link driver and the shutdown machine and
//! translates between them, so a host (the Linux service) and a firmware (an appliance) run
//! exactly the same logic. Sans-I/O in the style of quinn-proto: the caller owns the port and
//! the clock, passes `now` in, and writes what it is told.
//!
//! # Call order
//!
//! ```text
//! loop {
//!     while let Some(t) = agent.poll_transmit(now) { port.write_all(t.as_bytes()) }
//!     while let Some(e) = agent.poll_event() { log / publish (e) }
//!     while let Some(a) = agent.poll_action() { execute(a) }     // command file, OS shutdown…
//!     wait for bytes or until agent.poll_timeout()
//!     agent.handle_input(now, bytes)  or  agent.handle_timeout(now)
//! }
//! ```
//!
//! Operator calls ([`Agent::shutdown_now`], [`Agent::sleep`], [`Agent::request`], …) may come
//! between any two steps; drain events and actions after each. [`crate::pump`] is this loop
//! over `embedded-io`.
//!
//! The link driver's fine-grained [`LinkEvent`]s are consumed here: a batch of them becomes at
//! most one [`Observation`] for the shutdown machine, whose catalogue [`Event`]s come out as
//! [`AgentEvent::Ups`]. A UPS turn-off the machine wants right away (`sleep` without an OS
//! shutdown) becomes a UPS request inside the agent; the host only sees
//! [`AgentEvent::UpsOffSent`].

use heapless::Deque;

use crate::event::Event;
use crate::link::{
    CommState, LinkConfig, LinkDriver, LinkEvent, RequestError, RequestId, RequestResult, Transmit,
    UpsRequest, UpsSnapshot,
};
use crate::shutdown::{
    Action, CalibrationState, CancelError, Observation, Phase,
    RequestError as ShutdownRequestError, SelfTestResult as ObsSelfTest, ShutdownConfig,
    ShutdownMachine, UpsOffMode,
};
use crate::time::{Duration, Instant};
use crate::wire::{SelfTestResult, StatusFlags};

/// What one call produces (the host drains after every call; overflow is counted).
const EVENT_CAP: usize = 16;
const ACTION_CAP: usize = 8;

/// What the host must do; everything else the agent does itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HostAction {
    /// Run the shutdown command file; the sequence waits up to `duration` for it
    /// ([`Agent::command_file_finished`] when it ends earlier).
    RunCommandFile { duration: Duration },
    /// Persist the killpower flag with this mode (see [`crate::records`]) so the hook late in
    /// the halt turns the UPS off. Always before [`HostAction::StartOsShutdown`].
    ArmUpsTurnOff { mode: UpsOffMode },
    /// Run the OS shutdown. Irrevocable.
    StartOsShutdown,
    /// The sequence was cancelled: stop the command file, remove the killpower flag.
    CancelShutdown,
}

/// Something to log or publish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AgentEvent {
    /// A catalogue event: UPS conditions and the shutdown sequence.
    Ups(Event),
    /// Discovery finished: identity, command set and capabilities are in the snapshot.
    Identified,
    /// A request made with [`Agent::request`] finished.
    RequestDone {
        id: RequestId,
        result: RequestResult,
    },
    /// The turn-off the shutdown machine ordered itself (sleep without an OS shutdown) was
    /// sent to the UPS, with its outcome.
    UpsOffSent {
        mode: UpsOffMode,
        result: RequestResult,
    },
    /// [`Agent::shutdown_link`] finished (`R` sent).
    Closed,
}

/// Counters worth watching (all saturating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Alert bytes discarded as line noise.
    pub noise_alerts: u32,
    /// Alerts the next `Q` contradicted.
    pub refuted_alerts: u32,
    /// Bytes that arrived while no reply was expected.
    pub garbage_bytes: u32,
    /// Events or actions lost because the caller did not drain them (should stay 0).
    pub dropped: u32,
}

/// Everything a reader needs, borrowed from the agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentState<'a> {
    pub ups: &'a UpsSnapshot,
    pub phase: Phase,
    /// Runtime as the shutdown machine estimates it now (drained since the last reading).
    pub estimated_runtime: Option<Duration>,
    /// How long until a shutdown sequence starts ([`ShutdownMachine::time_to_shutdown`]).
    pub time_to_shutdown: Option<Duration>,
    pub shutdown_config: &'a ShutdownConfig,
    pub counters: Counters,
}

impl From<&UpsSnapshot> for Observation {
    /// What the link driver knows, as input to the shutdown machine.
    fn from(s: &UpsSnapshot) -> Observation {
        match s.comm {
            CommState::Lost | CommState::Closed => return Observation::comm_lost(),
            // Until the first handshake nothing is known; "lost" would fire at every start.
            CommState::Connecting => return Observation::default(),
            CommState::Established => {}
        }
        let flags = s.status.map(|st| st.value);
        // Status 00 means the output is off: it says nothing about mains or the battery.
        let off = flags.is_some_and(|f| f.is_empty());
        let flag = |f: StatusFlags| flags.filter(|_| !off).map(|v| v.contains(f));
        Observation {
            comm_ok: Some(true),
            // Until `G` says why the UPS went on battery (outage or self-test), nothing acts
            // on the transfer: unknown keeps the machine's last state (bounded by the driver).
            on_battery: flag(StatusFlags::OB).filter(|_| !s.power_cause_pending),
            low_battery: flag(StatusFlags::LB),
            runtime_s: s.measurements.runtime_seconds.map(|r| r.value),
            charge_tenths: s
                .measurements
                .charge_percent
                .and_then(|c| u16::try_from(c.value.tenths().clamp(0, 1000)).ok()),
            overload: flag(StatusFlags::OVER),
            replace_battery: flag(StatusFlags::RB),
            battery_disconnected: s.registers.reg2.map(|r| r.value.battery_disconnected()),
            output_off: flags.map(|f| f.is_empty()),
            sleeping: s.registers.reg3.map(|r| r.value.asleep()),
            boost: flag(StatusFlags::BOOST),
            trim: flag(StatusFlags::TRIM),
            temperature_dc: s
                .measurements
                .temperature
                .and_then(|t| i16::try_from(t.value.tenths()).ok()),
            self_test: if s.self_test_running {
                Some(ObsSelfTest::InProgress)
            } else {
                s.self_test.map(|t| match t.value {
                    SelfTestResult::Passed => ObsSelfTest::Passed,
                    SelfTestResult::BatteryFailed | SelfTestResult::OverloadFailed => {
                        ObsSelfTest::Failed
                    }
                    SelfTestResult::NoResult => ObsSelfTest::NoResult,
                })
            },
            calibration: flag(StatusFlags::CAL).map(|c| {
                if c {
                    CalibrationState::Running
                } else {
                    CalibrationState::Idle
                }
            }),
        }
    }
}

impl UpsOffMode {
    /// The UPS request that carries out this mode now. `ShutdownReturn` is the killpower
    /// sequence (`S` on battery, else `@000`, falling back to `K`…`K`); the same mapping
    /// serves the killpower hook and an immediate sleep.
    pub const fn request(self) -> UpsRequest {
        match self {
            UpsOffMode::ShutdownReturn => UpsRequest::KillPower,
            UpsOffMode::StayOff => UpsRequest::ShutdownStayOff,
            UpsOffMode::Sleep { .. } => UpsRequest::ShutdownReturn {
                tenths_of_hour: match self.sleep_tenths_of_hour() {
                    Some(t) => t,
                    None => 1,
                },
            },
        }
    }
}

/// The link driver and the shutdown machine, composed. See the [module docs](self).
#[derive(Debug)]
pub struct Agent {
    link: LinkDriver,
    machine: ShutdownMachine,
    events: Deque<AgentEvent, EVENT_CAP>,
    actions: Deque<HostAction, ACTION_CAP>,
    /// The machine's own turn-off request in flight.
    turn_off: Option<(RequestId, UpsOffMode)>,
    dropped: u32,
    /// Something a reader can see changed since [`Agent::take_changed`].
    changed: bool,
}

impl Agent {
    pub fn new(link: LinkConfig, shutdown: ShutdownConfig) -> Self {
        Agent {
            link: LinkDriver::new(link),
            machine: ShutdownMachine::new(shutdown),
            events: Deque::new(),
            actions: Deque::new(),
            turn_off: None,
            dropped: 0,
            changed: true,
        }
    }

    // ---------------------------------------------------------------- I/O

    /// Bytes received from the port.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.link.handle_input(now, bytes);
        self.after(now);
    }

    /// Call when [`Self::poll_timeout`] has passed (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
        }
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
        self.after(now);
    }

    /// Bytes to write now; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let t = self.link.poll_transmit(now);
        self.after(now);
        t
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.link.poll_timeout(), self.machine.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<HostAction> {
        self.actions.pop_front()
    }

    /// The port was reopened: start again with the handshake.
    pub fn reset(&mut self, now: Instant) {
        self.link.reset(now);
        self.after(now);
    }

    /// Leave the UPS in dumb mode (`R`); [`AgentEvent::Closed`] follows.
    pub fn shutdown_link(&mut self, now: Instant) {
        self.link.shutdown_link(now);
        self.after(now);
    }

    // ---------------------------------------------------------------- state

    pub fn state(&self) -> AgentState<'_> {
        let ups = self.link.snapshot();
        AgentState {
            ups,
            phase: self.machine.phase(),
            estimated_runtime: self.machine.estimated_runtime(),
            time_to_shutdown: self.machine.time_to_shutdown(),
            shutdown_config: self.machine.config(),
            counters: Counters {
                noise_alerts: ups.noise_alerts,
                refuted_alerts: ups.refuted_alerts,
                garbage_bytes: ups.garbage_bytes,
                dropped: self
                    .dropped
                    .saturating_add(ups.events_dropped)
                    .saturating_add(self.machine.dropped_events())
                    .saturating_add(self.machine.dropped_actions()),
            },
        }
    }

    pub fn snapshot(&self) -> &UpsSnapshot {
        self.link.snapshot()
    }

    pub fn link_config(&self) -> &LinkConfig {
        self.link.config()
    }

    /// Whether anything a reader sees changed since the last call (then resets it). The
    /// host publishes its shared state only then.
    pub fn take_changed(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    // ---------------------------------------------------------------- operator calls

    /// Queues a UPS command (self-test, setting, string write, …).
    pub fn request(&mut self, now: Instant, req: UpsRequest) -> Result<RequestId, RequestError> {
        let r = self.link.request(now, req);
        self.after(now);
        r
    }

    pub fn shutdown_now(&mut self, now: Instant) -> Result<(), ShutdownRequestError> {
        let r = self.machine.shutdown_now(now);
        self.after(now);
        r
    }

    /// UPS sleep for `hours`; `graceful`: shut the OS down first.
    pub fn sleep(
        &mut self,
        now: Instant,
        hours: u16,
        graceful: bool,
    ) -> Result<(), ShutdownRequestError> {
        let r = self.machine.sleep(now, hours, graceful);
        self.after(now);
        r
    }

    pub fn scheduled_shutdown(
        &mut self,
        now: Instant,
        wake_after: Option<Duration>,
    ) -> Result<(), ShutdownRequestError> {
        let r = self.machine.scheduled_shutdown(now, wake_after);
        self.after(now);
        r
    }

    pub fn cancel(&mut self, now: Instant) -> Result<(), CancelError> {
        let r = self.machine.cancel(now);
        self.after(now);
        r
    }

    pub fn command_file_finished(&mut self, now: Instant) {
        self.machine.command_file_finished(now);
        self.after(now);
    }

    /// The OS shutdown ran and this process is still here ([`Phase::Completed`]).
    pub fn os_shutdown_done(&mut self, now: Instant) {
        self.machine.os_shutdown_done(now);
        self.after(now);
    }

    pub fn set_shutdown_config(&mut self, now: Instant, cfg: ShutdownConfig) {
        self.machine.set_config(now, cfg);
        self.after(now);
    }

    // ---------------------------------------------------------------- internals

    fn push_event(&mut self, e: AgentEvent) {
        if self.events.push_back(e).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    fn push_action(&mut self, a: HostAction) {
        if self.actions.push_back(a).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Consumes what the link driver reported, feeds the machine once, and turns the
    /// machine's output into events and host actions.
    fn after(&mut self, now: Instant) {
        // A request made below can finish at once (refused before sending): a second round
        // picks its event up. More rounds are never needed.
        for _ in 0..2 {
            self.round(now);
        }
    }

    fn round(&mut self, now: Instant) {
        let mut observe = false;
        while let Some(e) = self.link.poll_event() {
            self.changed = true;
            match e {
                LinkEvent::RequestDone { id, result } => match self.turn_off {
                    Some((tid, mode)) if tid == id => {
                        self.turn_off = None;
                        self.push_event(AgentEvent::UpsOffSent { mode, result });
                    }
                    _ => self.push_event(AgentEvent::RequestDone { id, result }),
                },
                LinkEvent::Identified => {
                    observe = true;
                    self.push_event(AgentEvent::Identified);
                }
                LinkEvent::Closed => self.push_event(AgentEvent::Closed),
                // Counted in the snapshot; the status they may lead to arrives by `Q`.
                LinkEvent::Alert(_) | LinkEvent::AlertRefuted(_) | LinkEvent::LineNoise { .. } => {}
                LinkEvent::CommEstablished
                | LinkEvent::CommLost
                | LinkEvent::StatusChanged { .. }
                | LinkEvent::Updated
                | LinkEvent::SettingChanged { .. }
                | LinkEvent::SelfTestResult(_)
                | LinkEvent::RegisterChanged { .. } => observe = true,
            }
        }
        if observe {
            let obs = Observation::from(self.link.snapshot());
            self.machine.observe(now, &obs);
        }
        while let Some(e) = self.machine.poll_event() {
            self.changed = true;
            self.push_event(AgentEvent::Ups(e));
        }
        while let Some(a) = self.machine.poll_action() {
            self.changed = true;
            match a {
                Action::RunCommandFile { duration } => {
                    self.push_action(HostAction::RunCommandFile { duration })
                }
                Action::ArmUpsTurnOff { mode } => {
                    self.push_action(HostAction::ArmUpsTurnOff { mode })
                }
                Action::StartOsShutdown => self.push_action(HostAction::StartOsShutdown),
                Action::CancelShutdown => self.push_action(HostAction::CancelShutdown),
                Action::TurnOffUpsNow { mode } => match self.link.request(now, mode.request()) {
                    Ok(id) => self.turn_off = Some((id, mode)),
                    Err(e) => self.push_event(AgentEvent::UpsOffSent {
                        mode,
                        result: RequestResult::Failed(match e {
                            RequestError::Closed => crate::link::RequestFailure::Closed,
                            _ => crate::link::RequestFailure::Refused,
                        }),
                    }),
                },
            }
        }
    }
}
