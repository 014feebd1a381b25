//! The node's long-lived ed25519 identity.
//!
//! The key lives in one file in the data directory, written once (atomically,
//! mode 0600) on first start and never overwritten afterwards. A file that
//! cannot be read or decoded is an error that names the file; it is left
//! untouched so the operator can inspect or restore it.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use libp2p::{identity::Keypair, PeerId};

/// Largest identity file we are willing to read: a protobuf-encoded ed25519
/// keypair is 68 bytes; anything much larger is not ours.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// The node's keypair. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read identity file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("identity file {path} is corrupt ({reason}); it was left untouched: restore it, or move it away to create a new identity")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write identity file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl Identity {
    /// A fresh random identity (for tests and in-memory nodes).
    pub fn generate() -> Self {
        Self {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// Loads the identity from `path`, creating it there if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        match fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.write_new(path)?;
                Ok(identity)
            }
            Err(source) => Err(IdentityError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Loads an existing identity file.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let read_err = |source| IdentityError::Read {
            path: path.to_owned(),
            source,
        };
        let len = fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_KEY_FILE_LEN {
            return Err(IdentityError::Corrupt {
                path: path.to_owned(),
                reason: format!("{len} bytes is too large for a key"),
            });
        }
        let bytes = fs::read(path).map_err(read_err)?;
        let keypair =
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        if keypair.key_type() != libp2p::identity::KeyType::Ed25519 {
            return Err(IdentityError::Corrupt {
                path: path.to_owned(),
                reason: format!("expected an ed25519 key, found {:?}", keypair.key_type()),
            });
        }
        Ok(Self { keypair })
    }

    /// Writes the key to a new file: temp file, fsync, rename. Never replaces
    /// an existing file.
    fn write_new(&self, path: &Path) -> Result<(), IdentityError> {
        let write_err = |source| IdentityError::Write {
            path: path.to_owned(),
            source,
        };
        let bytes = self
            .keypair
            .to_protobuf_encoding()
            .map_err(|e| write_err(io::Error::other(e)))?;
        let tmp = path.with_extension("tmp");
        {
            let mut file = private_file(&tmp).map_err(write_err)?;
            file.write_all(&bytes).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        // hard_link fails if the target exists, so a concurrent start can never
        // replace a key that another process already wrote.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        linked.map_err(write_err)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

/// Creates (truncating) a file readable and writable by its owner only.
pub fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let a = Identity::load_or_create(&path).unwrap();
        let b = Identity::load_or_create(&path).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_file_is_an_error_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        fs::write(&path, b"not a key at all").unwrap();
        let err = Identity::load_or_create(&path).unwrap_err();
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"not a key at all");
    }
}
