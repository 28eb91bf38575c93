//! The file system under the store: every file the store writes — CommitLog segments,
//! ConsumeQueue files, index files, the checkpoint, the [`config`](crate::config) files — goes
//! through [`Fs`] and [`StoreFile`], so that a test can run the store over a simulated disk that
//! loses power ([`SimFs`](crate::sim::SimFs), feature `sim`) and the broker over [`RealFs`].
//!
//! Writes are positioned (`pwrite`/`pread`): a [`StoreFile`] has no cursor, so one handle is
//! shared by the writer, the readers and the flush thread. Durability follows POSIX: a file's
//! data is durable after its [`StoreFile::sync_data`]; a directory entry (a created, renamed or
//! removed name) after the directory's [`Fs::sync_dir`].

use std::any::Any;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How [`Fs::open`] opens a file (always for reading and writing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// The file must not exist: it is created empty.
    CreateNew,
    /// Created if missing, emptied if present (a temporary file written whole).
    Truncate,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// An open file, read and written at explicit offsets.
pub trait StoreFile: Send + Sync {
    /// Fill `buf` from `at` (an error if the file ends first).
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
    /// Write all of `buf` at `at` (extending the file if needed).
    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Cut or extend (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make the file's data and length durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

/// A held lock on a store directory, released when dropped.
pub type LockGuard = Box<dyn Any + Send>;

/// The file system operations the store uses.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Open `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StoreFile>>;
    /// Create one directory (its parent must exist; `AlreadyExists` if it does).
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` is a directory (`Some(true)`), a file (`Some(false)`), or absent.
    fn kind(&self, path: &Path) -> io::Result<Option<bool>>;
    /// The entries of `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    /// Rename `from` to `to` within one directory, replacing `to` (atomic).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove a directory and everything under it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Make the entries of `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Lock `path` (created if needed) against other stores: `WouldBlock` while another
    /// holds it.
    fn lock(&self, path: &Path) -> io::Result<LockGuard>;
    /// The share of the file system under `path` that is used, 0.0 to 1.0 (RocketMQ's
    /// `getDiskPartitionSpaceUsedPercent`: `(total - free) / total`).
    fn used_ratio(&self, path: &Path) -> io::Result<f64>;
}

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A `std::fs::File` as a [`StoreFile`].
struct RealFile(File);

impl StoreFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, at)
    }

    fn write_all_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        self.0.write_all_at(buf, at)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StoreFile>> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateNew => {
                o.create_new(true);
            }
            OpenMode::Truncate => {
                o.create(true).truncate(true);
            }
        }
        Ok(Arc::new(RealFile(o.open(path)?)))
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<bool>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(m.is_dir())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            // Names that are not UTF-8 are none of the store's.
            if let Some(name) = e.file_name().to_str() {
                out.push(DirEntry {
                    name: name.to_owned(),
                    is_dir: e.file_type()?.is_dir(),
                });
            }
        }
        Ok(out)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(f)),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn used_ratio(&self, path: &Path) -> io::Result<f64> {
        let s = rustix::fs::statvfs(path)?;
        let unit = s.f_frsize.max(1);
        let total = s.f_blocks.saturating_mul(unit);
        let free = s.f_bfree.saturating_mul(unit);
        if total == 0 {
            return Ok(0.0);
        }
        Ok(total.saturating_sub(free) as f64 / total as f64)
    }
}

/// The real file system, shared.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(RealFs)
}
