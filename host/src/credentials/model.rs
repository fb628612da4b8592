//! What the encrypted credential store holds: the administrator, SNMPv3 users and NUT users.
//!
//! These are the typed, serde-serialised structures inside the encrypted payload. Secret
//! material lives in [`SecretBytes`] / [`SecretString`], which are wiped when dropped and never
//! shown by `Debug`. The JSON form of a secret is lower-case hex (bytes) or the string itself;
//! it only ever exists inside the encrypted payload, whose plaintext buffer is wiped too.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Version of the payload structure (inside the encryption; the file header has its own).
pub const CONTENT_FORMAT: u32 = 1;

/// Secret bytes (SNMPv3 keys): zeroised on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(bytes.to_vec())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = Zeroizing::new(String::with_capacity(self.0.len() * 2));
        for b in &self.0 {
            for nibble in [b >> 4, b & 0x0f] {
                // `nibble` < 16, so the lookup cannot fail; the fallback only satisfies the
                // no-panic rule.
                text.push(char::from(
                    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        decode_hex(&text)
            .map(SecretBytes)
            .ok_or_else(|| serde::de::Error::custom("secret bytes: invalid hex"))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some((val(*hi)? << 4) | val(*lo)?),
            _ => None,
        })
        .collect()
}

/// A secret string (NUT passwords): zeroised on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// The one administrator account (§8.3). The password is kept only as an Argon2id PHC string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    pub username: String,
    /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    pub password_hash: String,
    /// When the password was last set, seconds since the Unix epoch (UTC).
    pub changed_at: u64,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("changed_at", &self.changed_at)
            .finish()
    }
}

/// SNMPv3 USM authentication protocol (RFC 3414, RFC 7860).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnmpAuthProtocol {
    /// noAuthNoPriv: no key.
    None,
    /// Legacy; accepted for old managers, not recommended (§8.11).
    HmacMd5,
    /// Legacy; accepted for old managers, not recommended (§8.11).
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// SNMPv3 USM privacy protocol (RFC 3414, RFC 3826 and the common AES-192/256 extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnmpPrivProtocol {
    /// No encryption: no key.
    None,
    /// Legacy; accepted for old managers, not recommended (§8.11).
    Des,
    Aes128,
    Aes192,
    Aes256,
}

/// Whether the stored keys are master keys (Ku, derived from the passphrase) or already
/// localized to an engine (Kul, RFC 3414 §2.6). Localized keys let the passphrase itself be
/// forgotten; master keys survive an engine-id change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SnmpKeyKind {
    Master,
    Localized {
        /// The snmpEngineID the keys are localized to.
        #[serde(with = "hex_bytes")]
        engine_id: Vec<u8>,
    },
}

/// One SNMPv3 user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpUser {
    /// USM securityName, 1–32 printable ASCII characters.
    pub name: String,
    pub key_kind: SnmpKeyKind,
    pub auth_protocol: SnmpAuthProtocol,
    pub auth_key: SecretBytes,
    pub priv_protocol: SnmpPrivProtocol,
    pub priv_key: SecretBytes,
}

/// What a NUT (upsd) user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NutRole {
    /// Read variables only.
    ReadOnly,
    /// `upsmon secondary`: monitors and shuts itself down.
    MonitorSecondary,
    /// `upsmon primary`: may also set forced shutdown (FSD).
    MonitorPrimary,
}

/// One NUT network user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NutUser {
    /// 1–64 printable ASCII characters, no white space.
    pub name: String,
    /// 1–128 printable ASCII characters, no white space.
    pub secret: SecretString,
    pub role: NutRole,
}

/// The whole decrypted payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub format: u32,
    #[serde(default)]
    pub admin: Option<Admin>,
    #[serde(default)]
    pub snmp_users: Vec<SnmpUser>,
    #[serde(default)]
    pub nut_users: Vec<NutUser>,
    /// `[Notifications]` SMTP AUTH password (from `[Credentials] smtp_password` or the web UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<SecretString>,
}

impl Default for Content {
    fn default() -> Self {
        Content {
            format: CONTENT_FORMAT,
            admin: None,
            snmp_users: Vec::new(),
            nut_users: Vec::new(),
            smtp_password: None,
        }
    }
}

/// Serde helper: non-secret bytes (engine ids) as lower-case hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::decode_hex(&text).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let u = NutUser {
            name: "monuser".into(),
            secret: SecretString::new("hunter2-secret"),
            role: NutRole::MonitorPrimary,
        };
        let s = SnmpUser {
            name: "snmpadmin".into(),
            key_kind: SnmpKeyKind::Master,
            auth_protocol: SnmpAuthProtocol::HmacSha256,
            auth_key: SecretBytes::from_slice(&[0xde, 0xad, 0xbe, 0xef]),
            priv_protocol: SnmpPrivProtocol::Aes128,
            priv_key: SecretBytes::from_slice(&[0xca, 0xfe]),
        };
        let d = format!("{u:?} {s:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.to_lowercase().contains("dead"), "{d}");
        assert!(!d.contains("222"), "{d}");
    }

    #[test]
    fn json_round_trip() {
        let c = Content {
            format: CONTENT_FORMAT,
            admin: Some(Admin {
                username: "admin1".into(),
                password_hash: "$argon2id$x".into(),
                changed_at: 7,
            }),
            snmp_users: vec![SnmpUser {
                name: "mgr".into(),
                key_kind: SnmpKeyKind::Localized {
                    engine_id: vec![0x80, 0, 0x1f, 0x88],
                },
                auth_protocol: SnmpAuthProtocol::HmacSha512,
                auth_key: SecretBytes::from_slice(&[0, 1, 0xff]),
                priv_protocol: SnmpPrivProtocol::Aes256,
                priv_key: SecretBytes::from_slice(&[0xab; 32]),
            }],
            nut_users: vec![NutUser {
                name: "upsmon".into(),
                secret: SecretString::new("pw#1"),
                role: NutRole::MonitorSecondary,
            }],
            smtp_password: Some(SecretString::new("smtp#pw")),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"0001ff\""), "{json}");
        assert!(json.contains("\"hmac-sha512\""), "{json}");
        let back: Content = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        for bad in ["\"0\"", "\"zz\"", "\"é1\"", "1"] {
            assert!(serde_json::from_str::<SecretBytes>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::from_str::<SecretBytes>("\"\"").unwrap(),
            SecretBytes::default()
        );
    }
}
