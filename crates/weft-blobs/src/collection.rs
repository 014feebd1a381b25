//! Collections: a folder shared as a manifest blob.
//!
//! A [`Collection`] lists a folder's files (path, hash, size) and the empty
//! folders that must be recreated. It is stored and transferred as an ordinary
//! blob whose bytes are the manifest's canonical JSON, so the collection's hash
//! is the BLAKE3 of [`Collection::to_bytes`]:
//!
//! ```text
//! {"weft_collection":1,"entries":[{"path":"a/b.txt","hash":"<hex>","size":5},{"path":"empty","dir":true}]}
//! ```
//!
//! Entries are sorted by path (byte order) and unique. Manifests come from
//! untrusted peers, so [`Collection::from_bytes`] is strict: it accepts exactly
//! the bytes `to_bytes` would produce, checks every path with
//! [`validate_path`] and bounds sizes and counts, and never panics.
//!
//! The module also holds the two filesystem edges: [`walk_dir`] lists a local
//! folder to share, and [`export_path`] maps a manifest path to a location
//! inside a target folder without escaping it. Both are synchronous `std::fs`
//! code; async callers run them on a blocking task.

use std::{fmt, io, path::PathBuf};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::Hash;

mod walk;

pub use walk::{export_path, walk_dir, WalkEntry, WalkKind};

/// Most entries in one collection.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Longest entry path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;
/// Largest manifest accepted by [`Collection::from_bytes`].
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// The manifest format version.
const VERSION: u64 = 1;
/// Most files and folders [`walk_dir`] visits, to bound work on deep trees.
const MAX_WALK_VISITS: usize = 4 * MAX_ENTRIES;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A file with its content hash and size in bytes.
    File {
        /// BLAKE3 of the file's bytes.
        hash: Hash,
        /// The file's length in bytes.
        size: u64,
    },
    /// An empty folder that must be recreated.
    Dir,
}

/// One file or empty folder in a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated path; see [`validate_path`].
    pub path: String,
    /// File or empty folder.
    pub kind: EntryKind,
}

impl Entry {
    /// A file entry.
    pub fn file(path: impl Into<String>, hash: Hash, size: u64) -> Self {
        Self {
            path: path.into(),
            kind: EntryKind::File { hash, size },
        }
    }

    /// An empty-folder entry.
    pub fn dir(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }
}

/// A folder manifest: entries sorted by path, paths unique and safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Collection {
    entries: Vec<Entry>,
}

/// Why a path is not safe to use in a collection or to export to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe path {path:?} ({problem})")]
pub struct PathError {
    /// The offending path, as given.
    pub path: String,
    /// What is wrong with it.
    pub problem: PathProblem,
}

/// What is wrong with a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// The path contains `\`.
    Backslash,
    /// The path contains a NUL character.
    Nul,
    /// A component starts with a Windows drive prefix such as `C:`.
    DrivePrefix,
    /// The path has an empty component (`a//b` or a trailing `/`).
    EmptyComponent,
    /// A component is `.` or `..`.
    DotComponent(&'static str),
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    ComponentTooLong {
        /// Length of the component in bytes.
        len: usize,
    },
    /// The path would not stay a plain relative path on this platform.
    NotPlain,
    /// An existing folder on the way to the export target is a symlink.
    Symlink {
        /// The symlink's location.
        at: PathBuf,
    },
    /// An existing folder on the way could not be inspected.
    Inspect {
        /// The location that could not be inspected.
        at: PathBuf,
        /// The I/O error kind.
        kind: io::ErrorKind,
    },
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Empty => f.write_str("is empty"),
            PathProblem::Absolute => f.write_str("is absolute"),
            PathProblem::Backslash => f.write_str("contains a backslash"),
            PathProblem::Nul => f.write_str("contains a NUL character"),
            PathProblem::DrivePrefix => f.write_str("contains a drive prefix"),
            PathProblem::EmptyComponent => f.write_str("has an empty component"),
            PathProblem::DotComponent(dots) => write!(f, "contains {dots:?}"),
            PathProblem::TooLong { len } => {
                write!(f, "is {len} bytes long, max {MAX_PATH_LEN}")
            }
            PathProblem::ComponentTooLong { len } => {
                write!(f, "has a {len}-byte component, max {MAX_COMPONENT_LEN}")
            }
            PathProblem::NotPlain => f.write_str("is not a plain relative path here"),
            PathProblem::Symlink { at } => write!(f, "goes through the symlink {}", at.display()),
            PathProblem::Inspect { at, kind } => {
                write!(f, "cannot inspect {}: {kind}", at.display())
            }
        }
    }
}

