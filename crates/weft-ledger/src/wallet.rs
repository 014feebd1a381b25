//! Wallets: ed25519 signing keys kept as files in one directory (a node's
//! `<data dir>/wallets/`).
//!
//! Each wallet is `<name>.key`, a small JSON document
//! `{"name", "address", "secret"}` whose `secret` is the 32-byte ed25519
//! seed in hex. The `address` is redundant and is checked against the secret
//! when a file is read, so a hand-edited or mixed-up file is caught.
//!
//! - Files are created once and never overwritten: a temp file in the same
//!   directory is written and fsynced, then hard-linked into place (which
//!   fails if the name is taken, even when two processes race), then the
//!   temp name is removed. Key files are created with mode 0600 and the
//!   directory with 0700 (unix).
//! - A file that cannot be read or decoded is an error naming the file; it is
//!   left untouched so its owner can inspect or restore it.
//! - Nothing here is cached: every call reads the directory afresh, so the
//!   files are the only state and there is nothing to shut down.

use std::{
    fmt, fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use ed25519_zebra::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{address::Address, hex, parse_hex32, tx::address_of};

/// The folder, inside a node's data dir, that holds its wallets.
pub const DIR_NAME: &str = "wallets";
/// The name `weft wallet new` uses, and [`load_default`] prefers.
pub const DEFAULT_NAME: &str = "default";
/// Extension of key files.
const EXT: &str = "key";
/// Largest key file read: the JSON of a key is about 200 bytes.
const MAX_FILE: u64 = 4096;
/// Longest wallet name.
const MAX_NAME: usize = 64;

/// A named signing key.
#[derive(Clone)]
pub struct Wallet {
    pub name: String,
    pub key: SigningKey,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("Wallet")
            .field("name", &self.name)
            .field("address", &self.address())
            .finish()
    }
}

impl Wallet {
    /// The account this wallet spends from.
    pub fn address(&self) -> Address {
        address_of(&self.key)
    }

    /// The key file's contents (pretty JSON with a final newline). It holds
    /// the secret key.
    pub fn to_json(&self) -> String {
        let file = KeyFile {
            name: Some(self.name.clone()),
            address: Some(self.address().to_string()),
            secret: hex(&<[u8; 32]>::from(self.key)),
        };
        let mut json = serde_json::to_string_pretty(&file).unwrap_or_default();
        json.push('\n');
        json
    }
}

/// The on-disk format. `name` and `address` are optional on import.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("invalid wallet name {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, _ and -")]
    BadName(String),
    #[error("wallet {name:?} already exists ({path}); a key is never overwritten")]
    Exists { name: String, path: PathBuf },
    #[error("no wallet named {name:?} ({path} does not exist); see `weft wallet list`")]
    NotFound { name: String, path: PathBuf },
    #[error("no wallet in {0}; create one with `weft wallet new`")]
    NoWallets(PathBuf),
    #[error("{count} wallets in {dir} and none is named \"default\"; name one of them ({names})")]
    NoDefault {
        dir: PathBuf,
        count: usize,
        names: String,
    },
    #[error("wallet file {path} is corrupt ({reason}); it was left untouched")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is not a weft key file ({reason}); expected the JSON that `weft wallet export` prints, or 64 hex characters")]
    BadImport { path: PathBuf, reason: String },
    #[error("{path}: the address {stated} does not belong to the secret key in the file (which is {actual})")]
    AddressMismatch {
        path: PathBuf,
        stated: String,
        actual: Address,
    },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Checks a wallet name: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn check_name(name: &str) -> Result<(), WalletError> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(WalletError::BadName(name.to_owned()))
    }
}

/// The key file of wallet `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{EXT}"))
}

/// Creates a wallet with a fresh random key. Fails if the name is taken.
pub fn create(dir: &Path, name: &str) -> Result<Wallet, WalletError> {
    check_name(name)?;
    let wallet = Wallet {
        name: name.to_owned(),
        key: SigningKey::new(rand::rngs::OsRng),
    };
    write_new(dir, &wallet)?;
    Ok(wallet)
}

/// Every wallet in `dir`, sorted by name. A missing directory holds none.
/// Files whose names are not `<valid name>.key` are ignored; a corrupt key
/// file is an error.
pub fn list(dir: &Path) -> Result<Vec<Wallet>, WalletError> {
    let read_err = |source| WalletError::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut wallets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|f| f.strip_suffix(&format!(".{EXT}")))
        else {
            continue;
        };
        if check_name(name).is_err() {
            continue;
        }
        wallets.push(load(dir, name)?);
    }
    wallets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(wallets)
}

/// Loads wallet `name` from `dir`.
pub fn load(dir: &Path, name: &str) -> Result<Wallet, WalletError> {
    check_name(name)?;
    let path = path(dir, name);
    let text = match read_small(&path) {
        Ok(text) => text,
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(WalletError::NotFound {
                name: name.to_owned(),
                path,
            })
        }
        Err(ReadError::Io(source)) => return Err(WalletError::Read { path, source }),
        Err(ReadError::Bad(reason)) => return Err(WalletError::Corrupt { path, reason }),
    };
    let (_, key) = parse_key_file(&text).map_err(|e| match e {
        KeyFileError::Bad(reason) => WalletError::Corrupt {
            path: path.clone(),
            reason,
        },
        KeyFileError::Mismatch { stated, actual } => WalletError::AddressMismatch {
            path: path.clone(),
            stated,
            actual,
        },
    })?;
    Ok(Wallet {
        name: name.to_owned(),
        key,
    })
}

