//! The administrator credential policy (product §8.4), enforced here and nowhere else.
//!
//! Every entry point that sets the administrator (INI `[Credentials]`, the install-time file,
//! the setup token, a password change) goes through [`check_username`] and [`check_password`].
//! Each rejection is a [`PolicyError`] naming the one rule that failed, so the UI and the log
//! can tell the administrator exactly what to fix. Rules are checked in a fixed order
//! (character set first, then length, then character classes, then the username rule), and the
//! first failure is reported.
//!
//! Error messages never echo the rejected value: a password must not reach a log.

use std::fmt;

/// Minimum username length in characters.
pub const USERNAME_MIN: usize = 6;
/// Maximum username length in characters.
pub const USERNAME_MAX: usize = 128;
/// Minimum password length in characters.
pub const PASSWORD_MIN: usize = 8;
/// Maximum password length in characters.
pub const PASSWORD_MAX: usize = 128;
/// The special characters that satisfy the "digit or special character" rule.
pub const SPECIAL_CHARS: &str = "#?!@$%^&*-";

/// Which credential a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Username => "username",
            Field::Password => "password",
        }
    }
}

/// One failed policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Length outside `min..=max` characters (`len` is what was given).
    Length {
        field: Field,
        len: usize,
        min: usize,
        max: usize,
    },
    /// A character outside US-ASCII.
    NotAscii { field: Field },
    /// A space, tab or other white-space character.
    Whitespace { field: Field },
    /// A control character (other than white space, which has its own rule).
    ControlCharacter { field: Field },
    /// No upper-case letter `A`–`Z`.
    NoUppercase,
    /// No lower-case letter `a`–`z`.
    NoLowercase,
    /// Neither a digit nor one of [`SPECIAL_CHARS`].
    NoDigitOrSpecial,
    /// The password contains the username (compared case-insensitively).
    ContainsUsername,
}

