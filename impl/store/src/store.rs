//! The message store: one CommitLog, a ConsumeQueue per topic queue dispatched from it, a flush
//! thread, and recovery.
//!
//! Layout under the store directory: `commitlog/` (segments), `consumequeue/<topic>/<queueId>/`
//! and `index/` (as RocketMQ), and `checkpoint` — the CommitLog offset below which every
//! ConsumeQueue entry is on disk. Records are dispatched to the [message index](crate::index)
//! too, which keeps its own coverage: on open the records past either are dispatched again, each
//! to what lacks it. On open the CommitLog is recovered, every ConsumeQueue is cut back to it, and the
//! records from the checkpoint on are dispatched again (entries already present are verified,
//! missing ones appended). Without a checkpoint or a `consumequeue/` directory, every queue is
//! rebuilt from the whole log — the queues of a deleted topic too, since its records stay in the
//! log ([`MessageStore::delete_topic`]); a queue offset starting again at 0 is the topic created
//! again after its deletion, and the queue indexes that one.
//!
//! Flushing runs on its own thread: with `SYNC_FLUSH` it wakes when a put asks, takes every
//! record appended so far into one set of fsyncs (group commit) and publishes the durable offset;
//! with `ASYNC_FLUSH` it flushes at an interval. ConsumeQueues, the index and the checkpoint are
//! flushed every `cq_flush_interval`. Putters wait for the durable offset through [`MessageStore::wait_flushed`].
//! A failed fsync stops the store from taking puts ([`Error::Failed`]): after one, Linux may
//! report later fsyncs as successful for pages it already dropped, so nothing written since can
//! be acknowledged as durable.
//!
//! Retention: [`MessageStore::clean`] (the broker calls it every `cleanResourceInterval`)
//! deletes the segments the model's `segments_to_delete` picks, oldest first, then moves every
//! ConsumeQueue's min offset to its first entry still in the log (deleting its files wholly
//! below) and deletes the index files wholly below. On open the queues follow the log's start
//! the same way, and a queue whose entries all point below it may start again at its first
//! record in the log (a rebuild, or entries lost with the power for records since deleted).
//! The share of the disk used is measured with every ConsumeQueue flush and every pass; above
//! `retention.disk_warning_ratio` puts answer [`Error::DiskFull`].
//!
//! One lock guards the log, the queues and the index; puts take it. Reads take it only to take
//! handles — of the queue's files over the scan and of every CommitLog segment, each as written
//! so far — and read the ConsumeQueue entries and copy the records with it released, so a pull
//! of cold data does not hold up sends; message-index queries read the index files the same
//! way. A segment retention deletes meanwhile stays readable through its handle; an
//! entry found pointing below the log's start (retention between deleting segments and moving
//! the queues' min) is skipped, and a pull finding only such answers OFFSET_TOO_SMALL.
//!
//! The ConsumeQueue files' handles are shared by every queue in one LRU of at most
//! `cq_max_open_files`: an idle queue's files are closed (clean ones first; a dirty one after
//! an fsync) and opened again when next read or appended to.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sextant_model::broker::{DelayLevels, GetStatus, invalid_topic, locate};
use sextant_model::store::{
    CleanInput, CleanPlan, FlushDiskType, Retention, put_allowed, segments_to_delete,
};
use sextant_remoting::message::{BLANK_MAGIC, MessageView};
use tokio::sync::watch;

use crate::commitlog::SegmentRef;
use crate::files::{ensure_dir, io};
use crate::fs::{Fs, LockGuard};
use crate::handles::{DEFAULT_MAX_OPEN_CQ_FILES, FileCache};
use crate::index::{IndexConfig, IndexRecovery, IndexStore, record_matches};
use crate::{
    CommitLog, ConsumeQueue, CqEntry, DEFAULT_ENTRIES_PER_FILE, DEFAULT_SEGMENT_SIZE, Error,
};

mod replica;
pub use replica::ReplicaAppend;

/// Body bytes one QUERY_MESSAGE answer holds at most (one record is always answered).
pub const MAX_QUERY_BYTES: usize = 4 * 1024 * 1024;
/// Index entries a query checks at most against their records: hash collisions and the
/// entries of records lost with a log tail are skipped, and the lookup widens up to this.
const MAX_QUERY_CANDIDATES: usize = 1024;
/// Record bytes a query reads at most to check candidates (what it answers included).
const MAX_QUERY_READ: usize = 4 * MAX_QUERY_BYTES;

/// How a store is laid out and flushed (RocketMQ's `MessageStoreConfig` names in brackets).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The store directory (`storePathRootDir`).
    pub dir: PathBuf,
    /// CommitLog segment size (`mappedFileSizeCommitLog`, 1 GiB).
    pub segment_size: u64,
    /// Entries per ConsumeQueue file (`mappedFileSizeConsumeQueue / 20`, 300 000).
    pub cq_entries_per_file: u64,
    /// ConsumeQueue files held open at most, across all queues (least recently used closed
    /// first; [`DEFAULT_MAX_OPEN_CQ_FILES`]). RocketMQ maps every one.
    pub cq_max_open_files: usize,
    /// `flushDiskType`.
    pub flush: FlushDiskType,
    /// How often ASYNC_FLUSH flushes the CommitLog (`flushIntervalCommitLog`, 500 ms).
    pub flush_interval: Duration,
    /// How often the ConsumeQueues are flushed (`flushIntervalConsumeQueue`, 1 s).
    pub cq_flush_interval: Duration,
    /// How long a SYNC_FLUSH put waits for its fsync (`syncFlushTimeout`, 5 s).
    pub sync_flush_timeout: Duration,
    /// The delay levels (`messageDelayLevel`), for the delivery time of delayed messages.
    pub delay_levels: DelayLevels,
    /// The message index (`messageIndexEnable`, `maxHashSlotNum`, `maxIndexNum`).
    pub index: IndexConfig,
    /// When CommitLog segments and what follows them are deleted, and when puts stop for a
    /// full disk (`fileReservedTime`, `deleteWhen`, `diskMaxUsedSpaceRatio`, …): see
    /// [`MessageStore::clean`].
    pub retention: Retention,
    /// The file system the store lives on ([`crate::fs::RealFs`]; a test's
    /// [`SimFs`](crate::sim::SimFs)).
    pub fs: Arc<dyn Fs>,
    /// A deliberately broken store, for the power-loss tests to show they catch it: the
    /// CommitLog's flushes skip their fsyncs (SYNC_FLUSH then acknowledges what is only in the
    /// page cache).
    #[cfg(feature = "sim")]
    pub sim_skip_commitlog_fsync: bool,
}

