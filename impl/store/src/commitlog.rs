//! The CommitLog: segment files of `segment_size` bytes each, named by their 20-digit start
//! offset, holding stored-message records back to back. A record that does not fit the rest of a
//! segment starts the next one; the rest is marked with a blank record (`int32 remaining | int32
//! BLANK_MAGIC`) when at least 8 bytes remain, as RocketMQ's `END_FILE_MIN_BLANK_LENGTH` rule.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sextant_remoting::message::{BLANK_MAGIC, MAX_RECORD, MessageView, body_crc};

use crate::Error;
use crate::files::{self, ReadFrom, io};
use crate::fs::{Fs, StoreFile};
use sextant_model::store::SegmentInfo;

/// RocketMQ's default segment size (`mappedFileSizeCommitLog`): 1 GiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 1 << 30;

/// Bytes a blank end-of-segment record takes.
const BLANK_LEN: u64 = 8;
/// Where a record keeps its own commit-log offset.
const PHYSICAL_OFFSET_AT: usize = 28;

/// What opening the log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files kept.
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// The offset the next record goes to.
    pub end: u64,
    /// Where the log was cut, and why, if a record failed its checks (a torn tail after a crash,
    /// or corruption).
    pub truncated: Option<(u64, String)>,
}

struct Segment {
    start: u64,
    path: Arc<Path>,
    file: Arc<dyn StoreFile>,
    /// Bytes written (the logical end within the segment; a blank record ends it early).
    len: u64,
    /// Closed by a blank record or by being full.
    sealed: bool,
    /// The newest store timestamp of its records (ms; 0 for none): when retention counts it
    /// last written.
    last_store_ms: i64,
}

/// RocketMQ's commit log on disk: see the module documentation.
pub struct CommitLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    segment_size: u64,
    segments: Vec<Segment>,
    /// Segments written since the last flush (indexes into `segments`).
    dirty_from: Option<usize>,
    /// A segment was created since the last flush: the directory needs an fsync too.
    dir_dirty: bool,
    /// A deliberately broken store, for the power-loss tests to catch: flushes skip the
    /// segments' fsyncs.
    skip_fsync: bool,
}

/// The fsyncs that make everything appended so far durable, taken from the log so that they can
/// run without holding it (appends go on meanwhile: the next job takes them — group commit).
pub struct FlushJob {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) files: Vec<(PathBuf, Arc<dyn StoreFile>)>,
    /// Directories whose entries changed (new files), fsynced after the files.
    pub(crate) dir: Vec<PathBuf>,
    pub(crate) end: u64,
}

impl FlushJob {
    /// The log offset that is durable once the job has run.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Run the fsyncs; returns the durable end.
    pub fn run(self) -> Result<u64, Error> {
        for (path, f) in &self.files {
            f.sync_data().map_err(io(path))?;
        }
        for dir in &self.dir {
            self.fs.sync_dir(dir).map_err(io(dir))?;
        }
        Ok(self.end)
    }
}

impl CommitLog {
    /// Open (creating if needed) the log in `dir` and recover it.
    pub fn open(dir: impl AsRef<Path>, segment_size: u64) -> Result<(CommitLog, Recovery), Error> {
        Self::open_in(crate::fs::real(), dir, segment_size)
    }

    /// [`CommitLog::open`] on the file system `fs`. A cut tail and the segments removed after
    /// it are made durable before this returns.
    pub fn open_in(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        segment_size: u64,
    ) -> Result<(CommitLog, Recovery), Error> {
        let dir = dir.as_ref().to_owned();
        if segment_size < 1024 {
            return Err(Error::Corrupt(format!(
                "segment size {segment_size} is below 1 KiB"
            )));
        }
        let starts = files::starts(&*fs, &dir, segment_size)?;
        for w in starts.windows(2) {
            if w[1] != w[0] + segment_size {
                return Err(Error::Corrupt(format!(
                    "segments {} and {} are not {segment_size} bytes apart",
                    files::name(w[0]),
                    files::name(w[1])
                )));
            }
        }
        let mut log = CommitLog {
            fs,
            dir,
            segment_size,
            segments: Vec::new(),
            dirty_from: None,
            dir_dirty: false,
            skip_fsync: false,
        };
        let mut recovery = Recovery {
            segments: 0,
            records: 0,
            end: starts.first().copied().unwrap_or(0),
            truncated: None,
        };
        let mut removed = false;
        for (i, start) in starts.iter().copied().enumerate() {
            let path: Arc<Path> = log.dir.join(files::name(start)).into();
            if recovery.truncated.is_some() {
                // Everything after a cut goes: RocketMQ keeps only a valid prefix.
                log.fs.remove_file(&path).map_err(io(&path))?;
                removed = true;
                continue;
            }
            let file = files::open(&*log.fs, &path, false)?;
            let (len, sealed, records, cut, last_store_ms) =
                scan(&*file, start, segment_size, &path)?;
            recovery.records += records;
            if let Some(why) = cut {
                file.set_len(len).map_err(io(&path))?;
                file.sync_data().map_err(io(&path))?;
                recovery.truncated = Some((start + len, why));
            } else if !sealed && i + 1 < starts.len() {
                // A later segment exists, so this one must have been sealed.
                recovery.truncated =
                    Some((start + len, "segment ends without its blank record".into()));
            }
            recovery.end = if sealed {
                start + segment_size
            } else {
                start + len
            };
            log.segments.push(Segment {
                start,
                path,
                file,
                len,
                sealed,
                last_store_ms,
            });
        }
        if removed {
            log.fs.sync_dir(&log.dir).map_err(io(&log.dir))?;
        }
        recovery.segments = log.segments.len();
        if let Some((at, why)) = &recovery.truncated {
            tracing::warn!(offset = at, reason = %why, "commit log truncated on recovery");
        }
        Ok((log, recovery))
    }