/// Why a collection could not be built, decoded or walked.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The manifest is larger than [`MAX_MANIFEST_BYTES`].
    #[error("collection manifest is {len} bytes, max {MAX_MANIFEST_BYTES}")]
    TooLarge {
        /// Manifest length in bytes.
        len: u64,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("malformed collection manifest: {0}")]
    Json(serde_json::Error),
    /// The manifest has a version this build does not understand.
    #[error("unsupported collection manifest version {0}")]
    UnsupportedVersion(u64),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("collection has {count} entries, max {MAX_ENTRIES}")]
    TooManyEntries {
        /// How many entries were found (a lower bound while walking).
        count: usize,
    },
    /// An entry path is unsafe.
    #[error("unsafe path in collection: {:?} ({})", .0.path, .0.problem)]
    UnsafePath(PathError),
    /// An entry is neither a well-formed file nor a well-formed folder.
    #[error("invalid collection entry {path:?}: {reason}")]
    BadEntry {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries share a path.
    #[error("duplicate path in collection: {path:?}")]
    Duplicate {
        /// The repeated path.
        path: String,
    },
    /// Entries are not sorted by path.
    #[error("collection entries out of order: {path:?} comes after {previous:?}")]
    NotSorted {
        /// The entry that is out of place.
        path: String,
        /// The entry before it.
        previous: String,
    },
    /// An entry lies inside another entry (a file, or a folder listed as empty).
    #[error("collection path {path:?} is inside the entry {parent:?}")]
    Nested {
        /// The inner entry.
        path: String,
        /// The entry that contains it.
        parent: String,
    },
    /// The manifest parses but is not byte-for-byte canonical.
    #[error("collection manifest is not in canonical form")]
    NotCanonical,
    /// [`walk_dir`] was given something that is not a folder.
    #[error("not a folder: {}", .path.display())]
    NotADirectory {
        /// The given root.
        path: PathBuf,
    },
    /// A file name is not valid UTF-8.
    #[error("file name is not valid UTF-8: {}", .path.display())]
    NonUtf8 {
        /// The offending file.
        path: PathBuf,
    },
    /// Reading the folder failed.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// Where the error happened.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
}

impl From<PathError> for CollectionError {
    fn from(e: PathError) -> Self {
        CollectionError::UnsafePath(e)
    }
}

impl Collection {
    /// Builds a collection: validates every path, sorts by path and rejects
    /// duplicates and entries nested inside another entry.
    pub fn new(mut entries: Vec<Entry>) -> Result<Self, CollectionError> {
        if entries.len() > MAX_ENTRIES {
            return Err(CollectionError::TooManyEntries {
                count: entries.len(),
            });
        }
        for entry in &entries {
            validate_path(&entry.path)?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        check_order(&entries)?;
        check_nesting(&entries)?;
        Ok(Self { entries })
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The canonical manifest bytes; the collection's hash is their BLAKE3.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifest = ManifestOut {
            weft_collection: VERSION,
            entries: EntriesOut(&self.entries),
        };
        // Serializing plain structs, strings and integers into a Vec has no
        // failure path in serde_json.
        serde_json::to_vec(&manifest).expect("serializing a manifest to memory cannot fail")
    }

    /// The collection's hash: BLAKE3 of [`Collection::to_bytes`].
    pub fn hash(&self) -> Hash {
        Hash::new(&self.to_bytes())
    }

