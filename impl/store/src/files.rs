//! File helpers shared by the CommitLog and the ConsumeQueues: both keep files named by their
//! 20-digit start offset in one directory.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::Error;

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

/// Create `dir` if needed and list the start offsets of its files named by 20 digits, sorted.
/// Every start must be a multiple of `unit` (a file's size in bytes).
pub(crate) fn starts(dir: &Path, unit: u64) -> Result<Vec<u64>, Error> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut starts = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(n) = entry.file_name().to_str()
            && n.len() == 20
            && n.bytes().all(|b| b.is_ascii_digit())
        {
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
pub(crate) fn open(path: &PathBuf, create: bool) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
        .map_err(io(path))
}
