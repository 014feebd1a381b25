//! HTTP request conditions for immutable content: the `Range` header (one
//! range only), `If-Range` and `If-None-Match`.
//!
//! Pure functions of header text and the blob's size, so every case is
//! tested without a server. Following RFC 9110, a `Range` header we do not
//! understand (another unit, bad syntax, several ranges) is ignored and the
//! whole content is sent.

use std::ops::Range;

/// What a `Range` header asks of a blob of known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Requested {
    /// The whole content (no header, or one we ignore).
    Full,
    /// One satisfiable byte range, end exclusive, non-empty.
    Partial(Range<u64>),
    /// A valid range that lies entirely past the end: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a blob of `size` bytes.
pub(super) fn parse_range(value: &str, size: u64) -> Requested {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return Requested::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Requested::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        return match number(last) {
            None => Requested::Full,
            Some(0) => Requested::Unsatisfiable,
            Some(_) if size == 0 => Requested::Unsatisfiable,
            Some(n) => Requested::Partial(size - n.min(size)..size),
        };
    }
    let Some(start) = number(first) else {
        return Requested::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Requested::Full,
        }
    };
    if start >= size {
        return Requested::Unsatisfiable;
    }
    Requested::Partial(start..end.min(size - 1) + 1)
}

/// A decimal number; too many digits saturate (a huge position is still a
/// position, just past any end).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Whether an `If-None-Match` value matches our entity tag (weak
/// comparison, as RFC 9110 requires for this header).
pub(super) fn none_match(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Whether an `If-Range` value lets a range be served: a strong match of our
/// entity tag, or a date (our content never changes, so any date is still
/// current).
pub(super) fn if_range_holds(value: &str, etag: &str) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        value == etag
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(r: Range<u64>) -> Requested {
        Requested::Partial(r)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), p(0..1));
        assert_eq!(parse_range("bytes=2-5", 10), p(2..6));
        assert_eq!(parse_range("bytes=2-", 10), p(2..10));
        assert_eq!(parse_range("bytes=5-100", 10), p(5..10));
        assert_eq!(parse_range("bytes=-3", 10), p(7..10));
        assert_eq!(parse_range("bytes=-30", 10), p(0..10));
        assert_eq!(parse_range(" Bytes = 1 - 2 ", 10), p(1..3));
        assert_eq!(parse_range("bytes=9-99999999999999999999999", 10), p(9..10));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 10), Requested::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), Requested::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Requested::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Requested::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Requested::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            Requested::Unsatisfiable
        );
    }

    #[test]
    fn ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=0-1,4-5",
            "bytes=0-1,",
            "items=0-1",
            "bytes=+1-2",
            "bytes=1--2",
        ] {
            assert_eq!(parse_range(h, 10), Requested::Full, "{h:?}");
        }
    }

    #[test]
    fn conditions() {
        let etag = "\"abc\"";
        assert!(none_match("\"abc\"", etag));
        assert!(none_match("W/\"abc\"", etag));
        assert!(none_match("\"x\", \"abc\"", etag));
        assert!(none_match("*", etag));
        assert!(!none_match("\"abd\"", etag));
        assert!(!none_match("abc", etag));
        assert!(if_range_holds("\"abc\"", etag));
        assert!(!if_range_holds("W/\"abc\"", etag));
        assert!(!if_range_holds("\"other\"", etag));
        assert!(if_range_holds("Wed, 21 Oct 2015 07:28:00 GMT", etag));
    }
}