    /// Decodes a manifest, accepting only canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CollectionError> {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > MAX_MANIFEST_BYTES {
            return Err(CollectionError::TooLarge { len });
        }
        let manifest: ManifestIn = match serde_json::from_slice(bytes) {
            Ok(manifest) => manifest,
            Err(e) => {
                // A future version may have a different shape: say so rather
                // than report a confusing field error.
                if let Ok(VersionProbe {
                    weft_collection: Some(v),
                }) = serde_json::from_slice(bytes)
                {
                    if v != VERSION {
                        return Err(CollectionError::UnsupportedVersion(v));
                    }
                }
                return Err(CollectionError::Json(e));
            }
        };
        if manifest.weft_collection != VERSION {
            return Err(CollectionError::UnsupportedVersion(
                manifest.weft_collection,
            ));
        }
        let BoundedEntries { items, total } = manifest.entries;
        if total > MAX_ENTRIES {
            return Err(CollectionError::TooManyEntries { count: total });
        }
        let entries = items
            .into_iter()
            .map(EntryIn::into_entry)
            .collect::<Result<Vec<_>, _>>()?;
        check_order(&entries)?;
        check_nesting(&entries)?;
        let collection = Self { entries };
        if collection.to_bytes() != bytes {
            return Err(CollectionError::NotCanonical);
        }
        Ok(collection)
    }

    /// Sum of all file sizes, saturating at `u64::MAX`.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                EntryKind::Dir => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// The entry with exactly this path.
    pub fn find(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .and_then(|i| self.entries.get(i))
    }
}

/// Checks that sorted entries are strictly increasing by path.
fn check_order(entries: &[Entry]) -> Result<(), CollectionError> {
    for pair in entries.windows(2) {
        let (previous, path) = (&pair[0].path, &pair[1].path);
        match previous.cmp(path) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(CollectionError::Duplicate { path: path.clone() })
            }
            std::cmp::Ordering::Greater => {
                return Err(CollectionError::NotSorted {
                    path: path.clone(),
                    previous: previous.clone(),
                })
            }
        }
    }
    Ok(())
}

/// Rejects an entry that lies under another entry: a file cannot be a
/// folder, and a folder listed as empty has no children.
///
/// In component-wise order an entry's descendants follow it directly, so
/// comparing neighbours finds any nesting in `O(n log n)` comparisons.
fn check_nesting(entries: &[Entry]) -> Result<(), CollectionError> {
    let mut order: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    order.sort_unstable_by(|a, b| a.split('/').cmp(b.split('/')));
    for pair in order.windows(2) {
        let (parent, path) = (pair[0], pair[1]);
        let nested = path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'));
        if nested {
            return Err(CollectionError::Nested {
                path: path.to_owned(),
                parent: parent.to_owned(),
            });
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ManifestOut<'a> {
    weft_collection: u64,
    entries: EntriesOut<'a>,
}

struct EntriesOut<'a>(&'a [Entry]);

impl Serialize for EntriesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|e| match &e.kind {
            EntryKind::File { hash, size } => EntryOut {
                path: &e.path,
                hash: Some(hash),
                size: Some(*size),
                dir: None,
            },
            EntryKind::Dir => EntryOut {
                path: &e.path,
                hash: None,
                size: None,
                dir: Some(true),
            },
        }))
    }
}

/// One entry on the wire; field order here is the canonical order.
#[derive(Serialize)]
struct EntryOut<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestIn {
    weft_collection: u64,
    entries: BoundedEntries,
}

