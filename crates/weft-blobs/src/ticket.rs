//! Tickets: what a user hands to a friend.
//!
//! A [`Ticket`] names content by [`Hash`], says whether it is a single blob or
//! a collection, and lists a few [`Provider`]s (peers with their transport
//! addresses) to fetch it from. A ticket with no providers is valid: it means
//! the same as the bare hash, and the fetcher finds providers on the DHT.
//!
//! The text form is `weft1` followed by lowercase, unpadded base32 of a
//! compact binary encoding:
//!
//! ```text
//! version: u8 (= 1) | kind: u8 (0 blob, 1 collection) | hash: [u8; 32]
//! provider count: u8
//! per provider: peer id len: u8 | peer id bytes | addr count: u8
//!               per addr: len: u16 big-endian | multiaddr bytes
//! ```
//!
//! Addresses in a ticket never carry `/p2p`: the peer id is stored once per
//! provider. Decoding is strict (no trailing bytes, bounded counts, unknown
//! versions and kinds rejected) and never panics, because tickets arrive from
//! untrusted people. This module does no I/O.
//!
//! [`Target`] is what `weft get` accepts: either a ticket or a bare hash.

use std::{fmt, str::FromStr};

use data_encoding::BASE32_NOPAD;
use weft_net::{Multiaddr, PeerId};

use crate::hash::{Hash, HashParseError};

/// The text prefix of every ticket.
pub const PREFIX: &str = "weft1";
/// Most providers a ticket may list.
pub const MAX_PROVIDERS: usize = 16;
/// Most addresses a provider in a ticket may list.
pub const MAX_ADDRS: usize = 16;
/// Longest accepted ticket string, prefix included.
pub const MAX_TICKET_LEN: usize = 8 * 1024;

/// The binary format version written by this code.
const VERSION: u8 = 1;
/// The multiaddr protocol tag for a peer id.
const P2P_TAG: &str = "p2p";

/// Whether a hash names a single blob or a collection manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A single file's bytes.
    Blob,
    /// A collection manifest listing a folder's files.
    Collection,
}

impl BlobKind {
    /// `"blob"` or `"collection"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Blob => "blob",
            BlobKind::Collection => "collection",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            BlobKind::Blob => 0,
            BlobKind::Collection => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(BlobKind::Blob),
            1 => Some(BlobKind::Collection),
            _ => None,
        }
    }
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A peer that serves the content, with the addresses to dial it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The provider's peer id.
    pub peer: PeerId,
    /// Transport addresses, without `/p2p`.
    pub addrs: Vec<Multiaddr>,
}

impl Provider {
    /// Builds a provider, normalising its addresses for a ticket.
    ///
    /// A trailing `/p2p/<peer>` naming this same peer is stripped. Addresses
    /// that name another peer or carry `/p2p` elsewhere (relay circuits) are
    /// dropped, as are duplicates; at most [`MAX_ADDRS`] are kept.
    pub fn new(peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        let mut kept: Vec<Multiaddr> = Vec::new();
        for addr in addrs {
            if kept.len() == MAX_ADDRS {
                tracing::debug!(%peer, "ticket provider has more than {MAX_ADDRS} addresses; dropping the rest");
                break;
            }
            match transport_addr(&addr, peer) {
                Some(addr) if !kept.contains(&addr) => kept.push(addr),
                Some(_) => {}
                None => tracing::debug!(%peer, %addr, "address not usable in a ticket; dropped"),
            }
        }
        Self { peer, addrs: kept }
    }
}

/// Strips a trailing `/p2p/<peer>`; `None` if any other `/p2p` remains.
fn transport_addr(addr: &Multiaddr, peer: PeerId) -> Option<Multiaddr> {
    let transport = match weft_net::split_peer_id(addr) {
        Some((transport, named)) if named == peer => transport,
        Some(_) => return None,
        None => addr.clone(),
    };
    if transport.iter().any(|p| p.tag() == P2P_TAG) {
        return None;
    }
    Some(transport)
}

