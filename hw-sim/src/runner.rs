//! Runs a [`Ups`] on a thread over a real transport (pty, serial port, TCP)
//! or an in-process duplex, plus the TCP control port.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::eeprom::Eeprom;
use crate::pty::PtyLink;
use crate::scenario::Scenario;
use crate::ups::{Ups, UpsConfig};

/// Where the UPS side of the wire lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A pty whose slave is reachable through this symlink.
    Pty(PathBuf),
    /// A real serial device, opened at 2400 8N1.
    Serial(String),
    /// A TCP listener; one client at a time is the "cable".
    Tcp(String),
    /// Only for [`spawn_in_process`].
    InProcess,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub transport: Transport,
    pub seed: u64,
    pub speed: f64,
    /// Pace output at this line speed (10 bits per byte); `None` = as fast as possible.
    pub baud: Option<u32>,
    /// Persist the EEPROM here (JSON); `None` keeps it in memory.
    pub eeprom_path: Option<PathBuf>,
    pub scenario: Option<Scenario>,
    pub load_pct: f64,
    /// Serve the control grammar on this TCP address (e.g. "127.0.0.1:0").
    pub control_addr: Option<String>,
    /// Print simulator events to stderr.
    pub log_events: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            transport: Transport::InProcess,
            seed: 1,
            speed: 1.0,
            baud: None,
            eeprom_path: None,
            scenario: None,
            load_pct: 23.5,
            control_addr: None,
            log_events: false,
        }
    }
}

/// Errors from starting the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError(pub String);

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

type Shared = Arc<Mutex<Ups>>;

fn lock(ups: &Shared) -> MutexGuard<'_, Ups> {
    // A panic elsewhere must not take the emulator down with it.
    ups.lock().unwrap_or_else(|e| e.into_inner())
}

/// Monotonic ms since the simulator started; every caller uses the same origin.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A running simulator. Dropping it stops the thread.
#[derive(Debug)]
pub struct SimHandle {
    ups: Shared,
    clock: Clock,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    link_path: Option<PathBuf>,
    control_addr: Option<SocketAddr>,
}

impl SimHandle {
    /// Run one control command; `Ok` text is what follows "OK ".
    pub fn control(&self, line: &str) -> Result<String, String> {
        lock(&self.ups).control(self.clock.now(), line)
    }

    pub fn status_json(&self) -> String {
        let mut ups = lock(&self.ups);
        ups.tick(self.clock.now());
        ups.status_json()
    }

    /// The pty symlink, for [`Transport::Pty`].
    pub fn link_path(&self) -> Option<&Path> {
        self.link_path.as_deref()
    }

    /// The bound control address (useful with port 0).
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stop all threads and release the transport.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The host's end of an in-process link: blocking reads with a timeout
/// (`ErrorKind::TimedOut`, like a serial port), writes never block.
#[derive(Debug)]
pub struct DuplexEnd {
    rx: Receiver<Vec<u8>>,
    tx: Sender<Vec<u8>>,
    pending: VecDeque<u8>,
    timeout: Duration,
}

impl DuplexEnd {
    pub fn set_read_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }
}

impl Read for DuplexEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.rx.recv_timeout(self.timeout) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::TimedOut.into()),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        while let Ok(chunk) = self.rx.try_recv() {
            self.pending.extend(chunk);
        }
        let mut n = 0;
        for slot in buf.iter_mut() {
            let Some(b) = self.pending.pop_front() else {
                break;
            };
            *slot = b;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for DuplexEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Link {
    Pty(PtyLink),
    Serial(Box<dyn serialport::SerialPort>),
    Tcp {
        listener: TcpListener,
        client: Option<TcpStream>,
    },
    Duplex {
        rx: Receiver<Vec<u8>>,
        tx: Sender<Vec<u8>>,
    },
}

impl Link {
    fn recv(&mut self, wait: Duration, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Link::Pty(p) => p.recv(wait, out),
            Link::Serial(port) => {
                port.set_timeout(wait.max(Duration::from_millis(1)))?;
                let mut buf = [0u8; 256];
                match port.read(&mut buf) {
                    Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                        ) => {}
                    Err(e) => return Err(e),
                }
                Ok(())
            }
            Link::Tcp { listener, client } => {
                if client.is_none() {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nodelay(true)?;
                            *client = Some(s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(wait);
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let Some(s) = client {
                    s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
                    let mut buf = [0u8; 256];
                    match s.read(&mut buf) {
                        Ok(0) => *client = None,
                        Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                            ) => {}
                        Err(_) => *client = None,
                    }
                }
                Ok(())
            }
            Link::Duplex { rx, .. } => {
                match rx.recv_timeout(wait) {
                    Ok(chunk) => out.extend(chunk),
                    Err(RecvTimeoutError::Timeout) => {}
                    // The host end is gone; keep running until stopped.
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
                }
                while let Ok(chunk) = rx.try_recv() {
                    out.extend(chunk);
                }
                Ok(())
            }
        }
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Link::Pty(p) => p.send(data),
            Link::Serial(port) => port.write_all(data),
            Link::Tcp { client, .. } => {
                if let Some(s) = client
                    && s.write_all(data).is_err()
                {
                    *client = None;
                }
                Ok(())
            }
            Link::Duplex { tx, .. } => {
                let _ = tx.send(data.to_vec());
                Ok(())
            }
        }
    }

    /// Follow the emulator's "cable plugged" state.
    fn set_linked(&mut self, linked: bool) -> io::Result<()> {
        match self {
            Link::Pty(p) => {
                if linked {
                    p.plug()?;
                } else {
                    p.unplug();
                }
            }
            Link::Tcp { client, .. } if !linked => *client = None,
            _ => {}
        }
        Ok(())
    }

    fn maintain(&mut self) {
        if let Link::Pty(p) = self {
            p.maintain();
        }
    }
}

