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