/// What a user hands to a friend: a hash, its kind and where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The blob or collection manifest hash.
    pub hash: Hash,
    /// Whether `hash` names a blob or a collection.
    pub kind: BlobKind,
    /// Peers to fetch from; may be empty.
    pub providers: Vec<Provider>,
}

/// Why a string is not a valid ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The text does not start with [`PREFIX`].
    #[error("malformed ticket: it must start with \"weft1\"")]
    MissingPrefix,
    /// The text is longer than [`MAX_TICKET_LEN`].
    #[error("malformed ticket: {len} characters long, max 8192")]
    TooLong {
        /// Length of the trimmed input in bytes.
        len: usize,
    },
    /// The part after the prefix is not valid base32.
    #[error("malformed ticket: not base32")]
    NotBase32,
    /// The binary data ends early.
    #[error("malformed ticket: truncated")]
    Truncated,
    /// The format version is not one this build understands.
    #[error("malformed ticket: unknown version {0}")]
    UnknownVersion(u8),
    /// The kind byte is neither blob nor collection.
    #[error("malformed ticket: unknown kind {0}")]
    UnknownKind(u8),
    /// More than [`MAX_PROVIDERS`] providers.
    #[error("malformed ticket: {count} providers, max 16")]
    TooManyProviders {
        /// The provider count in the ticket.
        count: usize,
    },
    /// A provider lists more than [`MAX_ADDRS`] addresses.
    #[error("malformed ticket: provider {provider} has {count} addresses, max 16")]
    TooManyAddrs {
        /// Zero-based index of the provider.
        provider: usize,
        /// The address count in the ticket.
        count: usize,
    },
    /// A provider's peer id does not decode.
    #[error("malformed ticket: provider {provider} has an invalid peer id")]
    BadPeerId {
        /// Zero-based index of the provider.
        provider: usize,
    },
    /// An address does not decode as a multiaddr, or is empty.
    #[error("malformed ticket: provider {provider} has an invalid address")]
    BadAddr {
        /// Zero-based index of the provider.
        provider: usize,
    },
    /// An address names a different peer, or carries `/p2p` in the middle.
    #[error("malformed ticket: provider {provider} has an address with a foreign /p2p: {addr}")]
    ForeignPeerInAddr {
        /// Zero-based index of the provider.
        provider: usize,
        /// The offending address.
        addr: Multiaddr,
    },
    /// Bytes remain after the last provider.
    #[error("malformed ticket: {count} trailing bytes")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

impl Ticket {
    /// The binary form, trimmed to the limits so that it always decodes.
    ///
    /// Providers past [`MAX_PROVIDERS`], addresses past [`MAX_ADDRS`] or with a
    /// foreign `/p2p`, and trailing providers that would push the text past
    /// [`MAX_TICKET_LEN`] are left out.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.push(self.kind.to_byte());
        out.extend_from_slice(self.hash.as_bytes());

