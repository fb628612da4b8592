//! The link thread: owns the serial port and drives the sans-I/O core `LinkDriver`.
//!
//! This is the "driver" of NUT's driver ↔ shared state ↔ monitor split. It blocks in `read`
//! until bytes arrive or the driver's next deadline, so an alert byte is fed to the core the
//! moment the kernel hands it over, and the idle loop wakes only for the poll schedule.
//! The newest snapshot is published through a `watch` channel (every server reads it
//! from there, without waiting for the monitor) and events go to the monitor over a channel.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use upsguard_core::link::{
    LinkConfig, LinkDriver, LinkEvent, RequestId, RequestResult, UpsRequest, UpsSnapshot,
};

use crate::clock::Clock;
use crate::serial::{OpenError, SerialLink};

/// Something the link thread reports to the monitor.
#[derive(Debug, Clone)]
pub struct LinkMessage {
    /// Wall-clock time the triggering bytes (or deadline) were handled.
    pub at: SystemTime,
    pub kind: LinkMessageKind,
}

#[derive(Debug, Clone)]
pub enum LinkMessageKind {
    Event(LinkEvent),
    /// The port could not be opened or was lost; `first` is set once per outage.
    PortProblem {
        message: String,
        first: bool,
    },
    PortOpened(PathBuf),
}

/// A request for the UPS, answered when the driver reports it done.
#[derive(Debug)]
pub struct PendingRequest {
    pub request: UpsRequest,
    pub reply: oneshot::Sender<Result<RequestResult, String>>,
}

enum Control {
    Request(PendingRequest),
    Stop(oneshot::Sender<()>),
}

/// The service's handle on the link thread.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    control: std_mpsc::Sender<Control>,
    snapshot: watch::Receiver<UpsSnapshot>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Request(r) => write!(f, "Request({:?})", r.request),
            Control::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl LinkHandle {
    /// Queues a UPS command and waits for the driver's verdict.
    pub async fn request(&self, request: UpsRequest) -> Result<RequestResult, String> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Request(PendingRequest { request, reply: tx }))
            .map_err(|_| "link thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "link thread dropped the request".to_string())?
    }

    /// The newest snapshot, as every server should read it.
    pub fn snapshot(&self) -> watch::Receiver<UpsSnapshot> {
        self.snapshot.clone()
    }

    /// Puts the UPS back in dumb mode (`R`) and stops the thread.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

/// Starts the link thread on `device`.
pub fn spawn(
    device: PathBuf,
    config: LinkConfig,
    clock: Clock,
    events: mpsc::UnboundedSender<LinkMessage>,
) -> std::io::Result<LinkHandle> {
    let driver = LinkDriver::new(config);
    let (snap_tx, snap_rx) = watch::channel(driver.snapshot().clone());
    let (ctl_tx, ctl_rx) = std_mpsc::channel();
    thread::Builder::new()
        .name("ups-link".into())
        .spawn(move || {
            LinkThread {
                device,
                driver,
                clock,
                events,
                snapshot: snap_tx,
                control: ctl_rx,
                pending: Vec::new(),
            }
            .run()
        })?;
    Ok(LinkHandle {
        control: ctl_tx,
        snapshot: snap_rx,
    })
}

struct LinkThread {
    device: PathBuf,
    driver: LinkDriver,
    clock: Clock,
    events: mpsc::UnboundedSender<LinkMessage>,
    snapshot: watch::Sender<UpsSnapshot>,
    control: std_mpsc::Receiver<Control>,
    pending: Vec<(RequestId, oneshot::Sender<Result<RequestResult, String>>)>,
}