fn build_ups(opts: &SimOptions) -> Result<Ups, SimError> {
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(SimError("speed must be a positive number".into()));
    }
    if opts.baud == Some(0) {
        return Err(SimError("baud must be positive".into()));
    }
    let eeprom = match &opts.eeprom_path {
        Some(p) => Eeprom::load_or_create(p).map_err(SimError)?,
        None => Eeprom::default(),
    };
    Ok(Ups::new(UpsConfig {
        seed: opts.seed,
        speed: opts.speed,
        eeprom,
        load_pct: opts.load_pct,
        scenario: opts.scenario.clone(),
    }))
}

/// Start the emulator on the transport named in `opts` (not `InProcess`).
pub fn spawn(opts: SimOptions) -> Result<SimHandle, SimError> {
    let link = match &opts.transport {
        Transport::Pty(path) => Link::Pty(
            PtyLink::open(path).map_err(|e| SimError(format!("pty at {}: {e}", path.display())))?,
        ),
        Transport::Serial(dev) => Link::Serial(
            serialport::new(dev, 2400)
                .data_bits(serialport::DataBits::Eight)
                .parity(serialport::Parity::None)
                .stop_bits(serialport::StopBits::One)
                .flow_control(serialport::FlowControl::None)
                .timeout(Duration::from_millis(10))
                .open()
                .map_err(|e| SimError(format!("serial port {dev}: {e}")))?,
        ),
        Transport::Tcp(addr) => {
            let listener =
                TcpListener::bind(addr).map_err(|e| SimError(format!("tcp {addr}: {e}")))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| SimError(e.to_string()))?;
            Link::Tcp {
                listener,
                client: None,
            }
        }
        Transport::InProcess => {
            return Err(SimError(
                "use spawn_in_process for the in-process link".into(),
            ));
        }
    };
    let link_path = match &opts.transport {
        Transport::Pty(p) => Some(p.clone()),
        _ => None,
    };
    start(opts, link, link_path)
}

/// Start the emulator with an in-memory cable; the returned [`DuplexEnd`] is
/// the host's side of it.
pub fn spawn_in_process(opts: SimOptions) -> Result<(SimHandle, DuplexEnd), SimError> {
    let (to_sim, from_host) = mpsc::channel();
    let (to_host, from_sim) = mpsc::channel();
    let link = Link::Duplex {
        rx: from_host,
        tx: to_host,
    };
    let handle = start(opts, link, None)?;
    let end = DuplexEnd {
        rx: from_sim,
        tx: to_sim,
        pending: VecDeque::new(),
        timeout: Duration::from_secs(1),
    };
    Ok((handle, end))
}