        let max_bytes = max_binary_len();
        // The header plus one byte for the provider count.
        let mut total = out.len() + 1;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for provider in self.providers.iter().take(MAX_PROVIDERS) {
            let Some(chunk) = encode_provider(provider) else {
                continue;
            };
            if total + chunk.len() > max_bytes {
                tracing::warn!(
                    "ticket would exceed {MAX_TICKET_LEN} characters; leaving out providers"
                );
                break;
            }
            total += chunk.len();
            chunks.push(chunk);
        }
        if self.providers.len() > MAX_PROVIDERS {
            tracing::warn!("ticket has more than {MAX_PROVIDERS} providers; leaving out the rest");
        }
        // At most MAX_PROVIDERS (16) chunks, so the count fits in a byte.
        out.push(u8::try_from(chunks.len()).unwrap_or(u8::MAX));
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, TicketError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(TicketError::UnknownVersion(version));
        }
        let kind_byte = r.u8()?;
        let kind = BlobKind::from_byte(kind_byte).ok_or(TicketError::UnknownKind(kind_byte))?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(r.take(32)?);
        let hash = Hash::from_bytes(hash);

        let count = usize::from(r.u8()?);
        if count > MAX_PROVIDERS {
            return Err(TicketError::TooManyProviders { count });
        }
        let mut providers = Vec::with_capacity(count);
        for provider in 0..count {
            let len = usize::from(r.u8()?);
            let peer = PeerId::from_bytes(r.take(len)?)
                .map_err(|_| TicketError::BadPeerId { provider })?;
            let addr_count = usize::from(r.u8()?);
            if addr_count > MAX_ADDRS {
                return Err(TicketError::TooManyAddrs {
                    provider,
                    count: addr_count,
                });
            }
            let mut addrs = Vec::with_capacity(addr_count);
            for _ in 0..addr_count {
                let len = usize::from(r.u16()?);
                let raw = r.take(len)?;
                if raw.is_empty() {
                    return Err(TicketError::BadAddr { provider });
                }
                let addr = Multiaddr::try_from(raw.to_vec())
                    .map_err(|_| TicketError::BadAddr { provider })?;
                let transport = transport_addr(&addr, peer)
                    .ok_or(TicketError::ForeignPeerInAddr { provider, addr })?;
                addrs.push(transport);
            }
            providers.push(Provider { peer, addrs });
        }
        if !r.0.is_empty() {
            return Err(TicketError::TrailingBytes { count: r.0.len() });
        }
        Ok(Self {
            hash,
            kind,
            providers,
        })
    }
}

/// One provider's bytes, or `None` if its peer id is too long to encode.
fn encode_provider(provider: &Provider) -> Option<Vec<u8>> {
    let peer = provider.peer.to_bytes();
    let peer_len = u8::try_from(peer.len()).ok()?;
    let mut out = Vec::with_capacity(peer.len() + 2);
    out.push(peer_len);
    out.extend_from_slice(&peer);

    let mut addrs: Vec<Vec<u8>> = Vec::new();
    for addr in &provider.addrs {
        if addrs.len() == MAX_ADDRS {
            break;
        }
        let Some(transport) = transport_addr(addr, provider.peer) else {
            continue;
        };
        let raw = transport.to_vec();
        if raw.is_empty() || u16::try_from(raw.len()).is_err() {
            continue;
        }
        addrs.push(raw);
    }
    // At most MAX_ADDRS (16) addresses, so the count fits in a byte.
    out.push(u8::try_from(addrs.len()).unwrap_or(u8::MAX));
    for raw in addrs {
        // Checked above: every kept address is shorter than u16::MAX.
        let len = u16::try_from(raw.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&raw);
    }
    Some(out)
}

/// The largest binary whose text form fits in [`MAX_TICKET_LEN`].
fn max_binary_len() -> usize {
    // Every 5 bytes become 8 base32 characters; a partial group rounds up.
    (MAX_TICKET_LEN - PREFIX.len()) * 5 / 8
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TicketError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Whether `s` starts with the ticket prefix, ignoring ASCII case.
fn has_prefix(s: &str) -> bool {
    s.as_bytes()
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX.as_bytes()))
}

impl fmt::Display for Ticket {
    /// Writes `weft1…`. The output always parses back; see [`Provider::new`]
    /// for how addresses are normalised and the limits for what is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = BASE32_NOPAD.encode(&self.encode()).to_ascii_lowercase();
        write!(f, "{PREFIX}{text}")
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_TICKET_LEN {
            return Err(TicketError::TooLong { len: s.len() });
        }
        if !has_prefix(s) {
            return Err(TicketError::MissingPrefix);
        }
        // The prefix is ASCII, so this is a char boundary.
        let body = s[PREFIX.len()..].to_ascii_uppercase();
        let bytes = BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| TicketError::NotBase32)?;
        Self::decode(&bytes)
    }
}

