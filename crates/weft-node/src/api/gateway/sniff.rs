//! Content types for served blobs: from a file name when there is one,
//! else from the first bytes (magic numbers), else
//! `application/octet-stream`.
//!
//! Responses also carry `X-Content-Type-Options: nosniff`, so browsers use
//! exactly the type chosen here. Sniffing stays conservative: text that
//! merely looks like JSON is sent as `text/plain`, and only a document that
//! starts with `<!doctype html` or `<html` is called HTML.

/// How many leading bytes are looked at.
pub(super) const SNIFF_LEN: u64 = 4096;

const OCTET_STREAM: &str = "application/octet-stream";

/// The `Content-Type` for content named `name` (a file name or a path,
/// possibly empty) that starts with `head`. `truncated` says whether
/// `head` is only the beginning of the content.
pub(super) fn content_type(name: Option<&str>, head: &[u8], truncated: bool) -> String {
    let guessed = name
        .filter(|n| !n.is_empty())
        .and_then(|n| mime_guess::from_path(n).first_raw());
    let base = guessed.unwrap_or_else(|| sniff(head, truncated));
    let wants_charset = base.starts_with("text/") || base == "application/javascript";
    if wants_charset && is_utf8_text(head, truncated) && !declares_charset(base, head) {
        format!("{base}; charset=utf-8")
    } else {
        base.to_owned()
    }
}

/// The type of content that starts with `head`, by its magic number.
fn sniff(head: &[u8], truncated: bool) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"OggS", "audio/ogg"),
        (b"ID3", "audio/mpeg"),
        (b"\xff\xfb", "audio/mpeg"),
        (b"\xff\xf3", "audio/mpeg"),
        (b"\xff\xf2", "audio/mpeg"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
    ];
    if let Some((_, ty)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return ty;
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return "image/webp";
    }
    if head.get(4..8) == Some(b"ftyp") {
        return "video/mp4";
    }
    if head.starts_with(b"\x1a\x45\xdf\xa3") {
        let header = &head[..head.len().min(64)];
        return if header.windows(4).any(|w| w == b"webm") {
            "video/webm"
        } else {
            "video/x-matroska"
        };
    }
    if looks_like_html(head) {
        return "text/html";
    }
    if !head.is_empty() && is_utf8_text(head, truncated) {
        return "text/plain";
    }
    OCTET_STREAM
}

fn looks_like_html(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    [&b"<!doctype html"[..], b"<html"]
        .iter()
        .any(|tag| text.len() >= tag.len() && text[..tag.len()].eq_ignore_ascii_case(tag))
}

/// Valid UTF-8 without control characters other than whitespace. A
/// multi-byte character cut off at the end of a truncated head is fine.
fn is_utf8_text(head: &[u8], truncated: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if truncated && e.error_len().is_none() => {
            // Checked by from_utf8: the prefix up to valid_up_to is UTF-8.
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("\0")
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// An HTML document that names its own charset keeps it.
fn declares_charset(base: &str, head: &[u8]) -> bool {
    base == "text/html" && head.windows(7).any(|w| w.eq_ignore_ascii_case(b"charset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_win() {
        assert_eq!(content_type(Some("a.png"), b"hello", false), "image/png");
        assert_eq!(
            content_type(Some("sub/a.txt"), b"hello", false),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(Some("a.txt"), b"\xff\xfe", false),
            "text/plain"
        );
        assert_eq!(
            content_type(Some("i.html"), b"<meta charset=latin1>", false),
            "text/html"
        );
        // Unknown extension or empty name: sniff.
        assert_eq!(
            content_type(Some("x.zzzz"), b"%PDF-1.7", false),
            "application/pdf"
        );
        assert_eq!(content_type(Some(""), b"GIF89a..", false), "image/gif");
    }

    #[test]
    fn magic_numbers() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x89PNG\r\n\x1a\n....", "image/png"),
            (b"\xff\xd8\xff\xe0", "image/jpeg"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
            (b"\0\0\0\x20ftypisom", "video/mp4"),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
                "video/webm",
            ),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska",
                "video/x-matroska",
            ),
            (b"OggS\0\x02", "audio/ogg"),
            (b"ID3\x04\0", "audio/mpeg"),
            (b"PK\x03\x04\x14\0", "application/zip"),
            (b"\x1f\x8b\x08\0", "application/gzip"),
            (
                b"\xef\xbb\xbf  <!DOCTYPE html><p>",
                "text/html; charset=utf-8",
            ),
            (b"<HTML><body>", "text/html; charset=utf-8"),
            (b"{\"a\": 1}", "text/plain; charset=utf-8"),
            (b"plain words\n", "text/plain; charset=utf-8"),
            (b"\0\x01\x02\x03", OCTET_STREAM),
            (b"\xc3\x28", OCTET_STREAM),
            (b"", OCTET_STREAM),
        ];
        for (head, want) in cases {
            assert_eq!(content_type(None, head, false), *want, "{head:?}");
        }
    }

    #[test]
    fn truncated_utf8() {
        let head = "héllo".as_bytes();
        let cut = &head[..2];
        assert_eq!(content_type(None, cut, true), "text/plain; charset=utf-8");
        assert_eq!(content_type(None, cut, false), OCTET_STREAM);
    }
}
