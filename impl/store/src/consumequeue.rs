//! A ConsumeQueue: the index of one topic queue into the CommitLog. Entry `n` (the message at
//! queue offset `n`) is 20 bytes — `int64 commitLogOffset | int32 size | int64 tagsCode` — at
//! byte `20 n`, in files of `entries_per_file` entries named by their 20-digit start byte offset
//! (RocketMQ: 300 000 entries, 6 000 000-byte files).
//!
//! The files' handles live in a [`FileCache`] — the store's queues share one, bounded — so an
//! idle queue's files are closed and opened again when next read or appended to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Error;
use crate::commitlog::FlushJob;
use crate::files::{self, io};
use crate::fs::{Fs, StoreFile};
use crate::handles::FileCache;
use sextant_model::store::{files_below, first_at_or_above};

/// Bytes per entry (`CQ_STORE_UNIT_SIZE`).
pub const ENTRY_SIZE: u64 = 20;
/// RocketMQ's entries per file (`mappedFileSizeConsumeQueue / 20`).
pub const DEFAULT_ENTRIES_PER_FILE: u64 = 300_000;

/// One entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqEntry {
    /// Where the message's record starts in the CommitLog.
    pub commitlog_offset: u64,
    /// The record's size.
    pub size: u32,
    /// The hash of the message's tag (Java `String.hashCode`), 0 without a tag.
    pub tags_code: i64,
}