fn start(opts: SimOptions, link: Link, link_path: Option<PathBuf>) -> Result<SimHandle, SimError> {
    let ups = Arc::new(Mutex::new(build_ups(&opts)?));
    let clock = Clock(Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut control_addr = None;
    if let Some(addr) = &opts.control_addr {
        let listener =
            TcpListener::bind(addr).map_err(|e| SimError(format!("control {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| SimError(e.to_string()))?;
        control_addr = listener.local_addr().ok();
        let (ups, stop) = (ups.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sim-control".into())
                .spawn(move || control_server(listener, ups, clock, stop))
                .map_err(|e| SimError(e.to_string()))?,
        );
    }
    {
        let (ups, stop) = (ups.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("sim-link".into())
                .spawn(move || io_loop(link, ups, clock, stop, &opts))
                .map_err(|e| SimError(e.to_string()))?,
        );
    }
    Ok(SimHandle {
        ups,
        clock,
        stop,
        threads,
        link_path,
        control_addr,
    })
}

fn io_loop(mut link: Link, ups: Shared, clock: Clock, stop: Arc<AtomicBool>, opts: &SimOptions) {
    let byte_ms = opts.baud.map(|b| 10_000.0 / f64::from(b));
    let mut next_tx = 0.0f64;
    let mut linked = true;
    let mut inbuf = Vec::new();
    let mut outbuf = Vec::new();
    let mut wait = Duration::from_millis(10);
    while !stop.load(Ordering::SeqCst) {
        link.maintain();
        inbuf.clear();
        if let Err(e) = link.recv(wait, &mut inbuf) {
            eprintln!("upsguard-sim: link read error: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (events, dirty, now_linked, eeprom) = {
            let mut u = lock(&ups);
            let now = clock.now();
            for &b in &inbuf {
                u.handle_byte(now, b);
            }
            u.tick(now);
            outbuf.clear();
            match byte_ms {
                None => outbuf.extend(u.drain_output(now)),
                Some(ms) => {
                    let nowf = now as f64;
                    // Allow a little catch-up after a late wake-up, never a burst.
                    next_tx = next_tx.max(nowf - 2.0 * ms);
                    while next_tx <= nowf {
                        let Some(b) = u.poll_output(now) else { break };
                        outbuf.push(b);
                        next_tx += ms;
                    }
                }
            }
            let dirty = u.take_eeprom_dirty();
            let eeprom = dirty.then(|| u.eeprom().clone());
            (u.take_events(), dirty, u.is_linked(), eeprom)
        };
        if now_linked != linked {
            linked = now_linked;
            if let Err(e) = link.set_linked(linked) {
                eprintln!(
                    "upsguard-sim: {}: {e}",
                    if linked { "replug" } else { "unplug" }
                );
            }
        }
        if let Err(e) = link.send(&outbuf) {
            eprintln!("upsguard-sim: link write error: {e}");
        }
        if opts.log_events {
            for ev in events {
                eprintln!("upsguard-sim: {ev}");
            }
        }
        if dirty
            && let (Some(path), Some(e)) = (&opts.eeprom_path, eeprom)
            && let Err(err) = e.save(path)
        {
            eprintln!("upsguard-sim: {err}");
        }
        // Wake promptly for paced output, otherwise poll at 100 Hz.
        wait = match byte_ms {
            Some(_) if !outbuf.is_empty() => {
                let ahead_ms = (next_tx - clock.now() as f64).clamp(0.5, 10.0);
                Duration::from_micros((ahead_ms * 1000.0) as u64)
            }
            _ => Duration::from_millis(10),
        };
    }
}

const MAX_CONTROL_LINE: usize = 4096;

fn control_server(listener: TcpListener, ups: Shared, clock: Clock, stop: Arc<AtomicBool>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (ups, stop) = (ups.clone(), stop.clone());
                if let Ok(t) = std::thread::Builder::new()
                    .name("sim-control-client".into())
                    .spawn(move || control_client(stream, ups, clock, stop))
                {
                    clients.push(t);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        clients.retain(|t| !t.is_finished());
    }
    for t in clients {
        let _ = t.join();
    }
}

/// Format one control answer as the wire line.
pub fn answer_line(res: Result<String, String>) -> String {
    match res {
        Ok(t) if t.is_empty() => "OK".into(),
        Ok(t) => format!("OK {t}"),
        Err(e) => format!("ERR {e}"),
    }
}

fn control_client(stream: TcpStream, ups: Shared, clock: Clock, stop: Arc<AtomicBool>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = io::BufReader::new(stream);
    let mut line = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let buf = match reader.fill_buf() {
            Ok([]) => return,
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (buf.get(..=i).unwrap_or_default().to_vec(), true),
            None => (buf.to_vec(), false),
        };
        reader.consume(chunk.len());
        line.extend_from_slice(&chunk);
        if line.len() > MAX_CONTROL_LINE {
            line.clear();
            if writer.write_all(b"ERR line too long\n").is_err() {
                return;
            }
            // Skip the rest of the overlong line.
            while !stop.load(Ordering::SeqCst) {
                let mut b = [0u8; 1];
                match reader.read(&mut b) {
                    Ok(0) => return,
                    Ok(_) if b[0] == b'\n' => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                        ) => {}
                    Err(_) => return,
                }
            }
            continue;
        }
        if !found {
            continue;
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        line.clear();
        if text.is_empty() {
            continue;
        }
        let res = lock(&ups).control(clock.now(), &text);
        let mut reply = answer_line(res);
        reply.push('\n');
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