/// Only the version, for a clear error when the rest does not parse.
#[derive(Deserialize)]
struct VersionProbe {
    weft_collection: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryIn {
    path: String,
    hash: Option<Hash>,
    size: Option<u64>,
    dir: Option<bool>,
}

impl EntryIn {
    fn into_entry(self) -> Result<Entry, CollectionError> {
        validate_path(&self.path)?;
        let kind = match (self.hash, self.size, self.dir) {
            (Some(hash), Some(size), None) => EntryKind::File { hash, size },
            (None, None, Some(true)) => EntryKind::Dir,
            (None, None, Some(false)) => {
                return Err(CollectionError::BadEntry {
                    path: self.path,
                    reason: "\"dir\" must be true when present",
                })
            }
            (_, _, Some(_)) => {
                return Err(CollectionError::BadEntry {
                    path: self.path,
                    reason: "a folder cannot have a hash or size",
                })
            }
            _ => {
                return Err(CollectionError::BadEntry {
                    path: self.path,
                    reason: "a file needs both a hash and a size",
                })
            }
        };
        Ok(Entry {
            path: self.path,
            kind,
        })
    }
}

/// The entries array, keeping at most [`MAX_ENTRIES`] in memory but
/// counting all of them.
struct BoundedEntries {
    items: Vec<EntryIn>,
    total: usize,
}

impl<'de> Deserialize<'de> for BoundedEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor;

        impl<'de> de::Visitor<'de> for SeqVisitor {
            type Value = BoundedEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of collection entries")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut total = 0usize;
                loop {
                    if total < MAX_ENTRIES {
                        match seq.next_element::<EntryIn>()? {
                            Some(item) => items.push(item),
                            None => break,
                        }
                    } else if seq.next_element::<de::IgnoredAny>()?.is_none() {
                        break;
                    }
                    total = total.saturating_add(1);
                }
                Ok(BoundedEntries { items, total })
            }
        }

        deserializer.deserialize_seq(SeqVisitor)
    }
}