impl StoreConfig {
    /// RocketMQ's defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            cq_entries_per_file: DEFAULT_ENTRIES_PER_FILE,
            cq_max_open_files: DEFAULT_MAX_OPEN_CQ_FILES,
            flush: FlushDiskType::AsyncFlush,
            flush_interval: Duration::from_millis(500),
            cq_flush_interval: Duration::from_secs(1),
            sync_flush_timeout: Duration::from_secs(5),
            delay_levels: DelayLevels::default(),
            index: IndexConfig::default(),
            retention: Retention::default(),
            fs: crate::fs::real(),
            #[cfg(feature = "sim")]
            sim_skip_commitlog_fsync: false,
        }
    }
}

/// One message to put, and the tags code its ConsumeQueue entry gets (the tag's hash, or for a
/// delayed message its delivery time). The store sets the queue offset and the physical offset.
pub struct Put<'a> {
    /// The message, with its store timestamp set by the caller.
    pub msg: MessageView<'a>,
    /// The ConsumeQueue tags code.
    pub tags_code: i64,
}

/// Where a put message landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its CommitLog offset.
    pub physical_offset: u64,
    /// Its queue offset.
    pub queue_offset: u64,
    /// Its record size.
    pub size: u32,
}

/// What a put stored, and the CommitLog end just past it (what must be durable to ack it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// Each message, in order.
    pub stored: Vec<Stored>,
    /// The log end after the last one.
    pub end: u64,
}

/// A read of one queue.
#[derive(Clone, Copy, Debug)]
pub struct Get<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The queue.
    pub queue_id: u32,
    /// The first queue offset wanted.
    pub offset: u64,
    /// At most this many messages.
    pub max_msgs: usize,
    /// About this many bytes at most (one message is always returned if found).
    pub max_bytes: usize,
    /// Whether an offset outside the queue may be corrected (see
    /// `sextant_model::broker::locate`): a master, or a slave with `offsetCheckInSlave`.
    pub correct: bool,
}

/// What a read found (`GetMessageResult`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The store's status.
    pub status: GetStatus,
    /// Where the consumer pulls next.
    pub next_begin: u64,
    /// The queue's first offset.
    pub min: u64,
    /// The queue's end.
    pub max: u64,
    /// The records found, back to back, as stored.
    pub records: Vec<u8>,
    /// How many records.
    pub count: usize,
}

/// What [`MessageStore::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRecovery {
    /// The CommitLog's recovery.
    pub commitlog: crate::Recovery,
    /// ConsumeQueues opened.
    pub queues: usize,
    /// Records dispatched again from the checkpoint on.
    pub redispatched: u64,
    /// Whether every queue was rebuilt from the whole log (no checkpoint).
    pub rebuilt: bool,
    /// What opening the message index found and repaired.
    pub index: IndexRecovery,
    /// Records the index took on open (those past what it covered).
    pub indexed: u64,
}

/// What a clean pass ([`MessageStore::clean`]) decided and did.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanReport {
    /// The share of the disk used, as measured (or given).
    pub disk_used_ratio: f64,
    /// The model's decision (`sextant_model::store::segments_to_delete`).
    pub plan: CleanPlan,
    /// The start offsets of the CommitLog segments deleted.
    pub segments_deleted: Vec<u64>,
    /// ConsumeQueue files deleted (their entries all pointed below the log's new start).
    pub cq_files_deleted: usize,
    /// Index files deleted.
    pub index_files_deleted: usize,
    /// The CommitLog's first offset after the pass.
    pub log_start: u64,
}

/// What a QUERY_MESSAGE found (`QueryMessageResult`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryResult {
    /// The records, back to back as stored, by CommitLog offset.
    pub records: Vec<u8>,
    /// How many records.
    pub count: usize,
    /// The newest index file's end time (`indexLastUpdateTimestamp`).
    pub index_last_update_timestamp: i64,
    /// The newest index file's end offset (`indexLastUpdatePhyoffset`).
    pub index_last_update_phy_offset: i64,
}

struct Inner {
    fs: Arc<dyn Fs>,
    log: CommitLog,
    queues: HashMap<String, BTreeMap<u32, ConsumeQueue>>,
    index: IndexStore,
    buf: Vec<u8>,
    cq_root: PathBuf,
    per_file: u64,
    /// The ConsumeQueues' open file handles, bounded.
    cq_cache: Arc<FileCache>,
    delay_levels: DelayLevels,
    closed: bool,
    /// Why a flush failed, if one did.
    failed: Option<String>,
    /// A slave's bytes received past its complete records.
    replica: replica::ReplicaTail,
}

#[derive(Default)]
struct Signal {
    requested: bool,
    stop: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    flushed: watch::Sender<u64>,
    /// The CommitLog's end, published after every append (for masters streaming to slaves).
    log_end: watch::Sender<u64>,
    signal: Mutex<Signal>,
    wake: Condvar,
    config: StoreConfig,
    checkpoint: PathBuf,
    /// Set when a CommitLog flush failed: waiting puts give up at once.
    failed: AtomicBool,
    /// The share of the disk used at the last measure (`f64` bits): puts stop above the
    /// warning ratio.
    disk_used: AtomicU64,
    /// Holds the store's lock while open; dropped by `close`.
    lock: Mutex<Option<LockGuard>>,
    /// The last checkpoint written.
    covered: Mutex<Option<u64>>,
    /// Held through a flush of the ConsumeQueues and the index: index flushes write slots and
    /// headers from what they took, and must not overtake one another.
    flushing: Mutex<()>,
    /// The old locking, for a benchmark's before and after: ConsumeQueue and CommitLog reads
    /// under the lock.
    reads_under_lock: AtomicBool,
}