impl CqEntry {
    fn encode(&self) -> [u8; ENTRY_SIZE as usize] {
        let mut b = [0u8; ENTRY_SIZE as usize];
        b[..8].copy_from_slice(&self.commitlog_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    /// `None` for what RocketMQ treats as the end of valid entries (offset < 0 or size ≤ 0).
    fn decode(b: &[u8]) -> Option<CqEntry> {
        let offset = i64::from_be_bytes(b[..8].try_into().ok()?);
        let size = i32::from_be_bytes(b[8..12].try_into().ok()?);
        let tags_code = i64::from_be_bytes(b[12..20].try_into().ok()?);
        Some(CqEntry {
            commitlog_offset: u64::try_from(offset).ok()?,
            size: u32::try_from(size).ok().filter(|s| *s > 0)?,
            tags_code,
        })
    }
}

struct CqFile {
    /// Queue offset of its first entry.
    first: u64,
    path: PathBuf,
    /// Its handle's id in the cache.
    id: u64,
    /// Entries written.
    entries: u64,
}

/// Part of a queue's entries, readable without the queue ([`ConsumeQueue::slices`]).
pub(crate) struct CqSlice {
    /// The first queue offset readable here.
    pub(crate) first: u64,
    /// One past the last queue offset written here when taken.
    pub(crate) end: u64,
    file_first: u64,
    path: PathBuf,
    file: Arc<dyn StoreFile>,
}

impl CqSlice {
    /// Up to `max` entries from queue offset `offset` (within this slice) on, appended to
    /// `out`; a read stops at the first invalid entry.
    pub(crate) fn read(
        &self,
        offset: u64,
        max: usize,
        out: &mut Vec<CqEntry>,
    ) -> Result<(), Error> {
        if offset < self.first || offset >= self.end {
            return Ok(());
        }
        let n = (self.end - offset).min(max as u64) as usize;
        let mut b = vec![0u8; n * ENTRY_SIZE as usize];
        self.file
            .read_exact_at(&mut b, (offset - self.file_first) * ENTRY_SIZE)
            .map_err(io(&self.path))?;
        out.extend(
            b.chunks_exact(ENTRY_SIZE as usize)
                .map_while(CqEntry::decode),
        );
        Ok(())
    }
}

/// One topic queue's index: see the module documentation.
pub struct ConsumeQueue {
    fs: Arc<dyn Fs>,
    cache: Arc<FileCache>,
    dir: PathBuf,
    per_file: u64,
    files: Vec<CqFile>,
    /// Files written since the last flush (indexes into `files`).
    dirty_from: Option<usize>,
    /// A file (and maybe its directories) was created since the last flush.
    created: bool,
    /// The first entry still pointing into the CommitLog once retention deleted what came before
    /// (RocketMQ's `minLogicOffset`); entries of the first file below it are ignored.
    min: u64,
}

impl ConsumeQueue {
    /// Open (creating if needed) the queue in `dir` and recover it: the queue ends at the first
    /// invalid or partial entry, and later files are removed.
    pub fn open(dir: impl AsRef<Path>, entries_per_file: u64) -> Result<ConsumeQueue, Error> {
        Self::open_in(crate::fs::real(), dir, entries_per_file)
    }

    /// [`ConsumeQueue::open`] on the file system `fs`; what recovery cuts is durable before
    /// this returns. The queue's files stay open while it lives.
    pub fn open_in(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        entries_per_file: u64,
    ) -> Result<ConsumeQueue, Error> {
        Self::open_cached(fs, dir, entries_per_file, FileCache::new(usize::MAX))
    }

    /// [`ConsumeQueue::open_in`] with its file handles in `cache` (shared by the store's queues).
    pub(crate) fn open_cached(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        entries_per_file: u64,
        cache: Arc<FileCache>,
    ) -> Result<ConsumeQueue, Error> {
        let dir = dir.as_ref().to_owned();
        if entries_per_file == 0 {
            return Err(Error::Corrupt(
                "a ConsumeQueue file holds at least one entry".into(),
            ));
        }
        let file_bytes = entries_per_file * ENTRY_SIZE;
        let starts = files::starts(&*fs, &dir, file_bytes)?;
        let mut q = ConsumeQueue {
            fs,
            cache,
            dir,
            per_file: entries_per_file,
            files: Vec::new(),
            dirty_from: None,
            created: false,
            min: 0,
        };
        let mut ended = false;
        let mut removed = false;
        for (i, start) in starts.iter().copied().enumerate() {
            let path = q.dir.join(files::name(start));
            let contiguous = i == 0 || start == starts[i - 1] + file_bytes;
            if ended || !contiguous {
                q.fs.remove_file(&path).map_err(io(&path))?;
                removed = true;
                ended = true;
                continue;
            }
            let file = files::open(&*q.fs, &path, false)?;
            let full = file.len().map_err(io(&path))?;
            let len = full.min(file_bytes);
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0).map_err(io(&path))?;
            let valid = bytes
                .chunks_exact(ENTRY_SIZE as usize)
                .take_while(|c| CqEntry::decode(c).is_some())
                .count() as u64;
            if valid * ENTRY_SIZE != full {
                file.set_len(valid * ENTRY_SIZE).map_err(io(&path))?;
                file.sync_data().map_err(io(&path))?;
            }
            if valid < entries_per_file {
                ended = true;
            }
            let id = q.cache.new_id();
            q.cache.insert(id, &path, file, false);
            q.files.push(CqFile {
                first: start / ENTRY_SIZE,
                path,
                id,
                entries: valid,
            });
        }
        if removed {
            q.fs.sync_dir(&q.dir).map_err(io(&q.dir))?;
        }
        Ok(q)
    }

    /// The queue offset the next entry gets (RocketMQ's max offset).
    pub fn max_offset(&self) -> u64 {
        self.files.last().map_or(0, |f| f.first + f.entries)
    }

    /// The first queue offset still indexed.
    pub fn min_offset(&self) -> u64 {
        self.files
            .first()
            .map_or(0, |f| f.first.max(self.min).min(self.max_offset()))
    }

    /// Follow the CommitLog's start to `log_start` after retention deleted segments
    /// (`deleteExpiredFile`, `correctMinOffset`): the oldest files whose entries all point below
    /// it are deleted (never the last), and the queue's min offset becomes its first entry at or
    /// above it (its max when none is). Returns the files deleted.
    pub fn trim(&mut self, log_start: u64) -> Result<usize, Error> {
        let mut highest = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let last = match f.entries.checked_sub(1) {
                Some(n) => self.read_entry(f, n)?.map_or(0, |e| e.commitlog_offset),
                None => 0,
            };
            highest.push(last);
            if last >= log_start {
                break;
            }
        }
        let n = files_below(&highest, log_start).min(self.files.len().saturating_sub(1));
        for f in self.files.drain(..n) {
            self.cache.forget(f.id);
            self.fs.remove_file(&f.path).map_err(io(&f.path))?;
        }
        if n > 0 {
            self.dirty_from = self.dirty_from.map(|d| d.saturating_sub(n));
            self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
        }
        if let Some(f) = self.files.first() {
            let i = first_at_or_above(f.entries, log_start, |i| {
                self.read_entry(f, i)
                    .map(|e| e.map_or(0, |e| e.commitlog_offset))
            })?;
            self.min = self.min.max(f.first + i);
        }
        Ok(n)
    }

