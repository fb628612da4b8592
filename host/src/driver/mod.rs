//! The driver role (NUT's driver ↔ shared state ↔ monitor split): a dedicated thread owns
//! the serial port and the core [`Agent`] (link driver + shutdown machine) and turns the core
//! pump. After every turn it publishes the new [`UpsState`] first — every server (web, CLI,
//! data log, and the network servers) reads that `watch` directly and never waits for the
//! monitor — and then hands catalogue events and host actions to the monitor, which only
//! executes them (logs, command files, notifications, OS shutdown, killpower flag).
//!
//! The shutdown decision itself is made here, on this thread, so it stays on time however
//! busy the async servers are.

mod port;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use upsguard_core::agent::{Agent, AgentEvent, Counters, HostAction};
use upsguard_core::event::Event;
use upsguard_core::link::{LinkConfig, RequestId, RequestResult, UpsRequest, UpsSnapshot};
use upsguard_core::pump;
use upsguard_core::shutdown::{Phase, ShutdownConfig, UpsOffMode};
use upsguard_core::time::{Duration as CoreDuration, Instant};

pub use port::{CoreClock, HostPort, PortError};

use crate::clock::Clock;
use crate::serial::{OpenError, SerialLink};

/// What every reader sees: the driver's snapshot and the shutdown machine's view of it.
#[derive(Debug, Clone)]
pub struct UpsState {
    pub ups: UpsSnapshot,
    pub phase: Phase,
    pub estimated_runtime: Option<CoreDuration>,
    pub time_to_shutdown: Option<CoreDuration>,
    pub shutdown_config: ShutdownConfig,
    pub counters: Counters,
}

impl UpsState {
    fn of(agent: &Agent) -> Self {
        let s = agent.state();
        UpsState {
            ups: s.ups.clone(),
            phase: s.phase,
            estimated_runtime: s.estimated_runtime,
            time_to_shutdown: s.time_to_shutdown,
            shutdown_config: *s.shutdown_config,
            counters: s.counters,
        }
    }
}

/// What the driver thread reports to the monitor.
#[derive(Debug, Clone)]
pub struct DriverMessage {
    /// Wall-clock time the triggering bytes (or deadline) were handled.
    pub at: SystemTime,
    pub kind: DriverMessageKind,
}

#[derive(Debug, Clone)]
pub enum DriverMessageKind {
    /// A catalogue event (UPS condition or shutdown sequence) to log and act on.
    Event(Event),
    /// Something the host must execute.
    Action(HostAction),
    /// Discovery finished.
    Identified,
    /// The machine's own immediate UPS turn-off was sent (sleep without an OS shutdown).
    UpsOffSent {
        mode: UpsOffMode,
        result: RequestResult,
    },
    /// The port could not be opened or was lost; `first` is set once per outage.
    PortProblem {
        message: String,
        first: bool,
    },
    PortOpened(PathBuf),
}

/// An operator's (or the monitor's) call into the shutdown machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operator {
    ShutdownNow,
    Sleep { hours: u16, graceful: bool },
    Cancel,
    Scheduled { wake_after: Option<CoreDuration> },
    CommandFileFinished,
    OsShutdownDone,
    SetShutdownConfig(ShutdownConfig),
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Control {
    Request(UpsRequest, Reply<RequestResult>),
    Operator(Operator, Option<Reply<()>>),
    Stop(oneshot::Sender<()>),
}

/// The service's handle on the driver thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    control: std_mpsc::Sender<Control>,
    /// Write end of the wake-up socket the thread polls beside the serial port.
    waker: Arc<UnixStream>,
    state: watch::Receiver<Arc<UpsState>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Request(r, _) => write!(f, "Request({r:?})"),
            Control::Operator(o, _) => write!(f, "Operator({o:?})"),
            Control::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl DriverHandle {
    fn send(&self, c: Control) -> Result<(), String> {
        self.control
            .send(c)
            .map_err(|_| "the UPS driver thread has stopped".to_string())?;
        // One byte wakes the poll; a full socket buffer already means "wake up".
        let _ = (&*self.waker).write(&[1]);
        Ok(())
    }

    /// Queues a UPS command and waits for the driver's verdict.
    pub async fn request(&self, request: UpsRequest) -> Result<RequestResult, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Request(request, tx))?;
        rx.await
            .map_err(|_| "the UPS driver dropped the request".to_string())?
    }

    /// An operator call; answers whether the shutdown machine accepted it.
    pub async fn operator(&self, op: Operator) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Operator(op, Some(tx)))?;
        rx.await
            .map_err(|_| "the UPS driver dropped the request".to_string())?
    }

    /// An operator call whose answer nobody waits for (command file finished, new config).
    pub fn tell(&self, op: Operator) {
        let _ = self.send(Control::Operator(op, None));
    }

    /// The published state, as every server reads it.
    pub fn state(&self) -> watch::Receiver<Arc<UpsState>> {
        self.state.clone()
    }

    /// Puts the UPS back in dumb mode (`R`) and stops the thread.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Control::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

