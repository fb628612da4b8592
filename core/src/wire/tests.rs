//! Parser tests against the real captures in ups-link-protocol.md (§2.5, §2.6, §7.1),
//! insta snapshots of parsed structures, and proptest round trips.
#![allow(clippy::std_instead_of_alloc)]

extern crate std;

use std::string::{String, ToString};
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// The Smart-UPS 420 (`21.6.I`) `a` reply, with the trailing DEL.
const A_420: &[u8] =
    b"3.!$%+?=#|.\x01\x0e\x1a')+-89@ABDEFGKLMNOPQRSUVWXYZabcdefgjklmnopqrsuxyz~\x7f";
/// The older APC example `a` command list.
const A_OLD: &[u8] =
    b"3.!$%+?=#|.\x01\x0e\x1a+-789<@ABCDEFGKLMNOPQRSUVWXYZ'abcefgjklmnopqrsuvzy~\x7f";
/// The §7.1 emulator profile `a` reply.
const A_EMU: &[u8] =
    b"3.!$%+?=#|.\x01\x0e\x1a'+-789@ABCDEFGKLMNOPQRSUVWXYZabcdefgjklmnopqrsuxyz~\x7f";
/// The Smart-UPS 420 `^Z` capture (one line on the wire).
const Z_420: &[u8] = b"#uD43127130133136uA43108110112114uI43253257261265lD43106103100097lA43092090088086lI43208204200196e44200155090oD13115oA13100oI13230s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168ON OFF";
/// The §7.1 emulator profile `^Z` (D locale).
const Z_EMU: &[u8] = b"#uD43127130133136lD43106103100097e44200155090oD13115s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168ON OFF";

fn vals(t: &CapabilityTable, var: u8) -> Vec<String> {
    t.permitted(var)
        .unwrap()
        .iter()
        .map(|v| v.as_str().to_string())
        .collect()
}

#[test]
fn numbers() {
    assert_eq!(Centi::parse(b"118.3"), Ok(Centi(11830)));
    assert_eq!(Centi::parse(b"27.87"), Ok(Centi(2787)));
    assert_eq!(Centi::parse(b"036.0"), Ok(Centi(3600)));
    assert_eq!(Centi::parse(b"099.0"), Ok(Centi(9900)));
    assert_eq!(Centi::parse(b"024"), Ok(Centi(2400)));
    assert_eq!(Centi::parse(b"-1.5"), Ok(Centi(-150)));
    assert_eq!(Centi::parse(b"1.239"), Ok(Centi(123)));
    assert_eq!(Centi::parse(b"NA"), Err(ParseError::NotAvailable));
    assert_eq!(Centi::parse(b""), Err(ParseError::Empty));
    assert_eq!(Centi::parse(b"1x"), Err(ParseError::Invalid));
    assert_eq!(Centi::parse(b"99999999999"), Err(ParseError::Overflow));
    let mut s = String::new();
    Centi(3600).write_padded(&mut s, 3, 1).unwrap();
    assert_eq!(s, "036.0");
    assert_eq!(Centi(2787).to_string(), "27.87");
    assert_eq!(Centi(-50).to_string(), "-0.50");
    assert_eq!(Centi(11830).tenths(), 1183);
    assert_eq!(parse_runtime_seconds(b"0327:"), Ok(327 * 60));
    assert_eq!(parse_runtime_seconds(b"0045"), Ok(45 * 60));
    assert_eq!(parse_hex_u8(b"FF"), Ok(0xFF));
    assert_eq!(parse_hex_u8(b"0a"), Ok(0x0A));
    assert_eq!(parse_hex_u8(b"G0"), Err(ParseError::Invalid));
    assert_eq!(parse_uint(b"020"), Ok(20));
}