    /// The offset the next record goes to.
    pub fn end(&self) -> u64 {
        match self.segments.last() {
            Some(s) if s.sealed => s.start + self.segment_size,
            Some(s) => s.start + s.len,
            None => 0,
        }
    }

    /// Break the log on purpose (tests only): flushes skip the segments' fsyncs.
    #[cfg(feature = "sim")]
    pub(crate) fn set_skip_fsync(&mut self, skip: bool) {
        self.skip_fsync = skip;
    }

    /// The segment size.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The oldest offset still stored.
    pub fn start(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.start)
    }

    /// The segments, oldest first, as retention sees them (the last is written to).
    pub fn segment_infos(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                start: s.start,
                end: s.start + self.segment_size,
                last_modified_ms: s.last_store_ms,
            })
            .collect()
    }

    /// Delete the oldest segment if it starts at `start` and is not the last (retention):
    /// forgotten at once, its file removed and the directory fsynced. Whether it was.
    pub fn delete_oldest(&mut self, start: u64) -> Result<bool, Error> {
        if self.segments.len() < 2 || self.segments[0].start != start {
            return Ok(false);
        }
        let seg = self.segments.remove(0);
        // A flush taken meanwhile holds the file open; later ones no longer name it.
        self.dirty_from = self.dirty_from.map(|d| d.saturating_sub(1));
        self.fs.remove_file(&seg.path).map_err(io(&seg.path))?;
        self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
        tracing::info!(segment = %seg.path.display(), "commit log segment deleted");
        Ok(true)
    }

    /// Append one stored-message record (as `MessageView::encode` writes it); its physical
    /// offset field is set to where it lands. Returns that offset. The record is in the page
    /// cache, not yet on disk: see [`CommitLog::flush`].
    pub fn append(&mut self, record: &mut [u8]) -> Result<u64, Error> {
        let store_ms = MessageView::decode(record)
            .map_err(|e| Error::BadRecord(e.to_string()))?
            .0
            .store_timestamp;
        let len = record.len() as u64;
        if len + BLANK_LEN > self.segment_size {
            return Err(Error::TooLarge {
                len: record.len(),
                segment: self.segment_size,
            });
        }
        let need_new = match self.segments.last() {
            None => true,
            // RocketMQ's rule: a record leaves room for the blank record that seals the segment
            // (`END_FILE_MIN_BLANK_LENGTH`), so a slave of any implementation sees one.
            Some(s) => s.sealed || s.len + len + BLANK_LEN > self.segment_size,
        };
        if need_new {
            self.roll()?;
        }
        let i = self.segments.len() - 1;
        let seg = &mut self.segments[i];
        let offset = seg.start + seg.len;
        record[PHYSICAL_OFFSET_AT..PHYSICAL_OFFSET_AT + 8].copy_from_slice(&offset.to_be_bytes());
        seg.file
            .write_all_at(record, seg.len)
            .map_err(io(&seg.path))?;
        seg.len += len;
        seg.last_store_ms = seg.last_store_ms.max(store_ms);
        self.dirty_from = Some(self.dirty_from.map_or(i, |d| d.min(i)));
        Ok(offset)
    }

    /// Append records lying back to back in `buf` (`lens` their sizes, `store_ms` their newest
    /// store timestamp), as the store encodes them: one write when they fit the active segment,
    /// else one append each. Returns each record's offset.
    pub(crate) fn append_batch(
        &mut self,
        buf: &mut [u8],
        lens: &[usize],
        store_ms: i64,
    ) -> Result<Vec<u64>, Error> {
        let total = buf.len() as u64;
        let fits = self
            .segments
            .last()
            .is_some_and(|s| !s.sealed && s.len + total + BLANK_LEN <= self.segment_size);
        let mut offsets = Vec::with_capacity(lens.len());
        if !fits {
            let mut at = 0;
            for &len in lens {
                offsets.push(self.append(&mut buf[at..at + len])?);
                at += len;
            }
            return Ok(offsets);
        }
        let i = self.segments.len() - 1;
        let seg = &mut self.segments[i];
        let mut at = 0;
        for &len in lens {
            let offset = seg.start + seg.len + at as u64;
            buf[at + PHYSICAL_OFFSET_AT..at + PHYSICAL_OFFSET_AT + 8]
                .copy_from_slice(&offset.to_be_bytes());
            offsets.push(offset);
            at += len;
        }
        seg.file.write_all_at(buf, seg.len).map_err(io(&seg.path))?;
        seg.len += total;
        seg.last_store_ms = seg.last_store_ms.max(store_ms);
        self.dirty_from = Some(self.dirty_from.map_or(i, |d| d.min(i)));
        Ok(offsets)
    }

    /// Seal the active segment (blank record if 8 bytes remain) and start the next one.
    fn roll(&mut self) -> Result<(), Error> {
        let next = match self.segments.last() {
            None => 0,
            Some(s) => s.start + self.segment_size,
        };
        self.seal_active()?;
        self.open_segment(next)
    }

    /// Seal the active segment, if there is one and it is not sealed: a blank record if 8 bytes
    /// remain.
    fn seal_active(&mut self) -> Result<(), Error> {
        let last = self.segments.len().saturating_sub(1);
        if let Some(s) = self.segments.last_mut()
            && !s.sealed
        {
            let remaining = self.segment_size - s.len;
            if remaining >= BLANK_LEN {
                let mut blank = [0u8; 8];
                blank[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
                blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
                s.file.write_all_at(&blank, s.len).map_err(io(&s.path))?;
                // The blank must reach the disk with the next flush, before anything
                // acknowledged in the next segment: recovery cuts the log at a segment that
                // ends without one.
                self.dirty_from = Some(self.dirty_from.map_or(last, |d| d.min(last)));
            }
            s.sealed = true;
        }
        Ok(())
    }

    /// Create the segment starting at `next` and make it the active one.
    fn open_segment(&mut self, next: u64) -> Result<(), Error> {
        let path: Arc<Path> = self.dir.join(files::name(next)).into();
        let file = files::open(&*self.fs, &path, true)?;
        self.dir_dirty = true;
        self.segments.push(Segment {
            start: next,
            path,
            file,
            len: 0,
            sealed: false,
            last_store_ms: 0,
        });
        Ok(())
    }

    /// Whether the log holds no record: no segment, or one empty segment (a new slave, or one
    /// whose first record was cut on recovery).
    pub fn holds_nothing(&self) -> bool {
        match self.segments.as_slice() {
            [] => true,
            [only] => only.len == 0 && !only.sealed,
            _ => false,
        }
    }

    /// Start a log that holds nothing at `start`, a segment boundary (a new slave following a
    /// master from the master's last segment); an empty segment elsewhere is removed.
    pub(crate) fn start_at(&mut self, start: u64) -> Result<(), Error> {
        if !self.holds_nothing() || !start.is_multiple_of(self.segment_size) {
            return Err(Error::Corrupt(format!(
                "cannot start the log at {start}: it holds records, or {start} does not start a segment"
            )));
        }
        if let Some(old) = self.segments.first() {
            if old.start == start {
                return Ok(());
            }
            let old = self.segments.remove(0);
            self.dirty_from = None;
            self.fs.remove_file(&old.path).map_err(io(&old.path))?;
            self.dir_dirty = true;
        }
        self.open_segment(start)
    }

    /// Whether the active segment takes no more records: sealed, or full to its last byte.
    fn active_closed(&self) -> bool {
        self.segments
            .last()
            .is_none_or(|s| s.sealed || s.len >= self.segment_size)
    }

    /// Append records received from a master, as they are (their offsets already say where
    /// they go: the caller checked that they start at [`CommitLog::end`] and fit its segment).
    /// `store_ms` is their newest store timestamp.
    pub(crate) fn append_replica(&mut self, bytes: &[u8], store_ms: i64) -> Result<(), Error> {
        if self.active_closed() {
            self.roll()?;
        }
        let i = self.segments.len() - 1;
        let seg = &mut self.segments[i];
        if seg.len + bytes.len() as u64 > self.segment_size {
            return Err(Error::Corrupt(format!(
                "{} replicated bytes do not fit the segment at {}",
                bytes.len(),
                seg.start
            )));
        }
        seg.file
            .write_all_at(bytes, seg.len)
            .map_err(io(&seg.path))?;
        seg.len += bytes.len() as u64;
        seg.last_store_ms = seg.last_store_ms.max(store_ms);
        self.dirty_from = Some(self.dirty_from.map_or(i, |d| d.min(i)));
        Ok(())
    }

    /// Seal the active segment where it ends, as a master's blank record says (a slave).
    pub(crate) fn seal_replica(&mut self) -> Result<(), Error> {
        if self.active_closed() {
            self.roll()?;
        }
        self.seal_active()
    }

    /// Where `offset` is, for streaming to a slave: the segment as appended so far, and
    /// whether it is sealed (then its bytes past the records are the blank record and zeros).
    pub(crate) fn segment_for_replica(&self, offset: u64) -> Result<(SegmentRef, bool), Error> {
        let seg = self.segment_at(offset)?;
        let sealed = self
            .segments
            .iter()
            .rev()
            .find(|s| s.start == seg.start)
            .is_some_and(|s| s.sealed);
        Ok((seg, sealed))
    }

    /// fsync every segment written since the last flush (the sealed ones first), and the
    /// directory when segments were created, so that every record appended so far survives a
    /// machine crash.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.flush_job().run().map(|_| ())
    }

    /// What [`CommitLog::flush`] would do, to run outside a lock around the log.
    pub fn flush_job(&mut self) -> FlushJob {
        let files = match self.dirty_from.take() {
            Some(_) if self.skip_fsync => Vec::new(),
            Some(from) => self.segments[from..]
                .iter()
                .map(|s| (s.path.to_path_buf(), Arc::clone(&s.file)))
                .collect(),
            None => Vec::new(),
        };
        FlushJob {
            fs: Arc::clone(&self.fs),
            files,
            dir: if std::mem::take(&mut self.dir_dirty) {
                vec![self.dir.clone()]
            } else {
                Vec::new()
            },
            end: self.end(),
        }
    }

    /// The segment holding `offset`, as appended so far: a handle to read it with the log's
    /// lock released (a segment deleted meanwhile stays readable through it).
    pub(crate) fn segment_at(&self, offset: u64) -> Result<SegmentRef, Error> {
        // Segments are contiguous from the first: the one holding `offset` is found by index.
        let seg = offset
            .checked_sub(self.start())
            .map(|d| (d / self.segment_size) as usize)
            .and_then(|i| self.segments.get(i))
            .filter(|s| s.start <= offset && offset < s.start + self.segment_size)
            .ok_or_else(|| Error::Corrupt(format!("offset {offset} is not stored")))?;
        Ok(SegmentRef {
            start: seg.start,
            len: seg.len,
            path: Arc::clone(&seg.path),
            file: Arc::clone(&seg.file),
        })
    }

    /// Every segment as appended so far, oldest first: handles to read records with the log's
    /// lock released.
    pub(crate) fn segment_refs(&self) -> Vec<SegmentRef> {
        self.segments
            .iter()
            .map(|s| SegmentRef {
                start: s.start,
                len: s.len,
                path: Arc::clone(&s.path),
                file: Arc::clone(&s.file),
            })
            .collect()
    }

    /// Append `len` bytes at `offset` (within one segment) to `out`.
    pub fn read_into(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        self.segment_at(offset)?.read_into(offset, len, out)
    }

    /// The offset of the record after the one at `offset` of `len` bytes: the start of the next
    /// segment when the rest of this one is blank.
    pub fn next_record(&self, offset: u64, len: u64) -> u64 {
        let next = offset + len;
        let seg_start = offset - offset % self.segment_size;
        let seg_end = seg_start + self.segment_size;
        match self.segments.iter().find(|s| s.start == seg_start) {
            Some(s) if s.sealed && next >= s.start + s.len => seg_end,
            _ if seg_end - next < BLANK_LEN => seg_end,
            _ => next,
        }
    }

    /// `len` bytes at `offset` (within one segment).
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::with_capacity(len);
        self.read_into(offset, len, &mut buf)?;
        Ok(buf)
    }

    /// The record stored at `offset`.
    pub fn read_record(&self, offset: u64) -> Result<Vec<u8>, Error> {
        self.segment_at(offset)?.read_record(offset)
    }
}