/// What `weft get` accepts: a ticket or a bare hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A full ticket, with kind and providers.
    Ticket(Ticket),
    /// A bare hash; kind and providers are found by other means.
    Hash(Hash),
}

impl Target {
    /// The content hash.
    pub fn hash(&self) -> Hash {
        match self {
            Target::Ticket(ticket) => ticket.hash,
            Target::Hash(hash) => *hash,
        }
    }

    /// The kind, if a ticket said so.
    pub fn kind(&self) -> Option<BlobKind> {
        match self {
            Target::Ticket(ticket) => Some(ticket.kind),
            Target::Hash(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ticket(ticket) => ticket.fmt(f),
            Target::Hash(hash) => hash.fmt(f),
        }
    }
}

/// Why a string is neither a ticket nor a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// It starts like a ticket but is not a valid one.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// It is not a ticket and not a valid hash.
    #[error("{0} (expected a weft1… ticket or a 64-character hex hash)")]
    Hash(#[from] HashParseError),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if has_prefix(s) {
            Ok(Target::Ticket(s.parse()?))
        } else {
            Ok(Target::Hash(s.parse()?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn provider(port: u16) -> Provider {
        Provider::new(
            PeerId::random(),
            [
                addr(&format!("/ip4/192.0.2.1/udp/{port}/quic-v1")),
                addr(&format!("/ip4/192.0.2.1/tcp/{port}")),
                addr(&format!("/ip6/2001:db8::1/udp/{port}/quic-v1")),
                addr(&format!("/dns4/example.org/tcp/{port}")),
            ],
        )
    }

    fn ticket(providers: usize) -> Ticket {
        Ticket {
            hash: Hash::new(b"ticket test"),
            kind: BlobKind::Collection,
            providers: (0..providers)
                .map(|i| provider(4000 + u16::try_from(i).unwrap()))
                .collect(),
        }
    }

    fn body(t: &Ticket) -> Vec<u8> {
        let s = t.to_string();
        BASE32_NOPAD
            .decode(s[PREFIX.len()..].to_ascii_uppercase().as_bytes())
            .unwrap()
    }

    fn text(bytes: &[u8]) -> String {
        format!(
            "{PREFIX}{}",
            BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
        )
    }

    #[test]
    fn round_trip() {
        for n in [0, 1, 3] {
            let t = ticket(n);
            let s = t.to_string();
            assert!(s.starts_with("weft1"), "{s}");
            assert_eq!(s, s.to_lowercase());
            assert_eq!(s.parse::<Ticket>().unwrap(), t, "{n} providers");
            assert_eq!(s.to_uppercase().parse::<Ticket>().unwrap(), t);
            assert_eq!(format!(" {s}\n").parse::<Ticket>().unwrap(), t);
        }
        let blob = Ticket {
            kind: BlobKind::Blob,
            ..ticket(1)
        };
        assert_eq!(blob.to_string().parse::<Ticket>().unwrap(), blob);
    }

    #[test]
    fn zero_providers_is_a_bare_hash() {
        let t = ticket(0);
        // version, kind, hash, provider count.
        assert_eq!(body(&t).len(), 35);
        let parsed: Ticket = t.to_string().parse().unwrap();
        assert!(parsed.providers.is_empty());
        assert_eq!(parsed.hash, t.hash);
    }

    #[test]
    fn provider_new_strips_own_p2p_and_drops_foreign() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let p = Provider::new(
            peer,
            [
                addr(&format!("/ip4/192.0.2.1/tcp/1/p2p/{peer}")),
                addr("/ip4/192.0.2.1/tcp/1"),
                addr(&format!("/ip4/192.0.2.1/tcp/2/p2p/{other}")),
                addr(&format!("/ip4/192.0.2.1/tcp/3/p2p/{other}/p2p-circuit")),
            ],
        );
        assert_eq!(p.addrs, vec![addr("/ip4/192.0.2.1/tcp/1")]);

        let many = Provider::new(
            peer,
            (0..40).map(|port| addr(&format!("/ip4/192.0.2.1/tcp/{port}"))),
        );
        assert_eq!(many.addrs.len(), MAX_ADDRS);
    }

    #[test]
    fn display_always_parses() {
        // Built by hand, past every limit.
        let peer = PeerId::random();
        let t = Ticket {
            hash: Hash::new(b"big"),
            kind: BlobKind::Blob,
            providers: (0..40)
                .map(|_| Provider {
                    peer,
                    addrs: (0..40)
                        .map(|port| addr(&format!("/dns4/a-long-host-name.example.org/tcp/{port}")))
                        .collect(),
                })
                .collect(),
        };
        let s = t.to_string();
        assert!(s.len() <= MAX_TICKET_LEN, "{}", s.len());
        let parsed: Ticket = s.parse().unwrap();
        assert!(!parsed.providers.is_empty());
        assert!(parsed.providers.len() <= MAX_PROVIDERS);
        assert!(parsed.providers.iter().all(|p| p.addrs.len() <= MAX_ADDRS));
    }

    #[test]
    fn every_truncation_fails() {
        let t = ticket(3);
        let s = t.to_string();
        for k in 0..s.len() {
            assert!(s[..k].parse::<Ticket>().is_err(), "text prefix of {k}");
        }
        let bytes = body(&t);
        for k in 0..bytes.len() {
            let err = Ticket::decode(&bytes[..k]).unwrap_err();
            assert_eq!(err, TicketError::Truncated, "binary prefix of {k}");
            assert!(text(&bytes[..k]).parse::<Ticket>().is_err());
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let bytes = body(&ticket(3));
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = text(&b).parse::<Ticket>();
            }
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = value;
                let _ = Ticket::decode(&b);
            }
        }
        let s = ticket(3).to_string();
        for i in PREFIX.len()..s.len() {
            for c in ['a', 'z', '2', '7', '0', '=', 'é'] {
                let mut t: Vec<char> = s.chars().collect();
                t[i] = c;
                let t: String = t.into_iter().collect();
                let _ = t.parse::<Ticket>();
            }
        }
    }

