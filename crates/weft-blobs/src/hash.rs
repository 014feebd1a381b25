//! The content id: a BLAKE3 hash.
//!
//! Every blob and every collection manifest is named by the BLAKE3 hash of its
//! bytes. [`Hash`] is a plain 32-byte value with no I/O: it is `Copy`, ordered
//! (so it can key maps and tables) and has one text form, 64 lowercase hex
//! characters, the same string `b3sum` prints. That text form is what
//! `Display`, `FromStr` and serde use. Parsing accepts uppercase hex and
//! surrounding whitespace, since hashes are often pasted by hand.

use std::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Length of a hash in bytes.
const LEN: usize = 32;
/// Length of a hash in hex characters.
const HEX_LEN: usize = LEN * 2;

/// A BLAKE3 hash naming a blob or a collection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; LEN]);

impl Hash {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; LEN]) -> Self {
        Self(bytes)
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }

    /// The BLAKE3 hash of `data`.
    pub fn new(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The hash as 64 lowercase hex characters, as `b3sum` prints it.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(HEX_LEN);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }
}

impl From<blake3::Hash> for Hash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl From<Hash> for blake3::Hash {
    fn from(hash: Hash) -> Self {
        blake3::Hash::from_bytes(hash.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// Why a string is not a valid hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The trimmed input is not 64 characters long.
    #[error("invalid hash: expected 64 hex characters, got {len}")]
    WrongLength {
        /// Number of characters (not bytes) in the trimmed input.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hash: {found:?} at position {position} is not a hex digit")]
    NotHex {
        /// Zero-based character index in the trimmed input.
        position: usize,
        /// The offending character.
        found: char,
    },
}

impl FromStr for Hash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let len = s.chars().count();
        if len != HEX_LEN {
            return Err(HashParseError::WrongLength { len });
        }
        let mut bytes = [0u8; LEN];
        let mut chars = s.chars().enumerate();
        for byte in &mut bytes {
            let mut nibble = || -> Result<u8, HashParseError> {
                // The length check above guarantees 64 characters.
                let (position, found) = chars.next().ok_or(HashParseError::WrongLength { len })?;
                found
                    .to_digit(16)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or(HashParseError::NotHex { position, found })
            };
            let high = nibble()?;
            let low = nibble()?;
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;

        impl de::Visitor<'_> for HexVisitor {
            type Value = Hash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hash as 64 hex characters")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hash, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_blake3_and_b3sum_hex() {
        let data = b"hello weft";
        let hash = Hash::new(data);
        let reference = blake3::hash(data);
        assert_eq!(hash.as_bytes(), reference.as_bytes());
        assert_eq!(hash.to_hex(), reference.to_hex().as_str());
        assert_eq!(hash.to_string(), reference.to_hex().as_str());
        assert_eq!(Hash::from(reference), hash);
        assert_eq!(blake3::Hash::from(hash), reference);
        // b3sum of the empty input.
        assert_eq!(
            Hash::new(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn hex_round_trip() {
        for i in 0..=255u8 {
            let hash = Hash::from_bytes([i; 32]);
            let hex = hash.to_hex();
            assert_eq!(hex.len(), 64);
            assert_eq!(hex, hex.to_lowercase());
            assert_eq!(hex.parse::<Hash>().unwrap(), hash);
        }
        let hash = Hash::new(b"x");
        assert_eq!(format!("{hash:?}"), format!("Hash({hash})"));
    }

    #[test]
    fn accepts_uppercase_and_whitespace() {
        let hash = Hash::new(b"abc");
        let upper = hash.to_hex().to_uppercase();
        assert_eq!(upper.parse::<Hash>().unwrap(), hash);
        assert_eq!(format!("  {upper}\n").parse::<Hash>().unwrap(), hash);
    }

    #[test]
    fn wrong_length() {
        let hex = Hash::new(b"abc").to_hex();
        let err = hex[..63].parse::<Hash>().unwrap_err();
        assert_eq!(err, HashParseError::WrongLength { len: 63 });
        assert_eq!(
            err.to_string(),
            "invalid hash: expected 64 hex characters, got 63"
        );
        let err = format!("{hex}0").parse::<Hash>().unwrap_err();
        assert_eq!(err, HashParseError::WrongLength { len: 65 });
        assert_eq!(
            "".parse::<Hash>().unwrap_err(),
            HashParseError::WrongLength { len: 0 }
        );
        // Counted in characters, so multi-byte input never panics.
        let wide = "é".repeat(64);
        assert!(matches!(
            wide.parse::<Hash>().unwrap_err(),
            HashParseError::NotHex {
                position: 0,
                found: 'é'
            }
        ));
        let wide = "é".repeat(32);
        assert_eq!(
            wide.parse::<Hash>().unwrap_err(),
            HashParseError::WrongLength { len: 32 }
        );
    }

    #[test]
    fn not_hex_reports_position() {
        let mut hex = Hash::new(b"abc").to_hex();
        hex.replace_range(5..6, "z");
        let err = hex.parse::<Hash>().unwrap_err();
        assert_eq!(
            err,
            HashParseError::NotHex {
                position: 5,
                found: 'z'
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid hash: 'z' at position 5 is not a hex digit"
        );
        let mut hex = Hash::new(b"abc").to_hex();
        hex.replace_range(63..64, "g");
        assert_eq!(
            hex.parse::<Hash>().unwrap_err(),
            HashParseError::NotHex {
                position: 63,
                found: 'g'
            }
        );
    }

    #[test]
    fn serde_uses_hex_string() {
        let hash = Hash::new(b"serde");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), hash);
        let err = serde_json::from_str::<Hash>("\"abc\"").unwrap_err();
        assert!(err
            .to_string()
            .contains("expected 64 hex characters, got 3"));
        assert!(serde_json::from_str::<Hash>("42").is_err());
    }
}