/// The wallet named "default"; else the only wallet; else an error that
/// says what to do.
pub fn load_default(dir: &Path) -> Result<Wallet, WalletError> {
    match load(dir, DEFAULT_NAME) {
        Err(WalletError::NotFound { .. }) => {}
        other => return other,
    }
    let mut wallets = list(dir)?;
    match wallets.len() {
        0 => Err(WalletError::NoWallets(dir.to_owned())),
        1 => Ok(wallets.remove(0)),
        count => Err(WalletError::NoDefault {
            dir: dir.to_owned(),
            count,
            names: wallets
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Imports the key in `file` (the JSON of [`export`], or just 64 hex
/// characters) as wallet `name`; without a name, the name inside the file,
/// else "default". Fails if that wallet exists.
pub fn import(dir: &Path, name: Option<&str>, file: &Path) -> Result<Wallet, WalletError> {
    if let Some(name) = name {
        check_name(name)?;
    }
    let bad = |reason: String| WalletError::BadImport {
        path: file.to_owned(),
        reason,
    };
    let text = match read_small(file) {
        Ok(text) => text,
        Err(ReadError::Io(source)) => {
            return Err(WalletError::Read {
                path: file.to_owned(),
                source,
            })
        }
        Err(ReadError::Bad(reason)) => return Err(bad(reason)),
    };
    let (file_name, key) = parse_key_file(&text).map_err(|e| match e {
        KeyFileError::Bad(reason) => bad(reason),
        KeyFileError::Mismatch { stated, actual } => WalletError::AddressMismatch {
            path: file.to_owned(),
            stated,
            actual,
        },
    })?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            let n = file_name.unwrap_or_else(|| DEFAULT_NAME.to_owned());
            check_name(&n)?;
            n
        }
    };
    let wallet = Wallet { name, key };
    write_new(dir, &wallet)?;
    Ok(wallet)
}

/// The key file of wallet `name`, as JSON. It holds the secret key.
pub fn export(dir: &Path, name: &str) -> Result<String, WalletError> {
    Ok(load(dir, name)?.to_json())
}

enum ReadError {
    Io(io::Error),
    Bad(String),
}

/// Why a key file's text is not a key.
enum KeyFileError {
    /// Not the format.
    Bad(String),
    /// The stated address is not the secret key's.
    Mismatch { stated: String, actual: Address },
}

fn read_small(path: &Path) -> Result<String, ReadError> {
    let len = fs::metadata(path).map_err(ReadError::Io)?.len();
    if len > MAX_FILE {
        return Err(ReadError::Bad(format!(
            "{len} bytes is too large for a key file"
        )));
    }
    let bytes = fs::read(path).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map_err(|_| ReadError::Bad("not UTF-8 text".into()))
}

/// Parses the JSON format or bare hex. Returns the name inside the file, if
/// any, and the key.
fn parse_key_file(text: &str) -> Result<(Option<String>, SigningKey), KeyFileError> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        let seed = parse_hex32(trimmed)
            .ok_or_else(|| KeyFileError::Bad("not JSON, and not 64 hex characters".into()))?;
        return Ok((None, SigningKey::from(seed)));
    }
    let file: KeyFile =
        serde_json::from_str(trimmed).map_err(|e| KeyFileError::Bad(e.to_string()))?;
    let seed = parse_hex32(file.secret.trim())
        .ok_or_else(|| KeyFileError::Bad("\"secret\" is not 64 hex characters".into()))?;
    let key = SigningKey::from(seed);
    if let Some(stated) = file.address {
        let actual = address_of(&key);
        if stated.parse::<Address>().ok() != Some(actual) {
            return Err(KeyFileError::Mismatch { stated, actual });
        }
    }
    Ok((file.name, key))
}

/// Creates `dir` (0700) if needed and writes the wallet's file, never
/// replacing an existing one.
fn write_new(dir: &Path, wallet: &Wallet) -> Result<(), WalletError> {
    let target = path(dir, &wallet.name);
    let write_err = |source| WalletError::Write {
        path: target.clone(),
        source,
    };
    create_private_dir(dir).map_err(|source| WalletError::Write {
        path: dir.to_owned(),
        source,
    })?;
    if target.exists() {
        return Err(WalletError::Exists {
            name: wallet.name.clone(),
            path: target,
        });
    }
    let tmp = dir.join(format!(
        ".{}.{EXT}.tmp-{}-{:08x}",
        wallet.name,
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = (|| {
        let mut file = private_file(&tmp)?;
        file.write_all(wallet.to_json().as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    // A hard link fails if the target exists, so a racing writer can never
    // replace a key; rename would.
    let linked = fs::hard_link(&tmp, &target);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(WalletError::Exists {
                name: wallet.name.clone(),
                path: target,
            })
        }
        Err(e) => return Err(write_err(e)),
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates a new file readable and writable by its owner only.
fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_load_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wallets");
        assert!(list(&dir).unwrap().is_empty());
        let b = create(&dir, "bob").unwrap();
        let a = create(&dir, "alice").unwrap();
        let names: Vec<_> = list(&dir).unwrap().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["alice", "bob"]);
        let loaded = load(&dir, "alice").unwrap();
        assert_eq!(loaded.address(), a.address());
        assert_ne!(a.address(), b.address());
        assert!(matches!(
            load(&dir, "carol"),
            Err(WalletError::NotFound { .. })
        ));
    }

    #[test]
    fn export_then_import_gives_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let one = tmp.path().join("one");
        let two = tmp.path().join("two");
        let w = create(&one, "alice").unwrap();
        let json = export(&one, "alice").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["name"], "alice");
        assert_eq!(v["address"], w.address().to_string());
        assert_eq!(v["secret"].as_str().unwrap().len(), 64);

        let file = tmp.path().join("alice.json");
        fs::write(&file, &json).unwrap();
        let imported = import(&two, None, &file).unwrap();
        assert_eq!(imported.name, "alice");
        assert_eq!(imported.address(), w.address());
        assert_eq!(export(&two, "alice").unwrap(), json);

        // Bare hex works too, under another name.
        let hex_file = tmp.path().join("seed.txt");
        fs::write(&hex_file, format!("{}\n", v["secret"].as_str().unwrap())).unwrap();
        let again = import(&two, Some("copy"), &hex_file).unwrap();
        assert_eq!(again.address(), w.address());
        // Importing over an existing wallet is refused.
        assert!(matches!(
            import(&two, None, &file),
            Err(WalletError::Exists { .. })
        ));
    }

    #[test]
    fn import_checks_the_address() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("w");
        let file = tmp.path().join("k.json");
        let other = address_of(&SigningKey::from([2; 32]));
        fs::write(
            &file,
            format!(
                r#"{{"name":"x","address":"{other}","secret":"{}"}}"#,
                hex(&[1; 32])
            ),
        )
        .unwrap();
        let err = import(&dir, None, &file).unwrap_err();
        assert!(matches!(err, WalletError::AddressMismatch { .. }), "{err}");
        fs::write(&file, "not a key").unwrap();
        let err = import(&dir, None, &file).unwrap_err();
        assert!(matches!(err, WalletError::BadImport { .. }), "{err}");
        assert!(err.to_string().contains("k.json"), "{err}");
        assert!(list(&dir).unwrap().is_empty());
    }

    #[test]
    fn never_overwrites_a_key() {
        let tmp = tempfile::tempdir().unwrap();
        let first = create(tmp.path(), "default").unwrap();
        let before = fs::read(path(tmp.path(), "default")).unwrap();
        let err = create(tmp.path(), "default").unwrap_err();
        assert!(matches!(err, WalletError::Exists { .. }), "{err}");
        assert_eq!(fs::read(path(tmp.path(), "default")).unwrap(), before);
        assert_eq!(
            load(tmp.path(), "default").unwrap().address(),
            first.address()
        );
        // No temp files are left behind.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let long = "a".repeat(65);
        for name in ["", "../x", "a b", "a/b", "é", ".hidden", long.as_str()] {
            assert!(
                matches!(create(tmp.path(), name), Err(WalletError::BadName(_))),
                "{name:?}"
            );
            assert!(matches!(
                load(tmp.path(), name),
                Err(WalletError::BadName(_))
            ));
        }
        create(tmp.path(), &"a".repeat(64)).unwrap();
        create(tmp.path(), "A-z_09").unwrap();
    }

    #[test]
    fn corrupt_file_is_an_error_and_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let p = path(tmp.path(), "default");
        fs::write(&p, b"garbage, not a key").unwrap();
        let err = load(tmp.path(), "default").unwrap_err();
        assert!(matches!(err, WalletError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("default.key"), "{err}");
        assert!(list(tmp.path()).is_err());
        assert!(load_default(tmp.path()).is_err());
        assert!(matches!(
            create(tmp.path(), "default"),
            Err(WalletError::Exists { .. })
        ));
        assert_eq!(fs::read(&p).unwrap(), b"garbage, not a key");
    }

    #[test]
    fn default_wallet_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load_default(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("weft wallet new"), "{err}");
        let only = create(tmp.path(), "alice").unwrap();
        assert_eq!(load_default(tmp.path()).unwrap().address(), only.address());
        create(tmp.path(), "bob").unwrap();
        let err = load_default(tmp.path()).unwrap_err();
        assert!(matches!(err, WalletError::NoDefault { .. }), "{err}");
        assert!(err.to_string().contains("alice, bob"), "{err}");
        let d = create(tmp.path(), "default").unwrap();
        assert_eq!(load_default(tmp.path()).unwrap().address(), d.address());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wallets");
        create(&dir, "default").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path(&dir, "default")), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }
}