#[test]
fn status_flags() {
    let s = StatusFlags::parse(b"08").unwrap();
    assert_eq!(s, StatusFlags::OL);
    assert_eq!(StatusFlags::parse(b"50").unwrap().to_string(), "OB LB");
    assert_eq!(StatusFlags::parse(b"0A").unwrap().to_string(), "TRIM OL");
    assert_eq!(StatusFlags::parse(b"88").unwrap().to_string(), "OL RB");
    assert_eq!(StatusFlags::parse(b"00").unwrap().to_string(), "OFF");
    assert_eq!(StatusFlags::parse(b"SM"), Err(ParseError::NotReady));
    let all: Vec<_> = StatusFlags(0xFF).nut_tokens().collect();
    assert_eq!(
        all,
        ["CAL", "TRIM", "BOOST", "OL", "OB", "OVER", "LB", "RB"]
    );
    let mut out: heapless::Vec<u8, 4> = heapless::Vec::new();
    StatusFlags(0x50).emit(&mut out).unwrap();
    assert_eq!(&out[..], b"50");
    assert!(Register2::parse(b"20").unwrap().battery_disconnected());
    assert!(Register3::parse(b"08").unwrap().asleep());
    assert!(Register1::parse(b"C0").unwrap().ready_on_command_or_line());
}

#[test]
fn enumerated_replies() {
    assert_eq!(TransferCause::parse(b"O"), Ok(TransferCause::NoTransfer));
    assert_eq!(TransferCause::parse(b"NA"), Ok(TransferCause::NotAvailable));
    assert_eq!(TransferCause::parse(b"K"), Ok(TransferCause::Software));
    assert_eq!(TransferCause::parse(b"Q"), Err(ParseError::Invalid));
    assert_eq!(SelfTestResult::parse(b"NO"), Ok(SelfTestResult::NoResult));
    assert_eq!(
        SelfTestResult::parse(b"BT"),
        Ok(SelfTestResult::BatteryFailed)
    );
    assert_eq!(Sensitivity::parse(b"H"), Ok(Sensitivity::High));
    assert_eq!(AlarmDelay::parse(b"0"), Ok(AlarmDelay::FiveSeconds));
    assert_eq!(
        SelfTestInterval::parse(b"336"),
        Ok(SelfTestInterval::Hours(336))
    );
    assert_eq!(
        SelfTestInterval::parse(b"ON "),
        Ok(SelfTestInterval::OnPowerOn)
    );
    assert_eq!(SelfTestInterval::parse(b"OFF"), Ok(SelfTestInterval::Off));
    assert_eq!(
        SettingVar::from_byte(b'E'),
        Some(SettingVar::SelfTestInterval)
    );
    for a in Alert::ALL {
        assert_eq!(Alert::from_byte(a.as_byte()), Some(a));
    }
    assert_eq!(Alert::from_byte(b':'), None);
}

#[test]
fn text_and_firmware() {
    let m: heapless::String<32> = parse_text(b"SMART-UPS 420   ").unwrap();
    assert_eq!(m.as_str(), "SMART-UPS 420");
    let s: heapless::String<16> = parse_text(b"WS9643050926\0\0").unwrap();
    assert_eq!(s.as_str(), "WS9643050926");
    let short: heapless::String<4> = parse_text(b"Smart-UPS").unwrap();
    assert_eq!(short.as_str(), "Smar");
    let fw = Firmware::parse_b(b"60.11.D").unwrap();
    assert_eq!((fw.text.as_str(), fw.locale), ("60.11.D", Locale::D));
    assert_eq!(Firmware::parse_b(b"21.6.I").unwrap().locale, Locale::I);
    assert_eq!(Firmware::parse_b(b"60.11"), Err(ParseError::Invalid));
    assert_eq!(Firmware::parse_b(b"60..D"), Err(ParseError::Invalid));
    let v = Firmware::parse_v(b"IWD").unwrap();
    assert_eq!((v.locale, v.old_format), (Locale::D, true));
    assert_eq!(Firmware::parse_v(b"NA"), Err(ParseError::NotAvailable));
}