    #[test]
    fn strict_errors() {
        let mut bytes = body(&ticket(1));
        bytes.push(0);
        assert_eq!(
            Ticket::decode(&bytes).unwrap_err(),
            TicketError::TrailingBytes { count: 1 }
        );

        let mut bytes = body(&ticket(0));
        bytes[0] = 7;
        let err = text(&bytes).parse::<Ticket>().unwrap_err();
        assert_eq!(err, TicketError::UnknownVersion(7));
        assert_eq!(err.to_string(), "malformed ticket: unknown version 7");

        let mut bytes = body(&ticket(0));
        bytes[1] = 2;
        assert_eq!(
            Ticket::decode(&bytes).unwrap_err(),
            TicketError::UnknownKind(2)
        );

        let mut bytes = body(&ticket(0));
        bytes[34] = 17;
        assert_eq!(
            Ticket::decode(&bytes).unwrap_err(),
            TicketError::TooManyProviders { count: 17 }
        );
    }

    #[test]
    fn too_many_providers_rejected() {
        // Seventeen well-formed providers, encoded by hand.
        let mut bytes = body(&ticket(0));
        bytes[34] = 17;
        for _ in 0..17 {
            let peer = PeerId::random().to_bytes();
            bytes.push(u8::try_from(peer.len()).unwrap());
            bytes.extend_from_slice(&peer);
            bytes.push(0);
        }
        assert_eq!(
            text(&bytes).parse::<Ticket>().unwrap_err(),
            TicketError::TooManyProviders { count: 17 }
        );
    }