/// The broker's message store: see the module documentation.
pub struct MessageStore {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as an I/O error would (every
    // step is append-only), so a poisoned lock is used as is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MessageStore {
    /// Open (creating if needed) the store and recover it; starts the flush thread.
    pub fn open(config: StoreConfig) -> Result<(MessageStore, StoreRecovery), Error> {
        // One process per store: an advisory lock, released by the OS however the process ends.
        let fs = Arc::clone(&config.fs);
        ensure_dir(&*fs, &config.dir)?;
        let lock_path = config.dir.join("lock");
        let lock_file = match fs.lock(&lock_path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::Locked(config.dir.clone()));
            }
            Err(e) => return Err(io(&lock_path)(e)),
        };
        #[allow(unused_mut)]
        let (mut log, commitlog) = CommitLog::open_in(
            Arc::clone(&fs),
            config.dir.join("commitlog"),
            config.segment_size,
        )?;
        #[cfg(feature = "sim")]
        log.set_skip_fsync(config.sim_skip_commitlog_fsync);
        let cq_root = config.dir.join("consumequeue");
        let checkpoint = config.dir.join("checkpoint");
        let saved = read_checkpoint(&*fs, &checkpoint)?;
        let cq_exists = fs.kind(&cq_root).map_err(io(&cq_root))?.is_some();
        let rebuilt = saved.is_none() || !cq_exists;
        if rebuilt && cq_exists {
            fs.remove_dir_all(&cq_root).map_err(io(&cq_root))?;
            fs.sync_dir(&config.dir).map_err(io(&config.dir))?;
        }
        let (index, index_recovery) = IndexStore::open_in(
            Arc::clone(&fs),
            config.dir.join("index"),
            config.index.clone(),
            log.end(),
        )?;
        let mut inner = Inner {
            fs,
            log,
            queues: HashMap::new(),
            index,
            buf: Vec::new(),
            cq_root,
            per_file: config.cq_entries_per_file,
            cq_cache: FileCache::new(config.cq_max_open_files),
            delay_levels: config.delay_levels.clone(),
            closed: false,
            failed: None,
            replica: replica::ReplicaTail::default(),
        };
        inner.open_queues()?;
        let end = inner.log.end();
        let log_start = inner.log.start();
        for q in inner.queues.values_mut().flat_map(|m| m.values_mut()) {
            q.truncate_to(end)?;
            // Retention may have deleted segments the queue's first entries point into.
            q.trim(log_start)?;
        }
        let from = if rebuilt {
            inner.log.start()
        } else {
            saved.unwrap_or(0).min(end).max(inner.log.start())
        };
        // The checkpoint is below the log's start: the entries between were maybe not on
        // disk, and their records are deleted.
        let past_deleted = saved.is_some_and(|c| c < inner.log.start());
        let (redispatched, indexed) = inner.redispatch(from, rebuilt, past_deleted)?;
        let queues = inner.queues.values().map(BTreeMap::len).sum();
        let recovery = StoreRecovery {
            commitlog,
            queues,
            redispatched,
            rebuilt,
            index: index_recovery,
            indexed,
        };
        let (flushed, _) = watch::channel(end);
        let (log_end, _) = watch::channel(end);
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            flushed,
            log_end,
            signal: Mutex::default(),
            wake: Condvar::new(),
            config,
            checkpoint,
            failed: AtomicBool::new(false),
            disk_used: AtomicU64::new(0f64.to_bits()),
            lock: Mutex::new(Some(lock_file)),
            covered: Mutex::new(None),
            flushing: Mutex::new(()),
            reads_under_lock: AtomicBool::new(false),
        });
        shared.flush_queues()?;
        shared.measure_disk();
        let s = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("sextant-flush".into())
            .spawn(move || s.flush_loop())
            .map_err(io(&shared.config.dir))?;
        Ok((
            MessageStore {
                shared,
                flusher: Mutex::new(Some(flusher)),
            },
            recovery,
        ))
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Append `msgs` (one send, or the messages of a batch) and dispatch them to their queues.
    pub fn put(&self, msgs: &mut [Put<'_>]) -> Result<PutResult, Error> {
        let mut inner = lock(&self.shared.inner);
        let inner = &mut *inner;
        if inner.closed {
            return Err(Error::Closed);
        }
        if let Some(why) = &inner.failed {
            return Err(Error::Failed(why.clone()));
        }
        let used = f64::from_bits(self.shared.disk_used.load(Ordering::Relaxed));
        put_allowed(used, &self.shared.config.retention).map_err(|d| Error::DiskFull {
            used_ratio: d.used_ratio,
        })?;
        // Queue offsets first (consecutive per queue within the put), then every record encoded
        // back to back and appended with one write, then the queues' entries.
        let mut next: Vec<(&str, u32, u64)> = Vec::new();
        let mut lens = Vec::with_capacity(msgs.len());
        inner.buf.clear();
        for p in msgs.iter_mut() {
            let topic = p.msg.topic;
            let qid = u32::try_from(p.msg.queue_id)
                .map_err(|_| Error::BadRecord(format!("queue id {}", p.msg.queue_id)))?;
            let queue_offset = match next.iter_mut().find(|(t, q, _)| *t == topic && *q == qid) {
                Some(e) => {
                    e.2 += 1;
                    e.2 - 1
                }
                None => {
                    let first = inner.queue(topic, qid)?.max_offset();
                    next.push((topic, qid, first + 1));
                    first
                }
            };
            p.msg.queue_offset = queue_offset as i64;
            let start = inner.buf.len();
            p.msg
                .encode(&mut inner.buf)
                .map_err(|e| Error::BadRecord(e.to_string()))?;
            lens.push(inner.buf.len() - start);
        }
        let newest = msgs
            .iter()
            .map(|p| p.msg.store_timestamp)
            .max()
            .unwrap_or(0);
        let offsets = inner.log.append_batch(&mut inner.buf, &lens, newest)?;
        let mut stored = Vec::with_capacity(msgs.len());
        let mut run: Vec<CqEntry> = Vec::new();
        for (p, offset) in msgs.iter_mut().zip(&offsets) {
            p.msg.physical_offset = *offset as i64;
            inner.index.dispatch(&p.msg, *offset);
        }
        inner.index.finish();
        for (i, p) in msgs.iter().enumerate() {
            let entry = CqEntry {
                commitlog_offset: offsets[i],
                size: lens[i] as u32,
                tags_code: p.tags_code,
            };
            stored.push(Stored {
                physical_offset: offsets[i],
                queue_offset: p.msg.queue_offset as u64,
                size: lens[i] as u32,
            });
            run.push(entry);
            let last_of_run = msgs_key(msgs, i) != msgs_key(msgs, i + 1);
            if last_of_run {
                let first = stored[i + 1 - run.len()].queue_offset;
                let qid = p.msg.queue_id as u32;
                inner.queue(p.msg.topic, qid)?.append_batch(first, &run)?;
                run.clear();
            }
        }
        let end = inner.log.end();
        self.shared.publish_log_end(end);
        if self.shared.config.flush == FlushDiskType::SyncFlush {
            lock(&self.shared.signal).requested = true;
            self.shared.wake.notify_one();
        }
        Ok(PutResult { stored, end })
    }

    /// The CommitLog offset that is on disk.
    pub fn flushed(&self) -> u64 {
        *self.shared.flushed.borrow()
    }

    /// Wait until the log is durable up to `end`, at most `timeout`; whether it is. Gives up
    /// at once when a flush failed (the log past the durable offset never will be).
    pub async fn wait_flushed(&self, end: u64, timeout: Duration) -> bool {
        let mut rx = self.shared.flushed.subscribe();
        let failed = &self.shared.failed;
        tokio::time::timeout(
            timeout,
            rx.wait_for(|f| *f >= end || failed.load(Ordering::Acquire)),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|f| *f >= end))
    }

    /// Read what `req` asks for, keeping the messages whose tags code passes `filter`.
    pub fn get(&self, req: &Get<'_>, filter: &dyn Fn(i64) -> bool) -> Result<GetResult, Error> {
        let Get {
            topic,
            queue_id,
            offset,
            max_msgs,
            max_bytes,
            correct,
        } = *req;
        let inner = lock(&self.shared.inner);
        let cq = inner.queues.get(topic).and_then(|m| m.get(&queue_id));
        let (min, max) = cq.map_or((0, 0), |q| (q.min_offset(), q.max_offset()));
        let mut result = GetResult {
            status: GetStatus::Found,
            next_begin: offset,
            min,
            max,
            records: Vec::new(),
            count: 0,
        };
        if let Err((status, next)) = locate(offset, min, max, correct) {
            result.status = status;
            result.next_begin = next;
            return Ok(result);
        }
        let cq = cq.expect("a queue with messages exists");
        let log_start = inner.log.start();
        // Entries scanned at most (RocketMQ: maxFilterMessageCount / 20).
        let scan_limit = 800.max(max_msgs as u64);
        // Under the lock only handles: the queue's files over the scan, every segment.
        let slices = cq.slices(offset, scan_limit.min(max - offset))?;
        let segs = inner.log.segment_refs();
        let held = self
            .shared
            .reads_under_lock
            .load(Ordering::Relaxed)
            .then_some(inner);
        let mut pos = offset;
        let mut entries = Vec::with_capacity(max_msgs.min(64));
        // What to read: (index into `segs`, offset, size).
        let mut reads: Vec<(usize, u64, usize)> = Vec::with_capacity(max_msgs.min(64));
        let mut bytes = 0usize;
        let mut removed = false;
        let mut slice = 0;
        'scan: while pos < max && pos - offset < scan_limit {
            while slices.get(slice).is_some_and(|s| s.end <= pos) {
                slice += 1;
            }
            let Some(sl) = slices.get(slice) else { break };
            entries.clear();
            sl.read(pos, max_msgs.clamp(1, 64), &mut entries)?;
            if entries.is_empty() {
                break;
            }
            for e in &entries {
                let size = e.size as usize;
                if !reads.is_empty() && bytes + size > max_bytes {
                    break 'scan;
                }
                pos += 1;
                if e.commitlog_offset < log_start {
                    // Retention deleted its segment and has not moved the queue's min yet.
                    removed = true;
                    continue;
                }
                if filter(e.tags_code) {
                    let seg = segs
                        .partition_point(|s| s.start() <= e.commitlog_offset)
                        .checked_sub(1)
                        .filter(|i| segs[*i].holds(e.commitlog_offset))
                        .ok_or_else(|| {
                            Error::Corrupt(format!("offset {} is not stored", e.commitlog_offset))
                        })?;
                    reads.push((seg, e.commitlog_offset, size));
                    bytes += size;
                    if reads.len() >= max_msgs {
                        break 'scan;
                    }
                }
            }
        }
        let _held = held;
        result.records.reserve_exact(bytes);
        // Records back to back in one segment are read with one call.
        let mut i = 0;
        while i < reads.len() {
            let (seg, at, mut len) = reads[i];
            i += 1;
            while let Some(&(s, a, l)) = reads.get(i)
                && s == seg
                && a == at + len as u64
            {
                len += l;
                i += 1;
            }
            segs[seg].read_into(at, len, &mut result.records)?;
        }
        result.count = reads.len();
        result.next_begin = pos;
        if result.count == 0 {
            if removed {
                result.status = GetStatus::OffsetTooSmall;
                result.next_begin = if correct { pos } else { offset };
            } else {
                result.status = GetStatus::NoMatchedMessage;
            }
        }
        Ok(result)
    }

    /// Take the old locking (CommitLog reads under the put lock) or the new one: for a
    /// benchmark that shows the difference in one run, not for brokers.
    #[doc(hidden)]
    pub fn bench_reads_under_lock(&self, on: bool) {
        self.shared.reads_under_lock.store(on, Ordering::Relaxed);
    }

    /// The queue's `[min, max)` offsets (`(0, 0)` for a queue never written).
    pub fn offsets(&self, topic: &str, queue_id: u32) -> (u64, u64) {
        let inner = lock(&self.shared.inner);
        inner
            .queues
            .get(topic)
            .and_then(|m| m.get(&queue_id))
            .map_or((0, 0), |q| (q.min_offset(), q.max_offset()))
    }

    /// The first queue offset whose message was stored at or after `timestamp` (ms); the queue's
    /// end when none was.
    pub fn offset_by_time(&self, topic: &str, queue_id: u32, timestamp: i64) -> Result<u64, Error> {
        let (mut lo, mut hi) = self.offsets(topic, queue_id);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The lock for the entry and its segment; the record's head is read without it.
            let at = {
                let inner = lock(&self.shared.inner);
                let Some(cq) = inner.queues.get(topic).and_then(|m| m.get(&queue_id)) else {
                    return Ok(lo);
                };
                match cq.get(mid)? {
                    Some(e) if e.commitlog_offset >= inner.log.start() => Some((
                        inner.log.segment_at(e.commitlog_offset)?,
                        e.commitlog_offset,
                    )),
                    // Trimmed or deleted by retention meanwhile: older than anything kept.
                    _ => None,
                }
            };
            let older = match at {
                Some((seg, offset)) => store_time_in(&seg, offset)? < timestamp,
                None => true,
            };
            if older {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The record at `physical_offset` (e.g. a message a consumer sends back).
    pub fn read_record(&self, physical_offset: u64) -> Result<Vec<u8>, Error> {
        let inner = lock(&self.shared.inner);
        let seg = inner.log.segment_at(physical_offset)?;
        let _held = self
            .shared
            .reads_under_lock
            .load(Ordering::Relaxed)
            .then_some(inner);
        seg.read_record(physical_offset)
    }

    /// The messages of `topic` with key `key` (a `KEYS` token or the `UNIQ_KEY`) stored within
    /// `[begin, end]` (ms), at most `max_num` (RocketMQ's `queryMessage`): the newest the index
    /// names whose records are stored under `topic` with that key, as many as fit
    /// [`MAX_QUERY_BYTES`] (one at least), answered by CommitLog offset. Hash collisions and
    /// entries of records lost with a log tail are read and skipped; the lookup widens until
    /// `max_num` match or the index has no more, checking at most 1024 entries and reading at
    /// most 16 MiB of records.
    pub fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> Result<QueryResult, Error> {
        let (ts, phy) = lock(&self.shared.inner).index.last_update();
        let mut found: Vec<(u64, Vec<u8>)> = Vec::new();
        let (mut answered, mut read) = (0, 0);
        let mut checked = 0;
        let mut limit = max_num.min(MAX_QUERY_CANDIDATES);
        'widen: while found.len() < max_num {
            // The same walk with a higher limit: the first `checked` are the same offsets.
            // The lock only for handles of the index files and the segments; the index and
            // the records are read without it.
            let (index, segs) = {
                let inner = lock(&self.shared.inner);
                (inner.index.view(), inner.log.segment_refs())
            };
            let all = index.lookup(topic, key, begin, end, limit)?;
            let n = all.len();
            let candidates: Vec<(u64, Option<&SegmentRef>)> = all
                .get(checked..)
                .unwrap_or_default()
                .iter()
                .map(|&o| {
                    let seg = segs
                        .partition_point(|s| s.start() <= o)
                        .checked_sub(1)
                        .map(|i| &segs[i])
                        .filter(|s| s.holds(o));
                    (o, seg)
                })
                .collect();
            for (offset, seg) in candidates {
                if found.len() >= max_num || read >= MAX_QUERY_READ {
                    break 'widen;
                }
                let Some(Ok(record)) = seg.map(|s| s.read_record(offset)) else {
                    continue;
                };
                read += record.len();
                if let Ok((m, _)) = MessageView::decode(&record)
                    && m.physical_offset == offset as i64
                    && record_matches(&m, topic, key)
                {
                    if !found.is_empty() && answered + record.len() > MAX_QUERY_BYTES {
                        break 'widen;
                    }
                    answered += record.len();
                    found.push((offset, record));
                }
            }
            checked = n;
            if n < limit || limit >= MAX_QUERY_CANDIDATES {
                break;
            }
            limit = (limit * 4).min(MAX_QUERY_CANDIDATES);
        }
        found.sort_unstable_by_key(|(offset, _)| *offset);
        let mut records = Vec::with_capacity(answered);
        for (_, record) in &found {
            records.extend_from_slice(record);
        }
        Ok(QueryResult {
            records,
            count: found.len(),
            index_last_update_timestamp: ts,
            index_last_update_phy_offset: phy,
        })
    }

    /// The CommitLog's `[start, end)` (RocketMQ's `commitLogMinOffset`, `commitLogMaxOffset`).
    pub fn log_offsets(&self) -> (u64, u64) {
        let inner = lock(&self.shared.inner);
        (inner.log.start(), inner.log.end())
    }

    /// The store timestamp of the message at queue offset `offset` (RocketMQ's
    /// `getMessageStoreTimeStamp`); `None` when the queue does not index that offset. Reads only
    /// the head of the record.
    pub fn store_time(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<Option<i64>, Error> {
        let (seg, at) = {
            let inner = lock(&self.shared.inner);
            let Some(cq) = inner.queues.get(topic).and_then(|m| m.get(&queue_id)) else {
                return Ok(None);
            };
            let Some(e) = cq.get(offset)? else {
                return Ok(None);
            };
            (
                inner.log.segment_at(e.commitlog_offset)?,
                e.commitlog_offset,
            )
        };
        store_time_in(&seg, at).map(Some)
    }

    /// The store timestamp of the first message in the CommitLog (RocketMQ's
    /// `getEarliestMessageTime`); `None` for an empty log.
    pub fn earliest_store_time(&self) -> Result<Option<i64>, Error> {
        let seg = {
            let inner = lock(&self.shared.inner);
            let (start, end) = (inner.log.start(), inner.log.end());
            if start >= end {
                return Ok(None);
            }
            inner.log.segment_at(start)?
        };
        store_time_in(&seg, seg.start()).map(Some)
    }

    /// Forget `topic`'s ConsumeQueues and delete their directory (RocketMQ's `deleteTopics`);
    /// its messages stay in the CommitLog. Returns whether the topic had queues. A later put to
    /// the topic starts a new queue at offset 0.
    ///
    /// Every queue is flushed and the checkpoint moved to the log's end first, under the store
    /// lock: recovery then never dispatches the deleted topic's records again, which would land
    /// past the end of queues that no longer exist. (A rebuild from the whole log, with no
    /// checkpoint, does bring a deleted topic's queues back; see [`MessageStore::open`].)
    pub fn delete_topic(&self, topic: &str) -> Result<bool, Error> {
        let mut inner = lock(&self.shared.inner);
        if inner.closed {
            return Err(Error::Closed);
        }
        let end = inner.log.end();
        for q in inner.queues.values_mut().flat_map(|m| m.values_mut()) {
            q.flush()?;
        }
        self.shared.advance_checkpoint(end)?;
        let had = inner.queues.remove(topic).is_some();
        let dir = inner.cq_root.join(topic);
        if invalid_topic(topic).is_none() && inner.fs.kind(&dir).map_err(io(&dir))? == Some(true) {
            inner.fs.remove_dir_all(&dir).map_err(io(&dir))?;
            inner
                .fs
                .sync_dir(&inner.cq_root)
                .map_err(io(&inner.cq_root))?;
        }
        Ok(had)
    }

    /// Every topic with a queue, and its queue ids.
    pub fn topics(&self) -> BTreeMap<String, Vec<u32>> {
        lock(&self.shared.inner)
            .queues
            .iter()
            .map(|(t, m)| (t.clone(), m.keys().copied().collect()))
            .collect()
    }

    /// Measure the share of the store's disk used now (statvfs on the store directory; a
    /// [`SimFs`](crate::sim::SimFs) answers what its test set) and keep it for puts, which are
    /// refused with [`Error::DiskFull`] above `retention.disk_warning_ratio`. The flush thread
    /// measures with every ConsumeQueue flush (`cq_flush_interval`) and [`MessageStore::clean`]
    /// with every pass; this is for a caller that needs it now.
    pub fn check_disk(&self) -> Result<f64, Error> {
        let dir = &self.shared.config.dir;
        let used = self.shared.config.fs.used_ratio(dir).map_err(io(dir))?;
        self.shared
            .disk_used
            .store(used.to_bits(), Ordering::Relaxed);
        Ok(used)
    }

    /// One retention pass (RocketMQ's `CleanCommitLogService` then `CleanConsumeQueueService`,
    /// run by the broker every `cleanResourceInterval`, 10 s) at `now_ms`, `hour_of_day` being
    /// the hour now (0–23) for `deleteWhen`: measures the disk, then [`MessageStore::clean_with`].
    pub fn clean(&self, now_ms: i64, hour_of_day: u32) -> Result<CleanReport, Error> {
        // A disk that cannot be measured counts as RocketMQ's -1: a pass of expired segments.
        let used = self.check_disk().unwrap_or(-1.0);
        self.clean_with(CleanInput {
            now_ms,
            hour_of_day,
            disk_used_ratio: used,
            manual: false,
            min_needed_offset: u64::MAX,
        })
    }

    /// One retention pass on what `input` says: the CommitLog segments
    /// `sextant_model::store::segments_to_delete` picks are deleted oldest first (the store lock
    /// taken for each, so puts and reads go on between), then every ConsumeQueue follows the new
    /// log start (files wholly below it deleted, its min offset moved to its first entry at or
    /// above it — a pull below answers OFFSET_TOO_SMALL, the broker's OFFSET_MOVED, with the new
    /// min), and so do the index files. Every record the store holds is dispatched when it is
    /// put, so nothing of the store's own holds a segment back (`min_needed_offset` is for a
    /// caller's reader, e.g. a slave still catching up).
    pub fn clean_with(&self, input: CleanInput) -> Result<CleanReport, Error> {
        let plan = {
            let inner = lock(&self.shared.inner);
            if inner.closed {
                return Err(Error::Closed);
            }
            segments_to_delete(
                &inner.log.segment_infos(),
                input,
                &self.shared.config.retention,
            )
        };
        let mut report = CleanReport {
            disk_used_ratio: input.disk_used_ratio,
            plan,
            segments_deleted: Vec::new(),
            cq_files_deleted: 0,
            index_files_deleted: 0,
            log_start: 0,
        };
        for start in &report.plan.delete {
            if !lock(&self.shared.inner).log.delete_oldest(*start)? {
                break;
            }
            report.segments_deleted.push(*start);
        }
        let mut inner = lock(&self.shared.inner);
        let log_start = inner.log.start();
        report.log_start = log_start;
        if !report.segments_deleted.is_empty() {
            for q in inner.queues.values_mut().flat_map(|m| m.values_mut()) {
                report.cq_files_deleted += q.trim(log_start)?;
            }
            report.index_files_deleted = inner.index.delete_below(log_start)?;
        }
        Ok(report)
    }

    /// Flush everything now: the CommitLog, the ConsumeQueues, the checkpoint.
    pub fn flush(&self) -> Result<(), Error> {
        self.shared.flush_log()?;
        self.shared.flush_queues()
    }

    /// Refuse further puts, stop the flush thread after a last flush of everything, and
    /// release the directory for another process. Idempotent; also run on drop.
    pub fn close(&self) {
        lock(&self.shared.inner).closed = true;
        lock(&self.shared.signal).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.flusher).take() {
            let _ = t.join();
        }
        lock(&self.shared.lock).take();
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// Publish the CommitLog's end (it only grows while the store runs).
    fn publish_log_end(&self, end: u64) {
        self.log_end.send_if_modified(|e| {
            let newer = end > *e;
            if newer {
                *e = end;
            }
            newer
        });
    }

    fn flush_loop(&self) {
        let mut last_cq = Instant::now();
        let sync = self.config.flush == FlushDiskType::SyncFlush;
        loop {
            let stop = {
                let mut s = lock(&self.signal);
                if !s.requested && !s.stop {
                    let cq_left = self
                        .config
                        .cq_flush_interval
                        .saturating_sub(last_cq.elapsed());
                    let wait = if sync {
                        cq_left
                    } else {
                        cq_left.min(self.config.flush_interval)
                    };
                    s = self
                        .wake
                        .wait_timeout(s, wait.max(Duration::from_millis(1)))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                s.requested = false;
                s.stop
            };
            if let Err(e) = self.flush_log() {
                tracing::error!(error = %e, "commit log flush failed");
            }
            if stop || last_cq.elapsed() >= self.config.cq_flush_interval {
                if let Err(e) = self.flush_queues() {
                    tracing::error!(error = %e, "consume queue flush failed");
                }
                self.measure_disk();
                last_cq = Instant::now();
            }
            if stop {
                return;
            }
        }
    }

    /// Measure the disk for the put check; a failed measure keeps the last one.
    fn measure_disk(&self) {
        match self.config.fs.used_ratio(&self.config.dir) {
            Ok(used) => self.disk_used.store(used.to_bits(), Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "disk use not measured"),
        }
    }

    /// fsync the CommitLog outside the lock (group commit) and publish the durable offset.
    fn flush_log(&self) -> Result<(), Error> {
        if self.failed.load(Ordering::Acquire) {
            // The failed job took what was dirty: a later one would sync nothing and still
            // report the log's end as durable.
            return Err(Error::Failed("an earlier CommitLog flush failed".into()));
        }
        let job = lock(&self.inner).log.flush_job();
        let end = match job.run() {
            Ok(end) => end,
            Err(e) => {
                // Never acknowledge past a failed fsync: stop taking puts; the durable offset
                // stays where it was, and waiting puts give up (FLUSH_DISK_TIMEOUT).
                lock(&self.inner)
                    .failed
                    .get_or_insert_with(|| e.to_string());
                self.failed.store(true, Ordering::Release);
                self.flushed.send_modify(|_| {});
                return Err(e);
            }
        };
        self.flushed.send_if_modified(|f| {
            let newer = end > *f;
            if newer {
                *f = end;
            }
            newer
        });
        Ok(())
    }

    /// fsync the ConsumeQueues, then record in the checkpoint how far they cover the log; make
    /// the message index durable (its headers say how far it covers the log). A failed index
    /// flush stops the index, not the store.
    fn flush_queues(&self) -> Result<(), Error> {
        let _one_at_a_time = lock(&self.flushing);
        // Take the fsyncs under the lock, run them outside it (puts go on meanwhile).
        let (covered, jobs, index_job, cache) = {
            let mut inner = lock(&self.inner);
            let end = inner.log.end();
            let jobs: Vec<_> = inner
                .queues
                .values_mut()
                .flat_map(|m| m.values_mut())
                .map(ConsumeQueue::flush_job)
                .collect();
            (
                end,
                jobs,
                inner.index.flush_job(),
                Arc::clone(&inner.cq_cache),
            )
        };
        let indexed = index_job.run();
        if let Err(e) = &indexed {
            lock(&self.inner).index.fail(e.to_string());
        }
        for job in jobs {
            if let Err(e) = job.run() {
                // What that job took is no longer dirty: a later flush would not sync it again,
                // so the checkpoint stops here for good (recovery dispatches from it again).
                cache.fail(e.to_string());
                return Err(e);
            }
        }
        // A handle closed for the cap whose fsync failed: the same.
        if let Some(why) = cache.failed() {
            return Err(Error::Failed(format!("a ConsumeQueue fsync failed: {why}")));
        }
        self.advance_checkpoint(covered)?;
        indexed
    }

    /// Record that every ConsumeQueue entry below `covered` is on disk. The checkpoint only moves
    /// forward: a flush that took its jobs before a [`MessageStore::delete_topic`] must not move
    /// it back behind the deleted topic's records.
    fn advance_checkpoint(&self, covered: u64) -> Result<(), Error> {
        let mut last = lock(&self.covered);
        if last.is_none_or(|l| covered > l) {
            write_checkpoint(&*self.config.fs, &self.checkpoint, covered)?;
            *last = Some(covered);
        }
        Ok(())
    }
}

impl Inner {
    fn queue(&mut self, topic: &str, qid: u32) -> Result<&mut ConsumeQueue, Error> {
        if !self.queues.get(topic).is_some_and(|m| m.contains_key(&qid)) {
            if let Some(why) = invalid_topic(topic) {
                return Err(Error::BadRecord(format!("topic {topic:?}: {why}")));
            }
            let dir = self.cq_root.join(topic).join(qid.to_string());
            let q = ConsumeQueue::open_cached(
                Arc::clone(&self.fs),
                &dir,
                self.per_file,
                Arc::clone(&self.cq_cache),
            )?;
            self.queues
                .entry(topic.to_owned())
                .or_default()
                .insert(qid, q);
        }
        Ok(self
            .queues
            .get_mut(topic)
            .and_then(|m| m.get_mut(&qid))
            .expect("just inserted"))
    }

    fn open_queues(&mut self) -> Result<(), Error> {
        let root = self.cq_root.clone();
        let fs = Arc::clone(&self.fs);
        ensure_dir(&*fs, &root)?;
        for t in fs.list(&root).map_err(io(&root))? {
            let topic = t.name;
            if invalid_topic(&topic).is_some() || !t.is_dir {
                continue;
            }
            let tdir = root.join(&topic);
            for q in fs.list(&tdir).map_err(io(&tdir))? {
                if let Ok(qid) = q.name.parse::<u32>()
                    && q.is_dir
                {
                    let cq = ConsumeQueue::open_cached(
                        Arc::clone(&fs),
                        tdir.join(&q.name),
                        self.per_file,
                        Arc::clone(&self.cq_cache),
                    )?;
                    self.queues
                        .entry(topic.clone())
                        .or_default()
                        .insert(qid, cq);
                }
            }
        }
        Ok(())
    }

    /// Dispatch every record from `cq_from` to the log's end again to the ConsumeQueues, and
    /// every record the message index lacks to the index (from where it stopped, which may be
    /// before `cq_from` or after it). When `rebuilding` (every queue from the whole log), a
    /// queue offset that starts again at 0 is a topic deleted and created again
    /// ([`MessageStore::delete_topic`]): the queue is emptied and indexes the new one. When
    /// rebuilding or `past_deleted` (the checkpoint is below the log's start), a queue whose
    /// entries all point below the log's start may lack the last few: it starts again at its
    /// first record in the log. Returns the ConsumeQueue entries appended and the records
    /// indexed.
    fn redispatch(
        &mut self,
        cq_from: u64,
        rebuilding: bool,
        past_deleted: bool,
    ) -> Result<(u64, u64), Error> {
        let end = self.log.end();
        let seg = self.log.segment_size();
        let from = match self.index.resume_from() {
            Some(i) => cq_from.min(i.max(self.log.start())),
            None => cq_from,
        };
        let mut at = from;
        let mut n = 0;
        let mut indexed = 0;
        while at < end {
            // A checkpoint taken at the log's end may now be where a blank record seals its
            // segment: the next record is in the next segment.
            at = self.log.next_record(at, 0);
            if at >= end {
                break;
            }
            let seg_end = at - at % seg + seg;
            if seg_end - at < 8 {
                at = seg_end;
                continue;
            }
            let head = self.log.read(at, 8)?;
            if i32::from_be_bytes([head[4], head[5], head[6], head[7]]) == BLANK_MAGIC {
                at = seg_end;
                continue;
            }
            let record = self.log.read_record(at)?;
            let (m, size) = MessageView::decode(&record)
                .map_err(|e| Error::Corrupt(format!("at {at}: {e}")))?;
            if sextant_model::store::indexed(m.sys_flag) && self.index.dispatch(&m, at) {
                indexed += 1;
            }
            // Before the checkpoint, or a transaction half (a slave of a RocketMQ master
            // stores them; they have no ConsumeQueue entry).
            if at < cq_from || !sextant_model::store::dispatched_to_queue(m.sys_flag) {
                at = self.log.next_record(at, size as u64);
                continue;
            }
            let qid = u32::try_from(m.queue_id)
                .map_err(|_| Error::Corrupt(format!("at {at}: queue id {}", m.queue_id)))?;
            let qo = u64::try_from(m.queue_offset)
                .map_err(|_| Error::Corrupt(format!("at {at}: queue offset {}", m.queue_offset)))?;
            let tags_code = tags_code_of(&m, &self.delay_levels);
            let cq = self.queue(m.topic, qid)?;
            let max = cq.max_offset();
            let entry = CqEntry {
                commitlog_offset: at,
                size: size as u32,
                tags_code,
            };
            if qo == 0 && max > 0 && rebuilding {
                cq.truncate_to(0)?;
                cq.append(0, entry)?;
                n += 1;
            } else if qo > max && cq.min_offset() == max && (rebuilding || past_deleted) {
                // Every entry the queue has points into segments retention deleted, and so did
                // the ones it lacks (a rebuild, or entries that were not yet on disk when the
                // power went, for records since deleted): it starts again here.
                cq.restart_at(qo)?;
                cq.append(qo, entry)?;
                n += 1;
            } else if qo < max {
                let e = cq.get(qo)?;
                if e.map(|e| e.commitlog_offset) != Some(at) {
                    return Err(Error::Corrupt(format!(
                        "{}/{qid} offset {qo} points at {e:?}, the log has it at {at}",
                        m.topic
                    )));
                }
            } else if qo == max {
                cq.append(qo, entry)?;
                n += 1;
            } else {
                return Err(Error::Corrupt(format!(
                    "{}/{qid} ends at {max} but the log holds offset {qo} at {at}; \
                     remove {} to rebuild the queues",
                    m.topic,
                    self.cq_root.display()
                )));
            }
            at = self.log.next_record(at, size as u64);
        }
        self.index.finish();
        Ok((n, indexed))
    }
}

/// The ConsumeQueue tags code of a stored message: the delivery time of a delayed message in
/// the schedule topic, otherwise the hash of its tag (0 without one).
pub fn tags_code_of(m: &MessageView<'_>, delay_levels: &DelayLevels) -> i64 {
    use sextant_remoting::message::property;
    if m.topic == sextant_model::broker::SCHEDULE_TOPIC {
        let level: i32 = m
            .property(property::DELAY)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        return sextant_model::broker::admit::due_at(m.store_timestamp, level, delay_levels);
    }
    m.property(property::TAGS)
        .map_or(0, |t| i64::from(sextant_remoting::body::java_hash(t)))
}

/// The store timestamp of the record at `offset` in `seg`, from its head.
fn store_time_in(seg: &SegmentRef, offset: u64) -> Result<i64, Error> {
    let mut head = Vec::with_capacity(STORE_TIME_END_V6);
    seg.read_into(offset, 4, &mut head)?;
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    head.clear();
    seg.read_into(offset, size.min(STORE_TIME_END_V6), &mut head)?;
    store_timestamp(&head).ok_or_else(|| Error::Corrupt(format!("no message record at {offset}")))
}

/// Where the store timestamp of a record ends when both hosts are IPv6 (the longest head).
const STORE_TIME_END_V6: usize = 48 + 20 + 8;

/// The store timestamp in the head of a message record: after `totalSize magic bodyCRC queueId
/// flag queueOffset physicalOffset sysFlag bornTimestamp` (48 bytes) and the born host (8 bytes,
/// or 20 with `BORNHOST_V6`). `None` if `head` is not the start of a message record.
fn store_timestamp(head: &[u8]) -> Option<i64> {
    use sextant_remoting::message::{MAGIC_V1, MAGIC_V2, sys_flag};
    let int = |at: usize| Some(i32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?));
    if !matches!(int(4)?, MAGIC_V1 | MAGIC_V2) {
        return None;
    }
    let born = if int(36)? & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let at = 48 + born;
    Some(i64::from_be_bytes(head.get(at..at + 8)?.try_into().ok()?))
}

/// The queue of message `i`, `None` past the end.
fn msgs_key<'a>(msgs: &'a [Put<'_>], i: usize) -> Option<(&'a str, i32)> {
    msgs.get(i).map(|p| (p.msg.topic, p.msg.queue_id))
}

fn read_checkpoint(fs: &dyn Fs, path: &Path) -> Result<Option<u64>, Error> {
    Ok(crate::config::load_bytes_in(fs, path)?
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes))
}