/// Checks that `path` is a safe relative, `/`-separated path.
///
/// Rejects the empty path, absolute paths, `\`, NUL, a drive prefix such as
/// `C:` at the start of any component, empty components (`a//b`, a trailing
/// `/`), `.` and `..`, and paths or components over [`MAX_PATH_LEN`] or
/// [`MAX_COMPONENT_LEN`] bytes.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    let fail = |problem| {
        Err(PathError {
            path: path.to_owned(),
            problem,
        })
    };
    if path.is_empty() {
        return fail(PathProblem::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return fail(PathProblem::TooLong { len: path.len() });
    }
    if path.starts_with('/') {
        return fail(PathProblem::Absolute);
    }
    if path.contains('\\') {
        return fail(PathProblem::Backslash);
    }
    if path.contains('\0') {
        return fail(PathProblem::Nul);
    }
    for component in path.split('/') {
        match component {
            "" => return fail(PathProblem::EmptyComponent),
            "." => return fail(PathProblem::DotComponent(".")),
            ".." => return fail(PathProblem::DotComponent("..")),
            _ => {}
        }
        if component.len() > MAX_COMPONENT_LEN {
            return fail(PathProblem::ComponentTooLong {
                len: component.len(),
            });
        }
        let b = component.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return fail(PathProblem::DrivePrefix);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn sample() -> Collection {
        Collection::new(vec![
            Entry::file("z last.txt", Hash::new(b"z"), 1),
            Entry::file("a/b/c.txt", Hash::new(b"abc"), 3),
            Entry::file("a/empty file", Hash::new(b""), 0),
            Entry::dir("a/empty dir"),
            Entry::file("ünïcødé/日本語 ファイル.txt", Hash::new(b"u"), 7),
            Entry::file("with space/x y", Hash::new(b"s"), u64::MAX),
        ])
        .unwrap()
    }

    #[test]
    fn round_trip_and_canonical() {
        let c = sample();
        let paths: Vec<&str> = c.entries().iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        let bytes = c.to_bytes();
        let back = Collection::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(c.hash(), Hash::new(&bytes));
        assert_eq!(c.total_size(), u64::MAX);
        assert_eq!(
            c.find("a/empty dir").map(|e| &e.kind),
            Some(&EntryKind::Dir)
        );
        assert!(c.find("a").is_none());
        assert_eq!(
            Collection::from_bytes(&Collection::default().to_bytes()).unwrap(),
            Collection::default()
        );
    }

    #[test]
    fn exact_wire_format() {
        let h = Hash::new(b"hello");
        let c = Collection::new(vec![Entry::dir("empty"), Entry::file("a/b.txt", h, 5)]).unwrap();
        let expected = format!(
            r#"{{"weft_collection":1,"entries":[{{"path":"a/b.txt","hash":"{h}","size":5}},{{"path":"empty","dir":true}}]}}"#
        );
        assert_eq!(String::from_utf8(c.to_bytes()).unwrap(), expected);
    }

    fn manifest_with_paths(paths: &[&str]) -> Vec<u8> {
        let h = Hash::new(b"x");
        let entries: Vec<String> = paths
            .iter()
            .map(|p| {
                format!(
                    r#"{{"path":{},"hash":"{h}","size":1}}"#,
                    serde_json::to_string(p).unwrap()
                )
            })
            .collect();
        format!(
            r#"{{"weft_collection":1,"entries":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn hostile_paths_rejected() {
        for (path, problem) in [
            ("../x", PathProblem::DotComponent("..")),
            ("/etc/x", PathProblem::Absolute),
            ("a/../../x", PathProblem::DotComponent("..")),
            ("a\\b", PathProblem::Backslash),
            ("", PathProblem::Empty),
            (".", PathProblem::DotComponent(".")),
            ("C:/x", PathProblem::DrivePrefix),
            ("a/c:x", PathProblem::DrivePrefix),
            ("a//b", PathProblem::EmptyComponent),
            ("a/", PathProblem::EmptyComponent),
            ("a\0b", PathProblem::Nul),
        ] {
            let err = Collection::from_bytes(&manifest_with_paths(&[path])).unwrap_err();
            match err {
                CollectionError::UnsafePath(e) => {
                    assert_eq!(e.path, path);
                    assert_eq!(e.problem, problem, "{path:?}");
                }
                other => panic!("{path:?}: {other}"),
            }
            assert!(Collection::new(vec![Entry::dir(path)]).is_err());
        }
        let err = Collection::from_bytes(&manifest_with_paths(&["../x"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unsafe path in collection: "../x" (contains "..")"#
        );
        let long = "a".repeat(MAX_COMPONENT_LEN + 1);
        assert!(matches!(
            validate_path(&long).unwrap_err().problem,
            PathProblem::ComponentTooLong { len: 256 }
        ));
        let long = vec!["a"; MAX_PATH_LEN / 2 + 1].join("/");
        assert!(matches!(
            validate_path(&long).unwrap_err().problem,
            PathProblem::TooLong { .. }
        ));
        validate_path("C/ab:c/.hidden/..x/a b/x:").unwrap_err();
        validate_path("C/ab:c/.hidden/..x/a b/é:").unwrap();
    }

    #[test]
    fn order_duplicates_and_nesting_rejected() {
        let err = Collection::from_bytes(&manifest_with_paths(&["a", "a"])).unwrap_err();
        assert!(matches!(err, CollectionError::Duplicate { ref path } if path == "a"));
        assert_eq!(err.to_string(), r#"duplicate path in collection: "a""#);
        assert!(matches!(
            Collection::new(vec![Entry::dir("a"), Entry::dir("a")]).unwrap_err(),
            CollectionError::Duplicate { .. }
        ));
        assert!(matches!(
            Collection::from_bytes(&manifest_with_paths(&["b", "a"])).unwrap_err(),
            CollectionError::NotSorted { .. }
        ));
        // A file used as a folder.
        assert!(matches!(
            Collection::from_bytes(&manifest_with_paths(&["a", "a-b", "a/b"])).unwrap_err(),
            CollectionError::Nested { .. }
        ));
        assert!(matches!(
            Collection::new(vec![Entry::dir("a"), Entry::dir("a/b")]).unwrap_err(),
            CollectionError::Nested { .. }
        ));
    }

    #[test]
    fn non_canonical_and_malformed_rejected() {
        let good = sample().to_bytes();
        let text = String::from_utf8(good.clone()).unwrap();
        let h = Hash::new(b"x");
        let cases: Vec<String> = vec![
            format!("{text}\n"),
            text.replacen(':', ": ", 1),
            text.replacen(r#""weft_collection":1"#, r#""weft_collection":2"#, 1),
            text.replacen(r#""dir":true"#, r#""dir":false"#, 1),
            text.replacen(r#""dir":true"#, r#""dir":true,"x":1"#, 1),
            text.replacen(
                r#"{"weft_collection":1,"#,
                r#"{"weft_collection":1,"extra":0,"#,
                1,
            ),
            r#"{"entries":[],"weft_collection":1}"#.to_owned(),
            format!(r#"{{"weft_collection":1,"entries":[{{"hash":"{h}","path":"a","size":1}}]}}"#),
            format!(
                r#"{{"weft_collection":1,"entries":[{{"path":"a","hash":"{}","size":1}}]}}"#,
                h.to_hex().to_uppercase()
            ),
            format!(
                r#"{{"weft_collection":1,"entries":[{{"path":"\u0061","hash":"{h}","size":1}}]}}"#
            ),
            format!(r#"{{"weft_collection":1,"entries":[{{"path":"a","hash":"{h}"}}]}}"#),
            format!(
                r#"{{"weft_collection":1,"entries":[{{"path":"a","hash":"{h}","size":1,"dir":true}}]}}"#
            ),
            format!(
                r#"{{"weft_collection":1,"entries":[{{"path":"a","path":"b","hash":"{h}","size":1}}]}}"#
            ),
            r#"{"weft_collection":1,"entries":[{"path":"a","dir":true}],"weft_collection":1}"#
                .to_owned(),
            r#"{"weft_collection":1}"#.to_owned(),
            "null".to_owned(),
            "".to_owned(),
            "[".to_owned(),
        ];
        for case in &cases {
            assert!(
                Collection::from_bytes(case.as_bytes()).is_err(),
                "accepted {case}"
            );
        }
        let v2 = text.replacen(r#""weft_collection":1"#, r#""weft_collection":2"#, 1);
        assert!(matches!(
            Collection::from_bytes(v2.as_bytes()).unwrap_err(),
            CollectionError::UnsupportedVersion(2)
        ));
        let v2_other_shape = r#"{"weft_collection":2,"items":{}}"#;
        assert!(matches!(
            Collection::from_bytes(v2_other_shape.as_bytes()).unwrap_err(),
            CollectionError::UnsupportedVersion(2)
        ));
        // No input panics: every prefix and every single-byte change.
        for k in 0..good.len() {
            let _ = Collection::from_bytes(&good[..k]);
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x55;
            let _ = Collection::from_bytes(&b);
        }
    }

    #[test]
    fn too_many_entries_rejected() {
        let mut bytes = br#"{"weft_collection":1,"entries":["#.to_vec();
        for i in 0..=MAX_ENTRIES {
            if i > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(format!(r#"{{"path":"{i:07}","dir":true}}"#).as_bytes());
        }
        bytes.extend_from_slice(b"]}");
        assert!(matches!(
            Collection::from_bytes(&bytes).unwrap_err(),
            CollectionError::TooManyEntries { count } if count == MAX_ENTRIES + 1
        ));
    }

    #[test]
    fn walk_dir_lists_files_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/b/c/deep.txt"), b"deep").unwrap();
        fs::write(root.join("a/empty file"), b"").unwrap();
        fs::create_dir_all(root.join("a/empty dir")).unwrap();
        fs::create_dir_all(root.join("ünïcødé")).unwrap();
        fs::write(root.join("ünïcødé/日本語 ファイル.txt"), b"hello").unwrap();
        fs::write(root.join("top.txt"), b"12345678").unwrap();
        fs::create_dir_all(root.join("only/nested/empty")).unwrap();

        let found = walk_dir(root).unwrap();
        let got: Vec<(&str, &WalkKind)> = found.iter().map(|e| (e.rel.as_str(), &e.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("a/b/c/deep.txt", &WalkKind::File { size: 4 }),
                ("a/empty dir", &WalkKind::EmptyDir),
                ("a/empty file", &WalkKind::File { size: 0 }),
                ("only/nested/empty", &WalkKind::EmptyDir),
                ("top.txt", &WalkKind::File { size: 8 }),
                ("ünïcødé/日本語 ファイル.txt", &WalkKind::File { size: 5 }),
            ]
        );
        for e in &found {
            validate_path(&e.rel).unwrap();
            assert_eq!(e.abs, root.join(&e.rel));
        }
        // The listing converts to a valid collection.
        let entries = found
            .iter()
            .map(|e| match e.kind {
                WalkKind::File { size } => Entry::file(e.rel.clone(), Hash::new(b""), size),
                WalkKind::EmptyDir => Entry::dir(e.rel.clone()),
            })
            .collect();
        assert_eq!(Collection::new(entries).unwrap().entries().len(), 6);

        assert!(walk_dir(tempfile::tempdir().unwrap().path())
            .unwrap()
            .is_empty());
        assert!(matches!(
            walk_dir(&root.join("top.txt")).unwrap_err(),
            CollectionError::NotADirectory { .. }
        ));
        assert!(matches!(
            walk_dir(&root.join("missing")).unwrap_err(),
            CollectionError::Io { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn walk_dir_skips_symlinks_and_rejects_non_utf8() {
        use std::os::unix::{ffi::OsStrExt, fs::symlink};

        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("real"), b"r").unwrap();
        symlink(outside.path(), root.join("link dir")).unwrap();
        symlink(outside.path().join("secret"), root.join("link file")).unwrap();
        fs::create_dir(root.join("links only")).unwrap();
        symlink(outside.path(), root.join("links only/l")).unwrap();
        symlink(outside.path(), root.join("links only/back\\slash")).unwrap();
        let found = walk_dir(root).unwrap();
        let got: Vec<(&str, &WalkKind)> = found.iter().map(|e| (e.rel.as_str(), &e.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("links only", &WalkKind::EmptyDir),
                ("real", &WalkKind::File { size: 1 }),
            ]
        );

        let bad = root.join(std::ffi::OsStr::from_bytes(b"bad\xff"));
        fs::write(&bad, b"").unwrap();
        match walk_dir(root).unwrap_err() {
            CollectionError::NonUtf8 { path } => assert_eq!(path, bad),
            other => panic!("{other}"),
        }
        fs::remove_file(&bad).unwrap();

        fs::write(root.join("back\\slash"), b"").unwrap();
        assert!(matches!(
            walk_dir(root).unwrap_err(),
            CollectionError::UnsafePath(PathError {
                problem: PathProblem::Backslash,
                ..
            })
        ));
    }

    #[test]
    fn export_path_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(
            export_path(root, "a/b c/d.txt").unwrap(),
            root.join("a").join("b c").join("d.txt")
        );
        for rel in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "C:/x",
            "a\\..\\x",
            "",
            ".",
        ] {
            assert!(export_path(root, rel).is_err(), "{rel:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn export_path_rejects_symlinked_ancestor() {
        use std::os::unix::fs::symlink;

        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("real")).unwrap();
        symlink(outside.path(), root.join("real/escape")).unwrap();
        let err = export_path(root, "real/escape/x.txt").unwrap_err();
        assert_eq!(
            err.problem,
            PathProblem::Symlink {
                at: root.join("real/escape")
            }
        );
        // The target itself being a symlink is refused too.
        symlink(outside.path().join("f"), root.join("real/f")).unwrap();
        assert!(export_path(root, "real/f").is_err());
        // A symlinked root is the user's choice and is allowed.
        let linked_root = dir.path().join("root link");
        symlink(outside.path(), &linked_root).unwrap();
        assert_eq!(
            export_path(&linked_root, "x").unwrap(),
            linked_root.join("x")
        );
    }
}