    #[test]
    fn addresses_with_p2p_on_decode() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let encode_one = |a: Multiaddr| {
            let mut bytes = body(&ticket(0));
            bytes[34] = 1;
            let p = peer.to_bytes();
            bytes.push(u8::try_from(p.len()).unwrap());
            bytes.extend_from_slice(&p);
            bytes.push(1);
            let raw = a.to_vec();
            bytes.extend_from_slice(&u16::try_from(raw.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(&raw);
            text(&bytes)
        };
        let same = encode_one(addr(&format!("/ip4/192.0.2.1/tcp/1/p2p/{peer}")));
        let t: Ticket = same.parse().unwrap();
        assert_eq!(t.providers[0].addrs, vec![addr("/ip4/192.0.2.1/tcp/1")]);

        let foreign = encode_one(addr(&format!("/ip4/192.0.2.1/tcp/1/p2p/{other}")));
        assert!(matches!(
            foreign.parse::<Ticket>().unwrap_err(),
            TicketError::ForeignPeerInAddr { provider: 0, .. }
        ));
    }

    #[test]
    fn wrong_prefix_and_garbage() {
        let s = ticket(1).to_string();
        assert_eq!(
            s.replacen("weft1", "weft2", 1)
                .parse::<Ticket>()
                .unwrap_err(),
            TicketError::MissingPrefix
        );
        assert_eq!(
            "".parse::<Ticket>().unwrap_err(),
            TicketError::MissingPrefix
        );
        assert_eq!(
            "wé".parse::<Ticket>().unwrap_err(),
            TicketError::MissingPrefix
        );
        let err = "weft1hello!!".parse::<Ticket>().unwrap_err();
        assert_eq!(err, TicketError::NotBase32);
        assert_eq!(err.to_string(), "malformed ticket: not base32");
        assert_eq!(
            "weft1".parse::<Ticket>().unwrap_err(),
            TicketError::Truncated
        );
        let long = format!("weft1{}", "a".repeat(MAX_TICKET_LEN));
        assert!(matches!(
            long.parse::<Ticket>().unwrap_err(),
            TicketError::TooLong { .. }
        ));
    }

    #[test]
    fn target_parses_ticket_and_hash() {
        let t = ticket(1);
        let target: Target = t.to_string().parse().unwrap();
        assert_eq!(target, Target::Ticket(t.clone()));
        assert_eq!(target.hash(), t.hash);
        assert_eq!(target.kind(), Some(BlobKind::Collection));

        let hash = Hash::new(b"bare");
        let target: Target = format!(" {hash} ").parse().unwrap();
        assert_eq!(target, Target::Hash(hash));
        assert_eq!(target.hash(), hash);
        assert_eq!(target.kind(), None);
        assert_eq!(target.to_string(), hash.to_string());
    }

    #[test]
    fn target_rejects_bad_input() {
        let err = "abc".parse::<Target>().unwrap_err();
        assert_eq!(
            err,
            TargetError::Hash(HashParseError::WrongLength { len: 3 })
        );
        assert!(err
            .to_string()
            .starts_with("invalid hash: expected 64 hex characters, got 3"));
        let mut hex = Hash::new(b"x").to_hex();
        hex.replace_range(0..1, "q");
        assert_eq!(
            hex.parse::<Target>().unwrap_err(),
            TargetError::Hash(HashParseError::NotHex {
                position: 0,
                found: 'q'
            })
        );
        assert_eq!(
            "WEFT1!!".parse::<Target>().unwrap_err(),
            TargetError::Ticket(TicketError::NotBase32)
        );
    }

    #[test]
    fn blob_kind_names() {
        assert_eq!(BlobKind::Blob.to_string(), "blob");
        assert_eq!(BlobKind::Collection.as_str(), "collection");
        assert_eq!(
            serde_json::to_string(&BlobKind::Collection).unwrap(),
            "\"collection\""
        );
        assert_eq!(
            serde_json::from_str::<BlobKind>("\"blob\"").unwrap(),
            BlobKind::Blob
        );
    }
}