/// One segment as far as it was appended when taken ([`CommitLog::segment_at`]): reads through
/// it need no lock on the log, and never reach past what was appended then (appended bytes
/// never change while the store runs).
#[derive(Clone)]
pub(crate) struct SegmentRef {
    start: u64,
    /// Bytes appended when taken.
    len: u64,
    path: Arc<Path>,
    file: Arc<dyn StoreFile>,
}

impl SegmentRef {
    /// The segment's start offset.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Bytes appended to the segment when taken.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether `offset` is in what was appended to this segment when taken.
    pub(crate) fn holds(&self, offset: u64) -> bool {
        self.start <= offset && offset - self.start < self.len
    }

    /// Append `len` bytes at log offset `offset` (within this segment) to `out`.
    pub(crate) fn read_into(
        &self,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let at = offset
            .checked_sub(self.start)
            .filter(|at| at.saturating_add(len as u64) <= self.len)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{len} bytes at {offset} are outside the stored {}..{}",
                    self.start,
                    self.start + self.len
                ))
            })?;
        let from = out.len();
        out.resize(from + len, 0);
        let read = self.file.read_exact_at(&mut out[from..], at);
        if read.is_err() {
            out.truncate(from);
        }
        read.map_err(io(&self.path))
    }

    /// The record stored at `offset`.
    pub(crate) fn read_record(&self, offset: u64) -> Result<Vec<u8>, Error> {
        let mut head = Vec::with_capacity(4);
        self.read_into(offset, 4, &mut head)?;
        let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let total = usize::try_from(total)
            .ok()
            .filter(|t| (4..=MAX_RECORD).contains(t))
            .ok_or_else(|| Error::Corrupt(format!("record size {total} at {offset}")))?;
        let mut record = Vec::with_capacity(total);
        self.read_into(offset, total, &mut record)?;
        Ok(record)
    }
}