/// Starts the driver thread on `device`.
pub fn spawn(
    device: PathBuf,
    link: LinkConfig,
    shutdown: ShutdownConfig,
    clock: Clock,
    messages: mpsc::UnboundedSender<DriverMessage>,
) -> std::io::Result<DriverHandle> {
    let agent = Agent::new(link, shutdown);
    let (state_tx, state_rx) = watch::channel(Arc::new(UpsState::of(&agent)));
    let (ctl_tx, ctl_rx) = std_mpsc::channel();
    let (waker, wake) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    waker.set_nonblocking(true)?;
    thread::Builder::new()
        .name("ups-driver".into())
        .spawn(move || {
            DriverThread {
                device,
                agent,
                clock,
                messages,
                state: state_tx,
                control: ctl_rx,
                pending: Vec::new(),
                published_at: None,
            }
            .run(wake)
        })?;
    Ok(DriverHandle {
        control: ctl_tx,
        waker: Arc::new(waker),
        state: state_rx,
    })
}

struct DriverThread {
    device: PathBuf,
    agent: Agent,
    clock: Clock,
    messages: mpsc::UnboundedSender<DriverMessage>,
    state: watch::Sender<Arc<UpsState>>,
    control: std_mpsc::Receiver<Control>,
    pending: Vec<(RequestId, Reply<RequestResult>)>,
    /// When the status register the published state carries was read.
    published_at: Option<Instant>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the loop over one port ended.
enum Ended {
    Stop,
    PortLost(String),
    Reopen,
}

impl DriverThread {
    fn run(mut self, wake: UnixStream) {
        let mut port = HostPort::new(None, Some(wake), self.clock);
        let mut backoff = BACKOFF_MIN;
        let mut problem_reported = false;
        loop {
            let reopen_at = match SerialLink::open(&self.device) {
                Ok(p) => {
                    problem_reported = false;
                    backoff = BACKOFF_MIN;
                    port.serial = Some(p);
                    self.report(DriverMessageKind::PortOpened(self.device.clone()));
                    self.agent.reset(self.clock.now());
                    None
                }
                Err(e) => {
                    // A busy port at start-up is a configuration problem worth saying loudly,
                    // but keep trying: the other agent may go away.
                    let first = !problem_reported;
                    problem_reported = true;
                    if first || matches!(e, OpenError::Busy(_)) {
                        tracing::warn!("{e}");
                    }
                    self.report(DriverMessageKind::PortProblem {
                        message: e.to_string(),
                        first,
                    });
                    let at = self.clock.now()
                        + CoreDuration::from_millis(
                            u64::try_from(backoff.as_millis()).unwrap_or(5000),
                        );
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Some(at)
                }
            };
            match self.drive(&mut port, reopen_at) {
                Ended::Stop => return,
                Ended::Reopen => {}
                Ended::PortLost(e) => {
                    let msg = format!("serial device {} lost: {e}", self.device.display());
                    tracing::warn!("{msg}");
                    self.report(DriverMessageKind::PortProblem {
                        message: msg,
                        first: true,
                    });
                    port.serial = None;
                }
            }
        }
    }

    /// Turns the pump until the port fails, a reopen is due (no port), or a stop.
    fn drive(&mut self, port: &mut HostPort, reopen_at: Option<Instant>) -> Ended {
        let mut clock = CoreClock(self.clock);
        let mut buf = [0u8; 256];
        loop {
            if let Err(e) = pump::turn(&mut self.agent, port, &mut clock, &mut buf, reopen_at) {
                return Ended::PortLost(e.to_string());
            }
            self.after_turn();
            if self.take_control(port) {
                return Ended::Stop;
            }
            if reopen_at.is_some_and(|t| self.clock.now() >= t) {
                return Ended::Reopen;
            }
        }
    }