/// The checkpoint, written atomically (a temporary file, fsync, rename, directory fsync).
fn write_checkpoint(fs: &dyn Fs, path: &Path, covered: u64) -> Result<(), Error> {
    crate::config::save_bytes_in(fs, path, &covered.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFs;

    fn put(store: &MessageStore, topic: &str) -> Stored {
        let host = "127.0.0.1:10911".parse().expect("addr");
        let body = [7u8; 100];
        let msg = MessageView {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 1,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
            body: &body,
            topic,
            properties: "",
        };
        store
            .put(&mut [Put { msg, tags_code: 0 }])
            .expect("put")
            .stored[0]
    }

    /// Retention deletes segments, then moves the queues' min under a second lock: a pull in
    /// between finds entries pointing below the log's start, and answers OFFSET_TOO_SMALL
    /// past them (reading them would fail: their segment is gone).
    #[test]
    fn a_pull_between_a_segment_deletion_and_the_queue_trim_moves_past_it() {
        let mut config = StoreConfig::new("/s");
        config.fs = SimFs::new().shared();
        config.segment_size = 1024;
        let (store, _) = MessageStore::open(config).expect("open");
        let t: Vec<Stored> = (0..3).map(|_| put(&store, "T")).collect();
        assert!(t.iter().all(|s| s.physical_offset < 1024));
        while put(&store, "U").physical_offset < 2048 {}
        let mut removed = Vec::new();
        let u_first = {
            let mut inner = lock(&store.shared.inner);
            assert!(inner.log.delete_oldest(0).expect("delete"));
            // The segment's handle is gone from the log: reading by offset is an error.
            assert!(inner.log.read_into(0, 4, &mut removed).is_err());
            inner
                .queues
                .get("U")
                .and_then(|m| m.get(&0))
                .expect("U/0")
                .get(0)
                .expect("entry")
                .expect("present")
        };
        let get = |topic, correct| Get {
            topic,
            queue_id: 0,
            offset: 0,
            max_msgs: 32,
            max_bytes: 1 << 20,
            correct,
        };
        let r = store.get(&get("T", true), &|_| true).expect("get");
        assert_eq!((r.status, r.count), (GetStatus::OffsetTooSmall, 0));
        assert_eq!((r.next_begin, r.min, r.max), (3, 0, 3));
        let r = store.get(&get("T", false), &|_| true).expect("get");
        assert_eq!((r.status, r.next_begin), (GetStatus::OffsetTooSmall, 0));
        // A queue with records on both sides: the deleted ones skipped, the rest answered.
        let r = store.get(&get("U", true), &|_| true).expect("get");
        assert_eq!(r.status, GetStatus::Found);
        let (m, _) = MessageView::decode(&r.records).expect("a record");
        assert!(m.physical_offset >= 1024 && u_first.commitlog_offset < 1024);
        assert_eq!(r.next_begin, r.max);
    }
}
