//! Accounts are ed25519 public keys, shown as bech32m strings with the
//! human-readable part `weft`: `weft1…`. The checksum catches mistyped
//! characters; plain bech32 (not `m`) strings and other prefixes are
//! refused.

use std::{fmt, str::FromStr};

use bech32::{primitives::decode::CheckedHrpstring, Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};

const HRP: Hrp = Hrp::parse_unchecked("weft");

/// An account: the 32 bytes of an ed25519 public key.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Default,
)]
pub struct Address(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("not a weft address (bad checksum or characters): {0}")]
    Invalid(String),
    #[error("not a weft address: the prefix must be `weft1`, got `{0}`")]
    WrongPrefix(String),
    #[error("not a weft address: it holds {0} bytes, an address holds 32")]
    WrongLength(usize),
}

impl Address {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match bech32::encode::<Bech32m>(HRP, &self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let checked = CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|e| AddressError::Invalid(format!("{s}: {e}")))?;
        if checked.hrp() != HRP {
            return Err(AddressError::WrongPrefix(checked.hrp().to_string()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let len = bytes.len();
        bytes
            .try_into()
            .map(Address)
            .map_err(|_| AddressError::WrongLength(len))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = Address([7u8; 32]);
        let s = a.to_string();
        assert!(s.starts_with("weft1"), "{s}");
        assert_eq!(s.parse::<Address>().unwrap(), a);
    }

    #[test]
    fn mistyped_character_is_rejected() {
        let s = Address([7u8; 32]).to_string();
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() - 10;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            typo.parse::<Address>(),
            Err(AddressError::Invalid(_))
        ));
    }

    #[test]
    fn other_prefix_and_plain_bech32_are_rejected() {
        let other = bech32::encode::<Bech32m>(Hrp::parse("coin").unwrap(), &[1u8; 32]).unwrap();
        assert!(matches!(
            other.parse::<Address>(),
            Err(AddressError::WrongPrefix(_))
        ));
        let plain = bech32::encode::<bech32::Bech32>(HRP, &[1u8; 32]).unwrap();
        assert!(plain.parse::<Address>().is_err());
        let short = bech32::encode::<Bech32m>(HRP, &[1u8; 20]).unwrap();
        assert_eq!(short.parse::<Address>(), Err(AddressError::WrongLength(20)));
        assert!("".parse::<Address>().is_err());
        assert!("weft1".parse::<Address>().is_err());
    }
}