    /// The entry `n` of file `f`.
    fn read_entry(&self, f: &CqFile, n: u64) -> Result<Option<CqEntry>, Error> {
        let mut b = [0u8; ENTRY_SIZE as usize];
        self.handle(f, false)?
            .read_exact_at(&mut b, n * ENTRY_SIZE)
            .map_err(io(&f.path))?;
        Ok(CqEntry::decode(&b))
    }

    /// File `f`'s handle (opened again if the cache closed it); `write` before writing to it.
    fn handle(&self, f: &CqFile, write: bool) -> Result<Arc<dyn StoreFile>, Error> {
        self.cache.get(&*self.fs, f.id, &f.path, write)
    }

    /// A new file starting at queue offset `first`, open in the cache.
    fn create_file(&mut self, first: u64) -> Result<(CqFile, Arc<dyn StoreFile>), Error> {
        let path = self.dir.join(files::name(first * ENTRY_SIZE));
        let file = files::open(&*self.fs, &path, true)?;
        self.created = true;
        let id = self.cache.new_id();
        self.cache.insert(id, &path, Arc::clone(&file), true);
        let f = CqFile {
            first,
            path,
            id,
            entries: 0,
        };
        Ok((f, file))
    }

    /// Start the queue again at `offset`, whose entries before it all pointed into CommitLog
    /// segments retention deleted (a rebuild, or entries lost with a power loss along with the
    /// records they pointed at): its files go, and the file holding `offset` gets placeholder
    /// entries before it, pointing at offset 0 — below the log's start, so never read (the
    /// queue's min is past them).
    pub(crate) fn restart_at(&mut self, offset: u64) -> Result<(), Error> {
        if !self.files.is_empty() {
            for f in self.files.drain(..) {
                self.cache.forget(f.id);
                self.fs.remove_file(&f.path).map_err(io(&f.path))?;
            }
            self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
            self.dirty_from = None;
        }
        self.min = 0;
        if offset == 0 {
            return Ok(());
        }
        let first = offset - offset % self.per_file;
        let (mut f, file) = self.create_file(first)?;
        let fill = CqEntry {
            commitlog_offset: 0,
            size: 1,
            tags_code: 0,
        }
        .encode();
        let n = offset - first;
        let bytes: Vec<u8> = (0..n).flat_map(|_| fill).collect();
        file.write_all_at(&bytes, 0).map_err(io(&f.path))?;
        f.entries = n;
        self.files.push(f);
        self.min = offset;
        self.mark_dirty();
        Ok(())
    }

    /// Append the entry for queue offset `offset`, which must be [`ConsumeQueue::max_offset`].
    pub fn append(&mut self, offset: u64, entry: CqEntry) -> Result<(), Error> {
        if offset != self.max_offset() {
            return Err(Error::Corrupt(format!(
                "entry for offset {offset}, but the queue ends at {}",
                self.max_offset()
            )));
        }
        if i32::try_from(entry.size).is_err() || i64::try_from(entry.commitlog_offset).is_err() {
            return Err(Error::BadRecord(format!("entry {entry:?} out of range")));
        }
        if self.files.last().is_none_or(|f| f.entries == self.per_file) {
            let (f, _) = self.create_file(self.max_offset())?;
            self.files.push(f);
        }
        let f = self.files.last().expect("a file");
        self.handle(f, true)?
            .write_all_at(&entry.encode(), f.entries * ENTRY_SIZE)
            .map_err(io(&f.path))?;
        self.files.last_mut().expect("a file").entries += 1;
        self.mark_dirty();
        Ok(())
    }

    /// Append `entries` for queue offsets `first..`: one write when they fit the last file.
    pub(crate) fn append_batch(&mut self, first: u64, entries: &[CqEntry]) -> Result<(), Error> {
        let n = entries.len() as u64;
        let fits = first == self.max_offset()
            && self
                .files
                .last()
                .is_some_and(|f| f.entries + n <= self.per_file)
            && entries.iter().all(|e| {
                i32::try_from(e.size).is_ok() && i64::try_from(e.commitlog_offset).is_ok()
            });
        if !fits {
            for (i, e) in entries.iter().enumerate() {
                self.append(first + i as u64, *e)?;
            }
            return Ok(());
        }
        let mut b = Vec::with_capacity(entries.len() * ENTRY_SIZE as usize);
        for e in entries {
            b.extend_from_slice(&e.encode());
        }
        let f = self.files.last().expect("a file");
        self.handle(f, true)?
            .write_all_at(&b, f.entries * ENTRY_SIZE)
            .map_err(io(&f.path))?;
        self.files.last_mut().expect("a file").entries += n;
        self.mark_dirty();
        Ok(())
    }

