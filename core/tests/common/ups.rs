//! A scripted Smart-UPS (the ups-link-protocol.md §7.1 profile) for the driver and agent
//! tests: answers bytes with its table after `latency` ms, keeps a status byte and settings.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet, VecDeque};

pub const A_EMU: &[u8] =
    b"3.!$%+?=#|.\x01\x0e\x1a'+-789@ABCDEFGKLMNOPQRSUVWXYZabcdefgjklmnopqrsuxyz~\x7f";

/// §7.1 emulator profile.
pub fn profile() -> BTreeMap<u8, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        (0x01u8, &b"SMART-UPS 1000"[..]),
        (b'b', b"60.11.D"),
        (b'V', b"IWD"),
        (b'n', b"AS0123456789"),
        (b'm', b"01/15/99"),
        (b'x', b"01/15/99"),
        (b'c', b"UPS_IDEN"),
        (b'g', b"024"),
        (b'B', b"27.45"),
        (b'C', b"036.0"),
        (b'F', b"60.00"),
        (b'L', b"118.3"),
        (b'M', b"118.9"),
        (b'N', b"118.1"),
        (b'O', b"118.3"),
        (b'P', b"023.5"),
        (b'f', b"100.0"),
        (b'j', b"0045:"),
        (b'9', b"FF"),
        (b'G', b"O"),
        (b'X', b"NO"),
        (b'7', b"00"),
        (b'~', b"00"),
        (b'\'', b"00"),
        (b'8', b"00"),
        (b'd', b"010.7"),
        (b'y', b"(C) APCC"),
        (b'a', A_EMU),
        (0x1a, b"#uD43127130133136lD43106103100097e44200155090oD13115s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168ON OFF"),
    ] {
        m.insert(k, v.to_vec());
    }
    m
}

pub fn settings() -> BTreeMap<u8, (Vec<&'static str>, usize)> {
    let mut m = BTreeMap::new();
    m.insert(b'u', (vec!["127", "130", "133", "136"], 0));
    m.insert(b'l', (vec!["106", "103", "100", "097"], 1));
    m.insert(b'e', (vec!["00", "15", "50", "90"], 0));
    m.insert(b'o', (vec!["115"], 0));
    m.insert(b's', (vec!["H", "M", "L", "L"], 0));
    m.insert(b'q', (vec!["02", "05", "07", "10"], 0));
    m.insert(b'p', (vec!["020", "180", "300", "600"], 0));
    m.insert(b'k', (vec!["0", "T", "L", "N"], 0));
    m.insert(b'r', (vec!["000", "060", "180", "300"], 0));
    m.insert(b'E', (vec!["336", "168", "ON ", "OFF"], 0));
    m
}

#[derive(Debug)]
pub enum Pending {
    None,
    At(Vec<u8>),
    Double(u8, u64),
    Str(u8, Vec<u8>),
}

pub struct Ups {
    pub smart: bool,
    pub dead: bool,
    pub latency: u64,
    pub status: u8,
    pub table: BTreeMap<u8, Vec<u8>>,
    pub settings: BTreeMap<u8, (Vec<&'static str>, usize)>,
    pub na: HashSet<u8>,
    pub refuse: HashSet<u8>,
    pub pending: Pending,
    pub last: Option<u8>,
    pub out: VecDeque<(u64, Vec<u8>)>,
    /// Inserted after the first byte of the next reply (an alert mid-reply).
    pub inject: Option<u8>,
    pub double_gaps: Vec<u64>,
    /// Commands the UPS ignores completely (no reply at all).
    pub silent: HashSet<u8>,
    /// Answer `Q` with `SM` (just powered up).
    pub status_sm: bool,
}

impl Ups {
    pub fn new() -> Self {
        Ups {
            smart: false,
            dead: false,
            latency: 20,
            status: 0x08,
            table: profile(),
            settings: settings(),
            na: HashSet::new(),
            refuse: HashSet::new(),
            pending: Pending::None,
            last: None,
            out: VecDeque::new(),
            inject: None,
            double_gaps: vec![],
            silent: HashSet::new(),
            status_sm: false,
        }
    }

    pub fn reply(&mut self, t: u64, body: &[u8]) {
        let mut v = body.to_vec();
        if let Some(a) = self.inject.take() {
            v.insert(1.min(v.len()), a);
        }
        v.extend_from_slice(b"\r\n");
        self.out.push_back((t + self.latency, v));
    }

    pub fn receive(&mut self, t: u64, b: u8) {
        if self.dead {
            return;
        }
        if !self.smart {
            if b == b'Y' {
                self.smart = true;
                self.reply(t, b"SM");
            }
            return;
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::At(mut d) => {
                if !b.is_ascii_digit() {
                    self.reply(t, b"NO");
                    return;
                }
                d.push(b);
                if d.len() == 3 {
                    let r: &[u8] = if self.refuse.contains(&b'@') {
                        b"NO"
                    } else {
                        b"OK"
                    };
                    self.reply(t, r);
                } else {
                    self.pending = Pending::At(d);
                }
                return;
            }
            Pending::Double(first, at) => {
                if b == first {
                    self.double_gaps.push(t - at);
                    if first == b'K' {
                        let r: &[u8] = if self.refuse.contains(&b'K') {
                            b"NA"
                        } else {
                            b"OK"
                        };
                        self.reply(t, r);
                    }
                    return;
                }
            }
            Pending::Str(var, mut s) => {
                s.push(b);
                if s.len() == 8 {
                    let v = String::from_utf8(s).unwrap().trim_end().as_bytes().to_vec();
                    self.table.insert(var, v);
                    self.reply(t, b"OK");
                } else {
                    self.pending = Pending::Str(var, s);
                }
                return;
            }
            Pending::None => {}
        }
        let last = self.last.replace(b);
        if self.silent.contains(&b) {
            return;
        }
        if b == b'Q' && self.status_sm {
            self.reply(t, b"SM");
            return;
        }
        if self.na.contains(&b) {
            self.reply(t, b"NA");
            return;
        }
        match b {
            b'Y' => self.reply(t, b"SM"),
            b'R' => {
                self.reply(t, b"BYE");
                self.smart = false;
            }
            b'Q' => self.reply(t, format!("{:02X}", self.status).as_bytes()),
            b'S' => {
                let ok = self.status & 0x10 != 0 && !self.refuse.contains(&b'S');
                self.reply(t, if ok { b"OK" } else { b"NA" });
            }
            b'@' => self.pending = Pending::At(vec![]),
            b'K' | b'Z' | 0x0e => self.pending = Pending::Double(b, t),
            b'W' | b'A' | b'U' | b'D' | 0x7f => self.reply(t, b"OK"),
            b'-' => match last {
                Some(v @ (b'c' | b'x')) => self.pending = Pending::Str(v, vec![]),
                Some(v) if self.settings.contains_key(&v) => {
                    let (vals, i) = self.settings.get_mut(&v).unwrap();
                    *i = (*i + 1) % vals.len();
                    self.reply(t, b"OK");
                }
                _ => self.reply(t, b"NA"),
            },
            v if self.settings.contains_key(&v) => {
                let (vals, i) = &self.settings[&v];
                let r = vals[*i].as_bytes().to_vec();
                self.reply(t, &r);
            }
            v => {
                let r = self.table.get(&v).cloned().unwrap_or(b"NA".to_vec());
                self.reply(t, &r);
            }
        }
    }
}
