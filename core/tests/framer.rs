//! Framer properties: bounded, never panics, and in normal mode every alert byte comes out
//! as an `Alert` event, in order, however it is interleaved with replies and garbage.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use upsguard_core::framer::{FrameEvent, Framer, FramerMode};
use upsguard_core::wire::Alert;

const ALERTS: &[u8] = b"!$%+?=*#&|";

proptest! {
    #[test]
    fn never_panics_in_any_mode(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        modes in prop::collection::vec(0u8..3, 1..8),
    ) {
        let mut f = Framer::<64>::new();
        for (i, chunk) in bytes.chunks(bytes.len() / modes.len() + 1).enumerate() {
            f.set_mode(match modes[i % modes.len()] {
                0 => FramerMode::Normal,
                1 => FramerMode::Raw,
                _ => FramerMode::Capabilities,
            });
            for &b in chunk {
                if let Some(FrameEvent::Line(l)) = f.push(b) {
                    prop_assert!(l.len() <= 64);
                    prop_assert!(!l.contains(&b'\n') && !l.contains(&b'\r'));
                }
            }
        }
    }

    #[test]
    fn alerts_never_lost_in_normal_mode(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let mut f = Framer::<32>::new();
        let expected: Vec<u8> = bytes.iter().copied().filter(|b| ALERTS.contains(b)).collect();
        let mut got = Vec::new();
        for &b in &bytes {
            if let Some(FrameEvent::Alert(a)) = f.push(b) {
                got.push(a.as_byte());
            }
        }
        prop_assert_eq!(got, expected);
    }

    /// Replies interleaved with alerts (anywhere, even mid-reply) and garbage lines: the clean
    /// replies come out intact, the alerts all come out in order.
    #[test]
    fn replies_survive_interleaved_alerts(
        items in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(prop::sample::select(&b"0123456789.:ABCDEFGHNOSKYM "[..]), 1..12)
                    .prop_map(|v| (0u8, v)),
                prop::sample::select(ALERTS).prop_map(|a| (1u8, vec![a])),
                prop::collection::vec(any::<u8>(), 1..80).prop_map(|v| (2u8, v)),
            ],
            0..60,
        ),
        splice in any::<prop::sample::Index>(),
    ) {
        let mut f = Framer::<64>::new();
        let mut stream = Vec::new();
        let mut want_alerts = Vec::new();
        let mut want_lines = Vec::new();
        for (kind, v) in &items {
            match kind {
                0 => {
                    // Put an alert inside the reply at a random position.
                    let mut line = v.clone();
                    let a = ALERTS[splice.index(ALERTS.len())];
                    let pos = splice.index(line.len() + 1);
                    want_lines.push(line.clone());
                    line.insert(pos, a);
                    want_alerts.push(a);
                    stream.extend_from_slice(&line);
                    stream.extend_from_slice(b"\r\n");
                }
                1 => {
                    want_alerts.extend_from_slice(v);
                    stream.extend_from_slice(v);
                }
                _ => {
                    // Garbage: a control byte makes the line garbage up to its LF.
                    let mut g: Vec<u8> = v.iter().copied().filter(|b| *b != b'\n').collect();
                    want_alerts.extend(g.iter().copied().filter(|b| ALERTS.contains(b)));
                    g.insert(0, 0x01);
                    stream.extend_from_slice(&g);
                    stream.push(b'\n');
                }
            }
        }
        let mut got_alerts = Vec::new();
        let mut got_lines = Vec::new();
        for &b in &stream {
            match f.push(b) {
                Some(FrameEvent::Alert(a)) => got_alerts.push(a.as_byte()),
                Some(FrameEvent::Line(l)) => got_lines.push(l.to_vec()),
                _ => {}
            }
        }
        prop_assert_eq!(got_alerts, want_alerts);
        prop_assert_eq!(got_lines, want_lines);
    }
}

#[test]
fn alert_from_byte_matches_framer() {
    for b in 0..=255u8 {
        assert_eq!(Alert::from_byte(b).is_some(), ALERTS.contains(&b));
    }
}
