//! The runner over real transports: pty round trip (including unplug and
//! replug), the in-process duplex and TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use upsguard_sim::{SimOptions, Transport, spawn, spawn_in_process};

fn read_line(r: &mut impl Read) -> String {
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    let mut b = [0u8; 1];
    while Instant::now() < end && !out.ends_with(b"\r\n") {
        match r.read(&mut b) {
            Ok(1) => out.push(b[0]),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn pty_round_trip_unplug_and_replug() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ups");
    let sim = spawn(SimOptions {
        transport: Transport::Pty(link.clone()),
        ..SimOptions::default()
    })
    .unwrap();
    assert_eq!(sim.link_path(), Some(link.as_path()));
    let target = std::fs::read_link(&link).unwrap();
    assert!(target.starts_with("/dev/pts"), "{target:?}");

    let mut port = serialport::new(link.to_string_lossy(), 2400)
        .timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    port.write_all(b"Y").unwrap();
    assert_eq!(read_line(&mut port), "SM\r\n");
    port.write_all(b"Q").unwrap();
    assert_eq!(read_line(&mut port), "08\r\n");
    port.write_all(b"\x01").unwrap();
    assert_eq!(read_line(&mut port), "SMART-UPS 1000\r\n");
    drop(port);

    // A client that closed the port does not disturb the emulator.
    let mut port = serialport::new(link.to_string_lossy(), 2400)
        .timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    port.write_all(b"n").unwrap();
    assert_eq!(read_line(&mut port), "AS0123456789\r\n");

    assert_eq!(sim.control("unplug").unwrap(), "unplugged");
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::fs::symlink_metadata(&link).is_err()
    });
    assert!(gone, "symlink still there after unplug");
    drop(port);
    sim.control("replug").unwrap();
    let back = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        link.exists()
    });
    assert!(back, "symlink not recreated");
    let mut port = serialport::new(link.to_string_lossy(), 2400)
        .timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    port.write_all(b"Q").unwrap();
    assert_eq!(
        read_line(&mut port),
        "08\r\n",
        "smart mode survives a replug"
    );
    sim.stop();
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "symlink removed on stop"
    );
}

#[test]
fn pty_output_is_paced_at_2400_baud() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ups");
    let sim = spawn(SimOptions {
        transport: Transport::Pty(link.clone()),
        baud: Some(2400),
        ..SimOptions::default()
    })
    .unwrap();
    let mut port = serialport::new(link.to_string_lossy(), 2400)
        .timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    port.write_all(b"Y").unwrap();
    assert_eq!(read_line(&mut port), "SM\r\n");
    let t = Instant::now();
    port.write_all(b"\x1a").unwrap();
    let caps = read_line(&mut port);
    let el = t.elapsed();
    // 130 bytes × 4.17 ms ≈ 0.54 s.
    assert!(
        caps.len() == 130 && el >= Duration::from_millis(450) && el < Duration::from_millis(2000),
        "{} bytes in {el:?}",
        caps.len()
    );
    sim.stop();
}

#[test]
fn in_process_duplex() {
    let (sim, mut end) = spawn_in_process(SimOptions::default()).unwrap();
    end.write_all(b"Y").unwrap();
    assert_eq!(read_line(&mut end), "SM\r\n");
    end.write_all(b"b").unwrap();
    assert_eq!(read_line(&mut end), "60.11.D\r\n");
    end.set_read_timeout(Duration::from_millis(50));
    let mut b = [0u8; 4];
    assert_eq!(
        end.read(&mut b).unwrap_err().kind(),
        std::io::ErrorKind::TimedOut
    );
    let st: serde_json::Value = serde_json::from_str(&sim.status_json()).unwrap();
    assert_eq!(st["smart_mode"], true);
    assert!(sim.control("bogus").is_err());
    sim.stop();
}

#[test]
fn tcp_transport_and_control_port() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let sim = spawn(SimOptions {
        transport: Transport::Tcp(addr.to_string()),
        control_addr: Some("127.0.0.1:0".into()),
        ..SimOptions::default()
    })
    .unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(b"Y").unwrap();
    assert_eq!(read_line(&mut s), "SM\r\n");

    let ctl_addr = sim.control_addr().unwrap();
    let mut c = std::net::TcpStream::connect(ctl_addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut ask = |line: &str| {
        c.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\n") {
            c.read_exact(&mut b).unwrap();
            out.push(b[0]);
        }
        String::from_utf8(out).unwrap()
    };
    assert_eq!(ask("mains off"), "OK mains off\n");
    assert!(ask("frobnicate").starts_with("ERR unknown command"));
    assert!(ask(&"x".repeat(10_000)).starts_with("ERR line too long"));
    assert!(ask("status").starts_with("OK {\"battery_connected\""));
    s.write_all(b"Q").unwrap();
    let q = read_line(&mut s);
    assert!(q.ends_with("10\r\n"), "{q:?}");
    sim.stop();
}

#[test]
fn eeprom_file_persists_and_bad_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eeprom.json");
    let (sim, mut end) = spawn_in_process(SimOptions {
        eeprom_path: Some(path.clone()),
        ..SimOptions::default()
    })
    .unwrap();
    end.write_all(b"Yp").unwrap();
    assert_eq!(read_line(&mut end), "SM\r\n");
    assert_eq!(read_line(&mut end), "020\r\n");
    end.write_all(b"-").unwrap();
    assert_eq!(read_line(&mut end), "OK\r\n");
    let saved = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"p\": \"180\""))
    });
    assert!(saved);
    sim.stop();
    let (sim, mut end) = spawn_in_process(SimOptions {
        eeprom_path: Some(path.clone()),
        ..SimOptions::default()
    })
    .unwrap();
    end.write_all(b"Yp").unwrap();
    read_line(&mut end);
    assert_eq!(read_line(&mut end), "180\r\n");
    sim.stop();
    std::fs::write(&path, "{\"u\": 1}").unwrap();
    assert!(
        spawn_in_process(SimOptions {
            eeprom_path: Some(path),
            ..SimOptions::default()
        })
        .is_err()
    );
}

#[test]
fn pty_echo_left_on_by_a_client_is_switched_off_again() {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ups");
    let sim = spawn(SimOptions {
        transport: Transport::Pty(link.clone()),
        ..SimOptions::default()
    })
    .unwrap();
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(&link)
            .unwrap()
    };
    // Like apcupsd restoring a cooked termios on close.
    let f = open();
    let mut t = tcgetattr(&f).unwrap();
    assert!(!t.local_flags.contains(LocalFlags::ECHO), "starts raw");
    t.local_flags |= LocalFlags::ECHO | LocalFlags::ICANON;
    tcsetattr(&f, SetArg::TCSANOW, &t).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    let f = open();
    let t = tcgetattr(&f).unwrap();
    assert!(
        !t.local_flags
            .intersects(LocalFlags::ECHO | LocalFlags::ICANON),
        "raw again"
    );
    drop(f);
    sim.stop();
}