impl PolicyError {
    /// A stable identifier of the rule, for the web UI and tests (e.g. `password.uppercase`).
    pub fn rule(&self) -> &'static str {
        match self {
            PolicyError::Length {
                field: Field::Username,
                ..
            } => "username.length",
            PolicyError::Length {
                field: Field::Password,
                ..
            } => "password.length",
            PolicyError::NotAscii {
                field: Field::Username,
            } => "username.ascii",
            PolicyError::NotAscii {
                field: Field::Password,
            } => "password.ascii",
            PolicyError::Whitespace {
                field: Field::Username,
            } => "username.whitespace",
            PolicyError::Whitespace {
                field: Field::Password,
            } => "password.whitespace",
            PolicyError::ControlCharacter {
                field: Field::Username,
            } => "username.control",
            PolicyError::ControlCharacter {
                field: Field::Password,
            } => "password.control",
            PolicyError::NoUppercase => "password.uppercase",
            PolicyError::NoLowercase => "password.lowercase",
            PolicyError::NoDigitOrSpecial => "password.digit_or_special",
            PolicyError::ContainsUsername => "password.contains_username",
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Length {
                field,
                len,
                min,
                max,
            } => write!(
                f,
                "{} must be {min} to {max} characters long (got {len})",
                field.as_str()
            ),
            PolicyError::NotAscii { field } => {
                write!(f, "{} must use US-ASCII characters only", field.as_str())
            }
            PolicyError::Whitespace { field } => {
                write!(f, "{} must not contain white space", field.as_str())
            }
            PolicyError::ControlCharacter { field } => {
                write!(f, "{} must not contain control characters", field.as_str())
            }
            PolicyError::NoUppercase => {
                f.write_str("password must contain at least one upper-case letter (A-Z)")
            }
            PolicyError::NoLowercase => {
                f.write_str("password must contain at least one lower-case letter (a-z)")
            }
            PolicyError::NoDigitOrSpecial => write!(
                f,
                "password must contain at least one digit or one of the special characters {SPECIAL_CHARS}"
            ),
            PolicyError::ContainsUsername => {
                f.write_str("password must not contain the username (in any letter case)")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// The rules both fields share: US-ASCII, no white space, no control characters, length.
fn check_common(field: Field, value: &str, min: usize, max: usize) -> Result<(), PolicyError> {
    if !value.is_ascii() {
        return Err(PolicyError::NotAscii { field });
    }
    // White space is checked before control characters so a tab or newline is reported as
    // white space, which is what the user most likely typed.
    if value.bytes().any(|b| b.is_ascii_whitespace() || b == 0x0b) {
        return Err(PolicyError::Whitespace { field });
    }
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(PolicyError::ControlCharacter { field });
    }
    // ASCII only from here on, so bytes == characters.
    let len = value.len();
    if !(min..=max).contains(&len) {
        return Err(PolicyError::Length {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

/// Check a username against §8.4: 6–128 US-ASCII characters, no white space or control
/// characters.
pub fn check_username(username: &str) -> Result<(), PolicyError> {
    check_common(Field::Username, username, USERNAME_MIN, USERNAME_MAX)
}

/// Check a password against §8.4 for the given username: 8–128 US-ASCII characters, no white
/// space or control characters, at least one upper-case and one lower-case letter, at least
/// one digit or special character from [`SPECIAL_CHARS`], and not containing the username
/// (case-insensitive).
///
/// The username itself is not validated here; call [`check_username`] for that.
pub fn check_password(username: &str, password: &str) -> Result<(), PolicyError> {
    check_common(Field::Password, password, PASSWORD_MIN, PASSWORD_MAX)?;
    if !password.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(PolicyError::NoUppercase);
    }
    if !password.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(PolicyError::NoLowercase);
    }
    if !password
        .bytes()
        .any(|b| b.is_ascii_digit() || SPECIAL_CHARS.as_bytes().contains(&b))
    {
        return Err(PolicyError::NoDigitOrSpecial);
    }
    // An empty username would be "contained" in everything; it is rejected by
    // `check_username` anyway, so only a real name counts here.
    if !username.is_empty()
        && password
            .to_ascii_lowercase()
            .contains(&username.to_ascii_lowercase())
    {
        return Err(PolicyError::ContainsUsername);
    }
    Ok(())
}

/// Both checks, username first: what every "set the administrator" path calls.
pub fn check_credentials(username: &str, password: &str) -> Result<(), PolicyError> {
    check_username(username)?;
    check_password(username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(p: &str) -> Result<(), PolicyError> {
        check_password("operator", p)
    }

    #[test]
    fn valid_credentials_pass() {
        assert_eq!(check_credentials("admin1", "Secret#123"), Ok(()));
        assert_eq!(check_credentials("operator", "Abcdefg1"), Ok(()));
        // Special character alone satisfies the digit-or-special rule.
        assert_eq!(pw("Abcdefg-"), Ok(()));
        for c in SPECIAL_CHARS.chars() {
            assert_eq!(pw(&format!("Abcdefg{c}")), Ok(()), "special {c}");
        }
        // Other punctuation is allowed, it just does not count.
        assert_eq!(pw("Ab_cdef(1)"), Ok(()));
        assert_eq!(check_username(&"u".repeat(128)), Ok(()));
        let long = format!("A1{}", "b".repeat(126));
        assert_eq!(pw(&long), Ok(()));
    }

    #[test]
    fn username_length() {
        let e = check_username("admin").unwrap_err();
        assert_eq!(
            e,
            PolicyError::Length {
                field: Field::Username,
                len: 5,
                min: 6,
                max: 128
            }
        );
        assert_eq!(e.rule(), "username.length");
        assert!(e.to_string().contains("6 to 128"), "{e}");
        assert_eq!(check_username("").unwrap_err().rule(), "username.length");
        assert_eq!(
            check_username(&"u".repeat(129)).unwrap_err().rule(),
            "username.length"
        );
    }

    #[test]
    fn username_charset() {
        assert_eq!(
            check_username("admïn12").unwrap_err().rule(),
            "username.ascii"
        );
        assert_eq!(
            check_username("adm in12").unwrap_err().rule(),
            "username.whitespace"
        );
        assert_eq!(
            check_username("admin\t12").unwrap_err().rule(),
            "username.whitespace"
        );
        assert_eq!(
            check_username("admin\u{1}12").unwrap_err().rule(),
            "username.control"
        );
        assert_eq!(
            check_username("admin\u{7f}12").unwrap_err().rule(),
            "username.control"
        );
        assert!(
            check_username("admïn12")
                .unwrap_err()
                .to_string()
                .contains("US-ASCII")
        );
    }

    #[test]
    fn password_length() {
        let e = pw("Ab1#xyz").unwrap_err();
        assert_eq!(e.rule(), "password.length");
        assert!(e.to_string().contains("8 to 128"), "{e}");
        let long = format!("A1{}", "b".repeat(127));
        assert_eq!(pw(&long).unwrap_err().rule(), "password.length");
    }

    #[test]
    fn password_charset() {
        assert_eq!(pw("Äbcdefg1").unwrap_err().rule(), "password.ascii");
        assert_eq!(pw("Abc defg1").unwrap_err().rule(), "password.whitespace");
        assert_eq!(pw("Abcdefg1\n").unwrap_err().rule(), "password.whitespace");
        assert_eq!(pw("Abc\u{0}defg1").unwrap_err().rule(), "password.control");
        assert_eq!(pw("Abc\u{1b}defg1").unwrap_err().rule(), "password.control");
    }

    #[test]
    fn password_classes() {
        let e = pw("abcdefg1").unwrap_err();
        assert_eq!(e, PolicyError::NoUppercase);
        assert!(e.to_string().contains("upper-case"));
        let e = pw("ABCDEFG1").unwrap_err();
        assert_eq!(e, PolicyError::NoLowercase);
        assert!(e.to_string().contains("lower-case"));
        let e = pw("Abcdefgh").unwrap_err();
        assert_eq!(e, PolicyError::NoDigitOrSpecial);
        assert!(e.to_string().contains(SPECIAL_CHARS));
        // Punctuation outside the list does not satisfy the rule.
        assert_eq!(pw("Abcdefg_").unwrap_err(), PolicyError::NoDigitOrSpecial);
    }

    #[test]
    fn password_must_not_contain_username() {
        let e = check_password("admin1", "xxADMIN1yY").unwrap_err();
        assert_eq!(e, PolicyError::ContainsUsername);
        assert_eq!(e.rule(), "password.contains_username");
        assert!(e.to_string().contains("username"));
        assert_eq!(
            check_password("admin1", "Admin1#secret").unwrap_err(),
            PolicyError::ContainsUsername
        );
        // A password that merely shares letters is fine.
        assert_eq!(check_password("admin1", "Adm1n#secret"), Ok(()));
    }

    #[test]
    fn messages_never_echo_the_value() {
        for p in ["Sx", "sssssss1", "SSSSSSS1", "Sssssssss", "Ss sssss1"] {
            let e = pw(p).unwrap_err();
            assert!(!e.to_string().contains(p), "{e}");
        }
    }
}