    /// Publish, answer requesters, report to the monitor — in that order: a server reading
    /// the state must never lag behind the monitor, and whoever changed a setting and reads
    /// the settings back must see the new value.
    fn after_turn(&mut self) {
        let mut events = Vec::new();
        while let Some(e) = self.agent.poll_event() {
            events.push(e);
        }
        let mut actions = Vec::new();
        while let Some(a) = self.agent.poll_action() {
            actions.push(a);
        }
        // Also publish when only freshness changed (an unchanged `Q` re-read), so the age
        // readers compute is the age of the driver's data.
        let fresh = self.agent.snapshot().status.map(|s| s.at);
        if self.agent.take_changed() || fresh != self.published_at {
            self.published_at = fresh;
            self.state.send_replace(Arc::new(UpsState::of(&self.agent)));
        }
        for e in events {
            match e {
                AgentEvent::Ups(ev) => self.report(DriverMessageKind::Event(ev)),
                AgentEvent::Identified => self.report(DriverMessageKind::Identified),
                AgentEvent::RequestDone { id, result } => {
                    if let Some(pos) = self.pending.iter().position(|(pid, _)| *pid == id) {
                        let (_, reply) = self.pending.swap_remove(pos);
                        let _ = reply.send(Ok(result));
                    }
                }
                AgentEvent::UpsOffSent { mode, result } => {
                    self.report(DriverMessageKind::UpsOffSent { mode, result })
                }
                AgentEvent::Closed => {}
            }
        }
        for a in actions {
            self.report(DriverMessageKind::Action(a));
        }
    }

    /// Handles queued control messages; true when asked to stop.
    fn take_control(&mut self, port: &mut HostPort) -> bool {
        while let Ok(msg) = self.control.try_recv() {
            let now = self.clock.now();
            match msg {
                Control::Request(r, reply) => match self.agent.request(now, r) {
                    Ok(id) => self.pending.push((id, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(request_error_text(e)));
                    }
                },
                Control::Operator(op, reply) => {
                    let r = self.operator(now, op);
                    if let Some(reply) = reply {
                        let _ = reply.send(r);
                    }
                }
                Control::Stop(done) => {
                    if port.serial.is_some() {
                        self.say_goodbye(port);
                    }
                    let _ = done.send(());
                    return true;
                }
            }
            self.after_turn();
        }
        false
    }

    fn operator(&mut self, now: Instant, op: Operator) -> Result<(), String> {
        let a = &mut self.agent;
        match op {
            Operator::ShutdownNow => a.shutdown_now(now).map_err(|e| e.to_string()),
            Operator::Sleep { hours, graceful } => {
                a.sleep(now, hours, graceful).map_err(|e| e.to_string())
            }
            Operator::Cancel => a.cancel(now).map_err(|e| e.to_string()),
            Operator::Scheduled { wake_after } => a
                .scheduled_shutdown(now, wake_after)
                .map_err(|e| e.to_string()),
            Operator::CommandFileFinished => {
                a.command_file_finished(now);
                Ok(())
            }
            Operator::OsShutdownDone => {
                a.os_shutdown_done(now);
                Ok(())
            }
            Operator::SetShutdownConfig(cfg) => {
                a.set_shutdown_config(now, cfg);
                Ok(())
            }
        }
    }

    /// `R` puts the UPS back in dumb mode, as NUT and apcupsd do on exit.
    fn say_goodbye(&mut self, port: &mut HostPort) {
        let until = self.clock.now() + CoreDuration::from_millis(1500);
        self.agent.shutdown_link(self.clock.now());
        let mut clock = CoreClock(self.clock);
        let mut buf = [0u8; 64];
        while self.clock.now() < until {
            if pump::turn(&mut self.agent, port, &mut clock, &mut buf, Some(until)).is_err() {
                return;
            }
            while let Some(e) = self.agent.poll_event() {
                if e == AgentEvent::Closed {
                    return;
                }
            }
            while self.agent.poll_action().is_some() {}
        }
    }

    fn report(&self, kind: DriverMessageKind) {
        let _ = self.messages.send(DriverMessage {
            at: SystemTime::now(),
            kind,
        });
    }
}

/// A refused request, for a person.
pub fn request_error_text(e: upsguard_core::link::RequestError) -> String {
    use upsguard_core::link::RequestError::*;
    match e {
        QueueFull => "the UPS has too many commands queued; try again".into(),
        InvalidValue => "that value cannot be sent to the UPS".into(),
        NotSupported => "this UPS does not support that command".into(),
        NotPermitted => "the UPS does not permit that value".into(),
        Closed => "the UPS link is closing".into(),
    }
}