/// Longest a blocking read lasts, so queued requests are picked up promptly even when the
/// driver has nothing scheduled.
const MAX_WAIT: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl LinkThread {
    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut problem_reported = false;
        loop {
            let mut port = match SerialLink::open(&self.device) {
                Ok(p) => {
                    problem_reported = false;
                    backoff = BACKOFF_MIN;
                    self.send(LinkMessageKind::PortOpened(self.device.clone()));
                    self.driver.reset(self.clock.now());
                    p
                }
                Err(e) => {
                    // A busy port at start-up is a configuration problem worth saying loudly,
                    // but keep trying: the other agent may go away.
                    let first = !problem_reported;
                    problem_reported = true;
                    if first || matches!(e, OpenError::Busy(_)) {
                        tracing::warn!("{e}");
                    }
                    self.send(LinkMessageKind::PortProblem {
                        message: e.to_string(),
                        first,
                    });
                    if self.idle_without_port(backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            match self.drive(&mut port) {
                Ok(()) => return, // asked to stop
                Err(e) => {
                    let msg = format!("serial device {} lost: {e}", self.device.display());
                    tracing::warn!("{msg}");
                    self.send(LinkMessageKind::PortProblem {
                        message: msg,
                        first: true,
                    });
                    drop(port);
                }
            }
        }
    }

    /// Keeps the driver's clock running while the port is closed (so it declares
    /// Communication Lost on time) and serves control messages. Returns true on stop.
    fn idle_without_port(&mut self, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        loop {
            let now = self.clock.now();
            self.driver.handle_timeout(now);
            // Nothing can be sent without a port; the driver counts these as unanswered.
            while self.driver.poll_transmit(now).is_some() {}
            self.drain_events();
            if self.take_control(None) {
                return true;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            thread::sleep(left.min(MAX_WAIT));
        }
    }

    /// Runs the port until it fails (Err) or a stop is requested (Ok).
    fn drive(&mut self, port: &mut SerialLink) -> std::io::Result<()> {
        let mut buf = [0u8; 256];
        loop {
            let now = self.clock.now();
            self.driver.handle_timeout(now);
            while let Some(tx) = self.driver.poll_transmit(now) {
                port.write_all(tx.as_bytes())?;
            }
            self.drain_events();
            if self.take_control(Some(port)) {
                return Ok(());
            }
            let wait = match self.driver.poll_timeout() {
                Some(deadline) => self.clock.until(deadline).min(MAX_WAIT),
                None => MAX_WAIT,
            };
            let n = port.read(&mut buf, wait)?;
            if n > 0 {
                let now = self.clock.now();
                self.driver.handle_input(now, buf.get(..n).unwrap_or(&[]));
            }
        }
    }

    /// Handles queued control messages; returns true when asked to stop.
    fn take_control(&mut self, port: Option<&mut SerialLink>) -> bool {
        while let Ok(msg) = self.control.try_recv() {
            match msg {
                Control::Request(p) => match self.driver.request(self.clock.now(), p.request) {
                    Ok(id) => self.pending.push((id, p.reply)),
                    Err(e) => {
                        let _ = p.reply.send(Err(format!("{e:?}")));
                    }
                },
                Control::Stop(done) => {
                    if let Some(port) = port {
                        self.say_goodbye(port);
                    }
                    let _ = done.send(());
                    return true;
                }
            }
        }
        false
    }

    /// `R` puts the UPS back in dumb mode, as NUT and apcupsd do on exit.
    fn say_goodbye(&mut self, port: &mut SerialLink) {
        let start = std::time::Instant::now();
        self.driver.shutdown_link(self.clock.now());
        let mut buf = [0u8; 64];
        while start.elapsed() < Duration::from_millis(1500) {
            let now = self.clock.now();
            self.driver.handle_timeout(now);
            let mut sent = false;
            while let Some(tx) = self.driver.poll_transmit(now) {
                sent = true;
                if port.write_all(tx.as_bytes()).is_err() {
                    return;
                }
            }
            match port.read(&mut buf, Duration::from_millis(50)) {
                Ok(n) if n > 0 => {
                    self.driver
                        .handle_input(self.clock.now(), buf.get(..n).unwrap_or(&[]));
                }
                Ok(_) if !sent && self.driver.poll_timeout().is_none() => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn drain_events(&mut self) {
        let mut events = Vec::new();
        while let Some(ev) = self.driver.poll_event() {
            events.push(ev);
        }
        // Publish first: servers read the watch and must not wait for the monitor. Publish
        // also when only freshness changed (an unchanged `Q` re-read), so the age readers
        // see is the age of the driver's data, not of the last change.
        if !events.is_empty() || *self.snapshot.borrow() != *self.driver.snapshot() {
            self.snapshot.send_replace(self.driver.snapshot().clone());
        }
        for ev in events {
            // Answer requesters only now: whoever asked to change a setting and then reads
            // the snapshot must see the new value.
            if let LinkEvent::RequestDone { id, result } = &ev
                && let Some(pos) = self.pending.iter().position(|(pid, _)| pid == id)
            {
                let (_, reply) = self.pending.swap_remove(pos);
                let _ = reply.send(Ok(*result));
            }
            self.send(LinkMessageKind::Event(ev));
        }
    }

    fn send(&self, kind: LinkMessageKind) {
        let _ = self.events.send(LinkMessage {
            at: SystemTime::now(),
            kind,
        });
    }
}
