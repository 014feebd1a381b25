//! The data directory: where a node keeps its identity, API token, API
//! address and configuration.
//!
//! Every file is written atomically (temp file, fsync, rename). Secrets are
//! created with mode 0600. One node at a time owns a data directory, enforced
//! by an OS lock on `lock` that is released when the process exits, even on
//! kill -9.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

/// Names of the files in a data directory.
pub const IDENTITY_FILE: &str = "identity.key";
pub const TOKEN_FILE: &str = "api.token";
pub const API_ADDR_FILE: &str = "api.addr";
pub const CONFIG_FILE: &str = "weft.toml";
const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {path} is not usable: {source}")]
    Unusable { path: PathBuf, source: io::Error },
    #[error("data dir {0} is in use by another running weft node")]
    InUse(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: fs::File,
}

impl DataDir {
    /// Creates the directory if needed, checks that it is writable and
    /// takes the lock.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        let unusable = |source| DataDirError::Unusable {
            path: root.to_owned(),
            source,
        };
        fs::create_dir_all(root).map_err(unusable)?;
        let lock_path = root.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(unusable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(DataDirError::InUse(root.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(unusable(e)),
        }
        // Prove we can create files here (a read-only mount passes the lock).
        let probe = root.join(".write-probe");
        fs::write(&probe, b"").map_err(unusable)?;
        let _ = fs::remove_file(&probe);
        Ok(Self {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Returns the API token, creating a random one (0600) on first use.
    pub fn api_token(&self) -> Result<String, DataDirError> {
        let path = self.path(TOKEN_FILE);
        match fs::read_to_string(&path) {
            Ok(s) if is_valid_token(s.trim()) => return Ok(s.trim().to_owned()),
            Ok(_) => tracing::warn!("{} is malformed; writing a new token", path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(DataDirError::Read { path, source }),
        }
        let token = new_token();
        write_atomic(&path, format!("{token}\n").as_bytes(), true)?;
        Ok(token)
    }
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_valid_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `bytes` to `path` atomically; `private` makes the file 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), DataDirError> {
    let write_err = |source| DataDirError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut file = if private {
            weft_net::private_file(&tmp)
        } else {
            fs::File::create(&tmp)
        }
        .map_err(write_err)?;
        file.write_all(bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
    }
    fs::rename(&tmp, path).map_err(write_err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let a = data.api_token().unwrap();
        let b = data.api_token().unwrap();
        assert_eq!(a, b);
        assert!(is_valid_token(&a));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.path(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path()).unwrap();
        let err = DataDir::open(dir.path()).unwrap_err();
        assert!(matches!(err, DataDirError::InUse(_)), "{err}");
    }

    #[test]
    fn a_file_in_the_way_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = DataDir::open(&file.join("sub")).unwrap_err();
        assert!(matches!(err, DataDirError::Unusable { .. }), "{err}");
    }
}