/// Scan one segment file: returns the valid length, whether a blank record sealed it, the number
/// of valid records, why the scan stopped early (a record failed its checks), and the newest
/// store timestamp of its records.
fn scan(
    file: &dyn StoreFile,
    start: u64,
    segment_size: u64,
    path: &Path,
) -> Result<(u64, bool, u64, Option<String>, i64), Error> {
    let file_len = file.len().map_err(io(path))?;
    let mut r = BufReader::with_capacity(
        1 << 20,
        ReadFrom {
            file,
            pos: 0,
            len: file_len,
        },
    );
    let mut pos = 0u64;
    let mut records = 0u64;
    let mut newest = 0i64;
    let mut buf = Vec::new();
    loop {
        if pos >= file_len {
            // The end of the data: a segment with too little room left for a blank record was
            // sealed without one.
            return Ok((pos, segment_size - pos < BLANK_LEN, records, None, newest));
        }
        if pos + 4 > file_len {
            return Ok((
                pos,
                false,
                records,
                Some("a partial record header".into()),
                newest,
            ));
        }
        let mut head = [0u8; 8];
        let avail = (file_len - pos).min(8) as usize;
        r.read_exact(&mut head[..avail]).map_err(io(path))?;
        let total = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if avail == 8 && magic == BLANK_MAGIC && total as u64 == segment_size - pos {
            return Ok((pos, true, records, None, newest));
        }
        let Some(total) = usize::try_from(total)
            .ok()
            .filter(|t| (8..=MAX_RECORD).contains(t) && pos + *t as u64 <= file_len)
        else {
            return Ok((
                pos,
                false,
                records,
                Some(format!("record size {total}")),
                newest,
            ));
        };
        buf.clear();
        buf.extend_from_slice(&head[..avail]);
        buf.resize(total, 0);
        r.read_exact(&mut buf[avail..]).map_err(io(path))?;
        let why = match MessageView::decode(&buf) {
            Err(e) => Some(e.to_string()),
            Ok((m, _)) if m.body_crc != body_crc(m.body) => Some("body CRC mismatch".into()),
            Ok((m, _)) if m.physical_offset != (start + pos) as i64 => Some(format!(
                "record says offset {}, found at {}",
                m.physical_offset,
                start + pos
            )),
            Ok((m, _)) => {
                newest = newest.max(m.store_timestamp);
                None
            }
        };
        if let Some(why) = why {
            return Ok((pos, false, records, Some(why), newest));
        }
        records += 1;
        pos += total as u64;
    }
}