    /// The entry at queue offset `offset`, if indexed.
    pub fn get(&self, offset: u64) -> Result<Option<CqEntry>, Error> {
        if offset < self.min {
            return Ok(None);
        }
        let Some(f) = self
            .files
            .iter()
            .find(|f| f.first <= offset && offset < f.first + f.entries)
        else {
            return Ok(None);
        };
        self.read_entry(f, offset - f.first)
    }

    /// Up to `max` entries from queue offset `offset` on, appended to `out` (fewer at the end of
    /// a file or of the queue; a read stops at the first invalid entry).
    pub fn get_range(&self, offset: u64, max: usize, out: &mut Vec<CqEntry>) -> Result<(), Error> {
        if offset < self.min {
            return Ok(());
        }
        let Some(f) = self
            .files
            .iter()
            .find(|f| f.first <= offset && offset < f.first + f.entries)
        else {
            return Ok(());
        };
        let n = (f.first + f.entries - offset).min(max as u64) as usize;
        let mut b = vec![0u8; n * ENTRY_SIZE as usize];
        self.handle(f, false)?
            .read_exact_at(&mut b, (offset - f.first) * ENTRY_SIZE)
            .map_err(io(&f.path))?;
        out.extend(
            b.chunks_exact(ENTRY_SIZE as usize)
                .map_while(CqEntry::decode),
        );
        Ok(())
    }

    /// The files holding queue offsets `offset..offset + count`, as written so far: handles
    /// to read them with no lock on the queue (a file trimmed or closed meanwhile stays
    /// readable through its handle).
    pub(crate) fn slices(&self, offset: u64, count: u64) -> Result<Vec<CqSlice>, Error> {
        let end = offset.saturating_add(count);
        self.files
            .iter()
            .filter(|f| f.entries > 0 && f.first < end && offset < f.first + f.entries)
            .map(|f| {
                Ok(CqSlice {
                    first: f.first.max(self.min),
                    end: f.first + f.entries,
                    file_first: f.first,
                    path: f.path.clone(),
                    file: self.handle(f, false)?,
                })
            })
            .collect()
    }

    /// Drop every entry that points at or past `commitlog_end` (after the CommitLog was cut on
    /// recovery).
    pub fn truncate_to(&mut self, commitlog_end: u64) -> Result<(), Error> {
        let mut removed = false;
        loop {
            let many = self.files.len() > 1;
            let Some(f) = self.files.last() else {
                break;
            };
            let mut keep = f.entries;
            while keep > 0 {
                match self.read_entry(f, keep - 1)? {
                    Some(e) if e.commitlog_offset + u64::from(e.size) <= commitlog_end => break,
                    _ => keep -= 1,
                }
            }
            if keep == 0 && many {
                let f = self.files.pop().expect("a file");
                self.cache.forget(f.id);
                self.fs.remove_file(&f.path).map_err(io(&f.path))?;
                removed = true;
                continue;
            }
            if keep != f.entries {
                // Durable at once: entries appended next must not meet the cut ones again
                // after a power loss.
                let file = self.handle(f, false)?;
                file.set_len(keep * ENTRY_SIZE).map_err(io(&f.path))?;
                file.sync_data().map_err(io(&f.path))?;
            }
            self.files.last_mut().expect("a file").entries = keep;
            break;
        }
        if removed {
            self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
        }
        self.min = self.min.min(self.max_offset());
        Ok(())
    }

    fn mark_dirty(&mut self) {
        let last = self.files.len().saturating_sub(1);
        self.dirty_from = Some(self.dirty_from.map_or(last, |d| d.min(last)));
    }

    /// fsync the files written since the last flush (and the directories, when files were
    /// created).
    pub fn flush(&mut self) -> Result<(), Error> {
        let job = self.flush_job();
        if let Err(e) = job.run() {
            self.cache.fail(e.to_string());
            return Err(e);
        }
        match self.cache.failed() {
            Some(why) => Err(Error::Failed(why)),
            None => Ok(()),
        }
    }