#[test]
fn protocol_info_real_captures() {
    let p = ProtocolInfo::parse(A_420).unwrap();
    assert_eq!(p.version, 3);
    assert!(p.alerts.contains(Alert::LineFail) && p.alerts.contains(Alert::EepromChanged));
    for b in [0x01, 0x0e, 0x1a, 0x7f, b'Q', b'@', b'~', b'\''] {
        assert!(p.commands.contains(b), "missing {b:#x}");
    }
    assert!(!p.commands.contains(b'C'), "the 420 has no C");
    assert!(!p.commands.contains(b'7'));
    insta::assert_debug_snapshot!("protocol_info_420", p);
    let old = ProtocolInfo::parse(A_OLD).unwrap();
    assert!(old.commands.contains(b'<') && old.commands.contains(b'7'));
    let emu = ProtocolInfo::parse(A_EMU).unwrap();
    assert!(emu.commands.contains(b'C'));
    insta::assert_debug_snapshot!("protocol_info_emulator", emu);
}

#[test]
fn protocol_info_validation() {
    // NUT's regex: ^[0-9]\.[^.]*\.[^.]+(\.[^.]+)?$
    assert!(ProtocolInfo::parse(b"3..Q").is_ok());
    assert!(ProtocolInfo::parse(b"3.!.QY.\x01:\x02").is_ok());
    for bad in [
        &b"3.!$"[..],
        b"3.!.",
        b"33.!.Q",
        b"x.!.Q",
        b"3.!.Q.",
        b"3.!.Q.a.b",
        b"NA",
        b"",
    ] {
        assert!(ProtocolInfo::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn capability_table_420() {
    let t = CapabilityTable::parse(Z_420, Some(Locale::I)).unwrap();
    assert_eq!(vals(&t, b'u'), ["253", "257", "261", "265"]);
    assert_eq!(vals(&t, b'l'), ["208", "204", "200", "196"]);
    assert_eq!(vals(&t, b'o'), ["230"]);
    assert_eq!(vals(&t, b'e'), ["00", "15", "50", "90"]);
    assert_eq!(vals(&t, b's'), ["H", "M", "L", "L"]);
    assert_eq!(vals(&t, b'E'), ["336", "168", "ON ", "OFF"]);
    assert_eq!(t.len(), 10);
    assert_eq!(t.skipped_other_locale(), 6);
    assert!(!t.is_truncated());
    insta::assert_debug_snapshot!("caps_420_locale_i", t);
    let d = CapabilityTable::parse(Z_420, Some(Locale::D)).unwrap();
    assert_eq!(vals(&d, b'u'), ["127", "130", "133", "136"]);
    // Unknown locale: only the all-locale records.
    let none = CapabilityTable::parse(Z_420, None).unwrap();
    assert!(none.permitted(b'u').is_none());
    assert_eq!(none.len(), 7);
}

#[test]
fn capability_table_emulator_profile() {
    let t = CapabilityTable::parse(Z_EMU, Some(Locale::D)).unwrap();
    assert_eq!(t.len(), 10);
    assert_eq!(vals(&t, b'p'), ["020", "180", "300", "600"]);
    assert_eq!(vals(&t, b'k'), ["0", "T", "L", "N"]);
    assert_eq!(vals(&t, b'r'), ["000", "060", "180", "300"]);
    insta::assert_debug_snapshot!("caps_emulator_locale_d", t);
    let mut out: heapless::Vec<u8, 256> = heapless::Vec::new();
    t.emit(&mut out).unwrap();
    assert_eq!(&out[..], Z_EMU);
}

#[test]
fn capability_table_quirks() {
    // Truncated trailing fragment: reported, not an error.
    let mut cut = Vec::from(Z_EMU);
    cut.extend_from_slice(b"uD4");
    let t = CapabilityTable::parse(&cut, Some(Locale::D)).unwrap();
    assert!(t.is_truncated());
    assert_eq!(t.len(), 10);
    // A record cut in the middle of its values.
    let t = CapabilityTable::parse(b"#uD43127130", Some(Locale::D)).unwrap_err();
    assert_eq!(t, ParseError::Invalid);
    let t = CapabilityTable::parse(b"#e44200155090uD43127130", Some(Locale::D)).unwrap();
    assert!(t.is_truncated() && t.permitted(b'e').is_some());
    // Matrix: `##` before every record; apcupsd strips the first `#`.
    let m = CapabilityTable::parse(b"##uD43127130133136##e44200155090", Some(Locale::D)).unwrap();
    assert_eq!(m.len(), 2);
    let stripped = CapabilityTable::parse(&Z_EMU[1..], Some(Locale::D)).unwrap();
    assert_eq!(stripped.len(), 10);
    // Too many values for our capacity: dropped and counted.
    let big = CapabilityTable::parse(b"#u491123456789", Some(Locale::D)).unwrap();
    assert_eq!((big.len(), big.dropped()), (0, 1));
    // More values than the shared pool holds: the record that does not fit is dropped
    // whole (none of its values kept), the ones before it stay.
    let mut line = b"#".to_vec();
    for var in b"ulesqpkrE" {
        line.extend_from_slice(&[*var, b'4', b'8', b'1']);
        line.extend_from_slice(b"12345678");
    }
    let full = CapabilityTable::parse(&line, Some(Locale::D)).unwrap();
    assert_eq!((full.len(), full.dropped()), (8, 1));
    assert_eq!(full.permitted(b'r').map(|v| v.len()), Some(8));
    assert_eq!(full.permitted(b'E'), None);
    let mut t = CapabilityTable::parse(&line, Some(Locale::D)).unwrap();
    assert_eq!(t.push(b'x', b'4', &["1"]), Err(EmitError::Full));
    assert_eq!(
        CapabilityTable::parse(b"NA", None),
        Err(ParseError::NotAvailable)
    );
}

#[test]
fn command_encoding() {
    let at = Command::shutdown_return(5).unwrap().encode();
    let pairs: Vec<_> = at.iter().map(|p| (p.gap_ms, p.byte)).collect();
    assert_eq!(pairs, [(0, b'@'), (200, b'0'), (50, b'0'), (50, b'5')]);
    assert!(Command::shutdown_return(1000).is_none());
    let k = Command::ShutdownStayOff.encode();
    assert_eq!(
        k.iter().map(|p| (p.gap_ms, p.byte)).collect::<Vec<_>>(),
        [(0, b'K'), (1500, b'K')]
    );
    let on = Command::TurnOn.encode_with(&Pacing {
        double_send_gap_ms: 2000,
        ..Pacing::NUT
    });
    assert_eq!(
        on.iter().map(|p| (p.gap_ms, p.byte)).collect::<Vec<_>>(),
        [(0, 0x0e), (2000, 0x0e)]
    );
    let w = Command::write_string(StringVar::UpsId, "RACK1")
        .unwrap()
        .encode();
    let bytes: Vec<u8> = w.iter().map(|p| p.byte).collect();
    assert_eq!(&bytes[..], b"-RACK1   ");
    assert_eq!(
        w.iter().map(|p| p.gap_ms).collect::<Vec<_>>(),
        [0, 200, 50, 50, 50, 50, 50, 50, 50]
    );
    assert!(Command::write_string(StringVar::BatteryDate, "123456789").is_none());
    assert!(Command::write_string(StringVar::BatteryDate, "01/15/9\n").is_none());
    assert_eq!(
        Command::Capabilities
            .encode()
            .iter()
            .map(|p| p.byte)
            .collect::<Vec<_>>(),
        [0x1a]
    );
    assert_eq!(Command::from_byte(b'Q'), Some(Command::Status));
    assert_eq!(Command::from_byte(0x7f), Some(Command::AbortShutdown));
    assert_eq!(Command::from_byte(b'K'), Some(Command::ShutdownStayOff));
    assert_eq!(
        Command::ProtocolInfo.reply_kind().nut_timeout().as_millis(),
        6000
    );
    assert_eq!(
        Command::SmartMode.reply_kind().nut_timeout().as_millis(),
        1500
    );
    assert_eq!(Command::TurnOff.reply_kind(), ReplyKind::OptionalAck);
    // Every single-byte command maps back to itself.
    for b in 0..=255u8 {
        if let Some(c) = Command::from_byte(b) {
            assert_eq!(c.first_byte(), b);
        }
    }
}

// ------------------------------------------------------------------ proptest

fn any_caps() -> impl Strategy<Value = CapabilityTable> {
    let record = (
        prop::sample::select(&b"ulesqpkrE"[..]),
        prop::sample::select(&b"4D"[..]),
        1usize..=4,
        1usize..=8,
    )
        .prop_flat_map(|(var, loc, width, n)| {
            let value = prop::collection::vec(0x20u8..0x7f, width);
            (Just(var), Just(loc), prop::collection::vec(value, n))
        });
    // At most eight values per record: eight records always fit the shared pool.
    prop::collection::vec(record, 0..=CAP_MAX_POOL / CAP_MAX_VALUES).prop_map(|recs| {
        let mut t = CapabilityTable::new();
        for (var, loc, values) in recs {
            let strs: Vec<String> = values
                .iter()
                .map(|v| String::from_utf8(v.clone()).unwrap())
                .collect();
            let refs: Vec<&str> = strs.iter().map(|s| s.as_str()).collect();
            t.push(var, loc, &refs).unwrap();
        }
        t
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(line in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Centi::parse(&line);
        let _ = parse_uint(&line);
        let _ = parse_hex_u8(&line);
        let _ = parse_runtime_seconds(&line);
        let _ = StatusFlags::parse(&line);
        let _ = ProtocolInfo::parse(&line);
        let _ = CapabilityTable::parse(&line, Some(Locale::D));
        let _ = CapabilityTable::parse(&line, None);
        let _ = Firmware::parse_b(&line);
        let _ = Firmware::parse_v(&line);
        let _ = parse_text::<8>(&line);
        let _ = TransferCause::parse(&line);
        let _ = SelfTestResult::parse(&line);
        let _ = SelfTestInterval::parse(&line);
    }

    #[test]
    fn centi_round_trip(v in any::<i32>()) {
        let s = Centi(v).to_string();
        prop_assert_eq!(Centi::parse(s.as_bytes()), Ok(Centi(v)));
    }

    #[test]
    fn centi_padded_round_trip(v in 0i32..100_000) {
        let mut s = String::new();
        Centi(v).write_padded(&mut s, 3, 2).unwrap();
        prop_assert_eq!(Centi::parse(s.as_bytes()), Ok(Centi(v)));
    }

    #[test]
    fn status_round_trip(b in any::<u8>()) {
        let mut out: heapless::Vec<u8, 2> = heapless::Vec::new();
        StatusFlags(b).emit(&mut out).unwrap();
        prop_assert_eq!(StatusFlags::parse(&out), Ok(StatusFlags(b)));
    }

    #[test]
    fn protocol_info_round_trip(
        version in 0u8..10,
        alerts in prop::collection::vec(prop::sample::select(&Alert::ALL[..]), 0..10),
        cmds in prop::collection::vec(any::<u8>(), 1..60),
    ) {
        let commands: CommandSet = cmds.iter().copied()
            .filter(|b| !matches!(b, b'.' | b'\r' | b'\n' | b' ' | 0))
            .collect();
        prop_assume!(!commands.is_empty());
        let info = ProtocolInfo { version, alerts: alerts.into_iter().collect(), commands };
        let mut out: heapless::Vec<u8, 300> = heapless::Vec::new();
        info.emit(&mut out).unwrap();
        prop_assert_eq!(ProtocolInfo::parse(&out), Ok(info));
    }

    #[test]
    fn caps_round_trip(t in any_caps()) {
        let mut out: heapless::Vec<u8, 600> = heapless::Vec::new();
        t.emit(&mut out).unwrap();
        let back = CapabilityTable::parse(&out, Some(Locale::D));
        if t.is_empty() {
            prop_assert!(back.is_err() || back.as_ref().is_ok_and(|b| b.is_empty()));
        } else {
            prop_assert_eq!(back, Ok(t));
        }
    }
}
