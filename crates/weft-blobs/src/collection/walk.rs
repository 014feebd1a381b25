//! The file-system side of collections: [`walk_dir`] lists a folder to
//! share, and [`export_path`] maps a manifest path to a location inside a
//! target folder without escaping it.

use std::{
    collections::HashSet,
    fs, io,
    path::{Component, Path, PathBuf},
};

use super::{validate_path, CollectionError, PathError, PathProblem, MAX_ENTRIES, MAX_WALK_VISITS};

/// A file or empty folder found by [`walk_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Path relative to the root, `/`-separated; passes [`validate_path`].
    pub rel: String,
    /// The path on disk.
    pub abs: PathBuf,
    /// File or empty folder.
    pub kind: WalkKind,
}

/// What [`walk_dir`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkKind {
    /// A regular file and its size when listed.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A folder with nothing to share inside it.
    EmptyDir,
}

/// Lists the files and empty folders under `root`, sorted by `rel`.
///
/// Symlinks and special files (sockets, FIFOs, devices) are skipped with a
/// warning; `root` itself may be a symlink to a folder. A folder counts as
/// empty when nothing is listed under it, so a folder holding only symlinks
/// is recreated empty. Non-UTF-8 names and names that fail
/// [`validate_path`] are errors naming the path. At most [`MAX_ENTRIES`]
/// entries are returned.
pub fn walk_dir(root: &Path) -> Result<Vec<WalkEntry>, CollectionError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CollectionError::Io { path, error }
    };
    let meta = fs::metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(CollectionError::NotADirectory {
            path: root.to_path_buf(),
        });
    }

    let mut found: Vec<WalkEntry> = Vec::new();
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    let mut visits = 0usize;
    // Folders still to read: (rel, abs); the root has an empty rel.
    let mut stack: Vec<(String, PathBuf)> = vec![(String::new(), root.to_path_buf())];
    while let Some((rel_dir, abs_dir)) = stack.pop() {
        for item in fs::read_dir(&abs_dir).map_err(io_err(&abs_dir))? {
            let item = item.map_err(io_err(&abs_dir))?;
            let abs = item.path();
            let file_type = item.file_type().map_err(io_err(&abs))?;
            if file_type.is_symlink() {
                tracing::warn!(path = %abs.display(), "skipping symlink");
                continue;
            }
            if !file_type.is_dir() && !file_type.is_file() {
                tracing::warn!(path = %abs.display(), "skipping special file");
                continue;
            }
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| CollectionError::NonUtf8 { path: abs.clone() })?;
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            validate_path(&rel)?;
            visits += 1;
            if visits > MAX_WALK_VISITS {
                return Err(CollectionError::TooManyEntries { count: visits });
            }
            if file_type.is_dir() {
                dirs.push((rel.clone(), abs.clone()));
                stack.push((rel, abs));
            } else {
                let size = item.metadata().map_err(io_err(&abs))?.len();
                found.push(WalkEntry {
                    rel,
                    abs,
                    kind: WalkKind::File { size },
                });
                if found.len() > MAX_ENTRIES {
                    return Err(CollectionError::TooManyEntries { count: found.len() });
                }
            }
        }
    }

    // A folder is empty if nothing listed has it as its parent. A folder's
    // own parent is listed too, so one non-empty child keeps the whole chain.
    let parents: HashSet<&str> = found
        .iter()
        .map(|e| e.rel.as_str())
        .chain(dirs.iter().map(|d| d.0.as_str()))
        .filter_map(|rel| rel.rsplit_once('/').map(|(parent, _)| parent))
        .collect();
    let empty: Vec<(String, PathBuf)> = dirs
        .iter()
        .filter(|(rel, _)| !parents.contains(rel.as_str()))
        .cloned()
        .collect();
    found.extend(empty.into_iter().map(|(rel, abs)| WalkEntry {
        rel,
        abs,
        kind: WalkKind::EmptyDir,
    }));
    if found.len() > MAX_ENTRIES {
        return Err(CollectionError::TooManyEntries { count: found.len() });
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// Where to write the entry `rel` under `target_root`.
///
/// Validates `rel`, joins it component by component and makes sure the
/// result stays inside `target_root`: every component must stay a plain
/// name on this platform, and no already-existing location between
/// `target_root` (exclusive) and the result (inclusive) may be a symlink.
/// `target_root` itself may be a symlink. Nothing is created.
pub fn export_path(target_root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    validate_path(rel)?;
    let fail = |problem| PathError {
        path: rel.to_owned(),
        problem,
    };
    let mut out = target_root.to_path_buf();
    let mut exists = true;
    for component in rel.split('/') {
        let mut parts = Path::new(component).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(c)), None) if c == component => {}
            _ => return Err(fail(PathProblem::NotPlain)),
        }
        out.push(component);
        if exists {
            match fs::symlink_metadata(&out) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(fail(PathProblem::Symlink { at: out }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => exists = false,
                Err(e) => {
                    return Err(fail(PathProblem::Inspect {
                        at: out,
                        kind: e.kind(),
                    }))
                }
            }
        }
    }
    Ok(out)
}