    /// What [`ConsumeQueue::flush`] would do, to run outside a lock around the queue.
    pub fn flush_job(&mut self) -> FlushJob {
        // A file closed since was fsynced as it closed (the cache closes only clean handles).
        let files = match self.dirty_from.take() {
            Some(from) => self
                .files
                .get(from..)
                .unwrap_or_default()
                .iter()
                .filter_map(|f| self.cache.take_dirty(f.id))
                .collect(),
            None => Vec::new(),
        };
        // A new file needs its directory's entry on disk, and a new queue its topic's and the
        // root's: three levels, as `consumequeue/<topic>/<queue>/` is created at once.
        let dir = if std::mem::take(&mut self.created) {
            self.dir.ancestors().take(3).map(Path::to_owned).collect()
        } else {
            Vec::new()
        };
        FlushJob {
            fs: Arc::clone(&self.fs),
            files,
            dir,
            end: self.max_offset(),
        }
    }
}

impl Drop for ConsumeQueue {
    fn drop(&mut self) {
        for f in &self.files {
            self.cache.forget(f.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn e(i: u64) -> CqEntry {
        CqEntry {
            commitlog_offset: i * 100,
            size: 100,
            tags_code: i as i64 - 3,
        }
    }

    #[test]
    fn append_get_roll_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = ConsumeQueue::open(dir.path(), 4).unwrap();
        for i in 0..10 {
            q.append(i, e(i)).unwrap();
        }
        assert!(q.append(3, e(3)).is_err());
        assert_eq!(q.max_offset(), 10);
        assert_eq!(q.get(7).unwrap(), Some(e(7)));
        assert_eq!(q.get(10).unwrap(), None);
        q.flush().unwrap();
        drop(q);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "00000000000000000000",
                "00000000000000000080",
                "00000000000000000160"
            ]
        );
        let q = ConsumeQueue::open(dir.path(), 4).unwrap();
        assert_eq!(q.max_offset(), 10);
        assert_eq!(q.get(9).unwrap(), Some(e(9)));
    }

    #[test]
    fn a_flush_covers_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let qdir = dir.path().join("T/0");
        let mut q = ConsumeQueue::open(&qdir, 2).unwrap();
        for i in 0..5 {
            q.append(i, e(i)).unwrap();
        }
        // Three files written, new: all three, and the queue, topic and root directories.
        let job = q.flush_job();
        assert_eq!(job.files.len(), 3);
        assert_eq!(
            job.dir,
            [qdir.clone(), dir.path().join("T"), dir.path().to_owned()]
        );
        job.run().unwrap();
        // Nothing since: nothing to do.
        let job = q.flush_job();
        assert!(job.files.is_empty() && job.dir.is_empty());
        // One more entry in the last file: that file only, no directory.
        q.append(5, e(5)).unwrap();
        let job = q.flush_job();
        assert_eq!(job.files.len(), 1);
        assert!(job.dir.is_empty());
    }

    #[test]
    fn recovery_cuts_partial_and_invalid_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = ConsumeQueue::open(dir.path(), 100).unwrap();
        for i in 0..5 {
            q.append(i, e(i)).unwrap();
        }
        drop(q);
        let path = dir.path().join("00000000000000000000");
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
        fs::write(&path, &bytes).unwrap();
        let q = ConsumeQueue::open(dir.path(), 100).unwrap();
        assert_eq!(q.max_offset(), 5);
        drop(q);
        // A zero entry (size 0) ends the valid entries.
        let mut bytes = fs::read(&path).unwrap();
        bytes[3 * 20 + 8..3 * 20 + 12].copy_from_slice(&0i32.to_be_bytes());
        fs::write(&path, &bytes).unwrap();
        let q = ConsumeQueue::open(dir.path(), 100).unwrap();
        assert_eq!(q.max_offset(), 3);
    }

    #[test]
    fn truncate_to_a_cut_commitlog() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = ConsumeQueue::open(dir.path(), 3).unwrap();
        for i in 0..8 {
            q.append(i, e(i)).unwrap();
        }
        // The CommitLog now ends at 450: entries 0..=3 end by 400 and stay.
        q.truncate_to(450).unwrap();
        assert_eq!(q.max_offset(), 4);
        assert_eq!(q.get(4).unwrap(), None);
        q.append(4, e(4)).unwrap();
        q.truncate_to(0).unwrap();
        assert_eq!(q.max_offset(), 0);
    }
}
