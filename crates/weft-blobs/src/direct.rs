//! Direct I/O (`O_DIRECT`) for large blobs: writes and reads that bypass
//! the page cache, so a big download or export does not push everything
//! else out of memory. On machines where fresh page-cache pages are
//! expensive (virtual machines that hand freed memory back to the host) it
//! is also much faster. Direct I/O needs offsets, lengths and memory
//! aligned to [`ALIGN`]; callers send anything else, and everything on
//! filesystems without direct I/O (tmpfs, some network filesystems),
//! through ordinary files.

use std::{
    fs::{File, OpenOptions},
    io,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

/// The alignment direct I/O needs (of offsets, lengths and memory).
pub(crate) const ALIGN: usize = 4096;
/// Blobs at least this large use direct I/O where possible.
pub(crate) const MIN_SIZE: u64 = 64 << 20;

/// Whether large blobs use direct I/O (on unless switched off).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches direct I/O for large downloads and exports on or off, for this
/// process (benchmarks compare the two; filesystems that accept `O_DIRECT`
/// but handle it badly can turn it off).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether direct I/O is switched on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether a blob of `size` bytes should use direct I/O.
pub(crate) fn wanted(size: u64) -> bool {
    size >= MIN_SIZE && enabled()
}

/// `path` opened with `O_DIRECT` and `options`; `None` where the filesystem
/// (or, off Linux, the platform) does not support it.
#[cfg(target_os = "linux")]
pub(crate) fn open(path: &Path, options: &mut OpenOptions) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    options
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .inspect_err(|e| tracing::debug!(path = %path.display(), "no direct I/O: {e}"))
        .ok()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn open(_path: &Path, _options: &mut OpenOptions) -> Option<File> {
    None
}

/// Whether `e` is the kernel refusing a direct transfer (alignment rules
/// stricter than [`ALIGN`]): the caller then uses ordinary I/O instead.
pub(crate) fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// A buffer whose start is aligned to [`ALIGN`], holding up to `capacity`
/// bytes.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    capacity: usize,
    pub(crate) len: usize,
}

impl AlignedBuf {
    pub(crate) fn new(capacity: usize) -> Self {
        let raw = vec![0u8; capacity + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self {
            raw,
            off,
            capacity,
            len: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }

    /// The first `n` bytes of the buffer, to fill (`n` ≤ capacity).
    pub(crate) fn space(&mut self, n: usize) -> &mut [u8] {
        &mut self.raw[self.off..self.off + n.min(self.capacity)]
    }

    /// Appends `data`; the caller keeps the total within the capacity.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let at = self.off + self.len;
        self.raw[at..at + data.len()].copy_from_slice(data);
        self.len += data.len();
    }
}
