//! File helpers shared by the CommitLog, the ConsumeQueues and the index: the first two keep
//! files named by their 20-digit start offset in one directory.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use crate::Error;
use crate::fs::{Fs, OpenMode, StoreFile};

/// Map an I/O error on `path` to [`Error::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The file name of a file starting at `start`.
pub(crate) fn name(start: u64) -> String {
    format!("{start:020}")
}

/// Create `dir` and its missing ancestors, durably: each new directory's parent is synced,
/// so the new names survive a power loss.
pub(crate) fn ensure_dir(fs: &dyn Fs, dir: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    for a in dir.ancestors() {
        if a.as_os_str().is_empty() || fs.kind(a).map_err(io(a))?.is_some() {
            break;
        }
        missing.push(a);
    }
    for d in missing.into_iter().rev() {
        match fs.create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(d)(e)),
        }
        let parent = match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs.sync_dir(parent).map_err(io(parent))?;
    }
    Ok(())
}

/// Create `dir` if needed and list the start offsets of its files named by 20 digits, sorted.
/// Every start must be a multiple of `unit` (a file's size in bytes).
pub(crate) fn starts(fs: &dyn Fs, dir: &Path, unit: u64) -> Result<Vec<u64>, Error> {
    ensure_dir(fs, dir)?;
    let mut starts = Vec::new();
    for entry in fs.list(dir).map_err(io(dir))? {
        let n = entry.name;
        if n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()) && !entry.is_dir {
            let start: u64 = n
                .parse()
                .map_err(|_| Error::Corrupt(format!("file name {n}")))?;
            if !start.is_multiple_of(unit) {
                return Err(Error::Corrupt(format!(
                    "{} is not at a multiple of {unit}",
                    dir.join(n).display()
                )));
            }
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Open an existing file (`create`: a new one) for reading and writing.
pub(crate) fn open(fs: &dyn Fs, path: &Path, create: bool) -> Result<Arc<dyn StoreFile>, Error> {
    let mode = if create {
        OpenMode::CreateNew
    } else {
        OpenMode::Existing
    };
    fs.open(path, mode).map_err(io(path))
}

/// A reader of a [`StoreFile`] from offset 0 on (for a `BufReader` over a whole file).
pub(crate) struct ReadFrom<'a> {
    pub(crate) file: &'a dyn StoreFile,
    pub(crate) pos: u64,
    pub(crate) len: u64,
}

impl Read for ReadFrom<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
