//! Writing stored content out to the file system: a blob to a file, a
//! collection to a folder. Every path from a collection is checked again
//! here (no `..`, nothing absolute, no symlinked ancestor), and each file is
//! written to a temp file and renamed, so a reader never sees half a file.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::{
    collection::{export_path, Collection, EntryKind, MAX_MANIFEST_BYTES},
    direct::{self, AlignedBuf},
    store::{Store, StoreError},
    ticket::BlobKind,
    Hash,
};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} exists and is a file; a folder is needed for a collection")]
    NotAFolder(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("unsafe path in collection: {0}")]
    UnsafePath(String),
    #[error("collection {0} is invalid: {1}")]
    BadCollection(Hash, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Exports a complete blob or collection to `out`. Blocking.
pub fn export(
    store: &Store,
    hash: &Hash,
    kind: BlobKind,
    out: &Path,
) -> Result<PathBuf, ExportError> {
    match kind {
        BlobKind::Blob => {
            let target = if out.is_dir() {
                out.join(hash.to_hex())
            } else {
                out.to_owned()
            };
            copy_blob(store, hash, &target)?;
            Ok(target)
        }
        BlobKind::Collection => {
            if out.exists() && !out.is_dir() {
                return Err(ExportError::NotAFolder(out.to_owned()));
            }
            let bytes = store.read_to_vec(hash, MAX_MANIFEST_BYTES)?;
            let collection = Collection::from_bytes(&bytes)
                .map_err(|e| ExportError::BadCollection(*hash, e.to_string()))?;
            fs::create_dir_all(out).map_err(write_err(out))?;
            for entry in collection.entries() {
                let path = export_path(out, &entry.path)
                    .map_err(|e| ExportError::UnsafePath(e.to_string()))?;
                match &entry.kind {
                    EntryKind::Dir => fs::create_dir_all(&path).map_err(write_err(&path))?,
                    EntryKind::File { hash, .. } => {
                        if let Some(parent) = path.parent() {
                            fs::create_dir_all(parent).map_err(write_err(parent))?;
                        }
                        copy_blob(store, hash, &path)?;
                    }
                }
            }
            Ok(out.to_owned())
        }
    }
}

/// Copies the first `len` bytes of `source` into a new file `target` with
/// direct I/O (see [`crate::direct`]): aligned runs of up to 1 MiB, and the
/// unaligned tail through ordinary files. `Ok(false)` when direct I/O is not
/// available here; the caller then copies the ordinary way.
fn copy_direct(source: &Path, target: &Path, len: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let Some(src) = direct::open(source, fs::OpenOptions::new().read(true)) else {
        return Ok(false);
    };
    let mut create = fs::OpenOptions::new();
    create.write(true).create(true).truncate(true);
    let Some(dst) = direct::open(target, &mut create) else {
        return Ok(false);
    };
    let mut buf = AlignedBuf::new(1 << 20);
    let aligned_len = len - len % direct::ALIGN as u64;
    let mut pos = 0u64;
    while pos < aligned_len {
        let n = (aligned_len - pos).min(buf.capacity() as u64) as usize;
        let chunk = buf.space(n);
        let copied = src
            .read_exact_at(chunk, pos)
            .and_then(|()| dst.write_all_at(chunk, pos));
        match copied {
            Ok(()) => pos += n as u64,
            Err(e) if direct::refused(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    if len > aligned_len {
        let mut tail = vec![0u8; (len - aligned_len) as usize];
        fs::File::open(source)?.read_exact_at(&mut tail, aligned_len)?;
        fs::OpenOptions::new()
            .write(true)
            .open(target)?
            .write_all_at(&tail, aligned_len)?;
    }
    Ok(true)
}

fn copy_blob(store: &Store, hash: &Hash, target: &Path) -> Result<(), ExportError> {
    let source = store.data_file(hash)?;
    let size = store
        .info(hash)?
        .map(|i| i.size)
        .ok_or(StoreError::NotFound(*hash))?;
    if let Some(parent) = target.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| hash.to_hex());
    let tmp = target.with_file_name(format!(".{file_name}.weft-tmp"));
    let result = (|| -> io::Result<()> {
        if direct::wanted(size) && copy_direct(&source, &tmp, size)? {
            return fs::File::open(&tmp)?.sync_all();
        }
        let mut src = fs::File::open(&source)?;
        let mut dst = fs::File::create(&tmp)?;
        // The data file of a blob is exactly its size, but be strict.
        io::copy(&mut io::Read::take(&mut src, size), &mut dst)?;
        dst.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ExportError::Write {
            path: target.to_owned(),
            source: e,
        });
    }
    fs::rename(&tmp, target).map_err(write_err(target))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large blob (copied with direct I/O where the filesystem has it)
    /// whose size is not a multiple of 4 KiB comes out byte for byte.
    #[test]
    fn a_large_blob_exports_exactly() {
        let size = direct::MIN_SIZE as usize + 5_000;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), None).unwrap();
        let hash = store
            .import_bytes(&data, BlobKind::Blob, None)
            .unwrap()
            .hash;
        let out = dir.path().join("out.bin");
        export(&store, &hash, BlobKind::Blob, &out).unwrap();
        let back = fs::read(&out).unwrap();
        assert_eq!(back.len(), size);
        assert!(back == data, "the exported file differs from the blob");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("weft-tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
