//! The message index: which CommitLog records carry a key, for QUERY_MESSAGE (`mqadmin
//! queryMsgByKey`, `queryMsgByUniqueKey`, `Admin::query_message`).
//!
//! Every record is indexed at dispatch under `topic#uniqKey` (its `UNIQ_KEY` property, the
//! client-side message id) and `topic#key` for each key of its space-separated `KEYS`; a
//! rolled-back transaction record is not. [`record_keys`] says which keys a record has.
//!
//! ## RocketMQ's `IndexFile` layout
//!
//! The index is RocketMQ's, byte for byte: files in `<storePathRootDir>/index/` named by their
//! creation time (`yyyyMMddHHmmssSSS`), each a hash table whose buckets are chains threaded through
//! an append-only array of entries. All numbers are big-endian:
//!
//! ```text
//! header (40 bytes)  beginTimestamp i64 | endTimestamp i64 | beginPhyOffset i64 | endPhyOffset i64
//!                    | hashSlotCount i32 | indexCount i32 (starts at 1: entry 0 is never used)
//! slots              maxHashSlotNum × i32: the newest entry of each bucket, 0 for none
//! entries            maxIndexNum × (keyHash i32 | phyOffset i64 | timeDiff i32 | prevIndex i32)
//! ```
//!
//! A key's hash is `abs(String.hashCode())` ([`key_hash`]), its bucket the hash modulo the slot
//! count ([`slot_of`]); `timeDiff` is seconds since the header's `beginTimestamp`. A put appends
//! one entry that points at the bucket's previous head and makes itself the head ([`insert`]); a
//! lookup follows one chain, newest first, keeping the entries whose hash and time match
//! ([`collect_chain`]). A full file (`indexCount` = `maxIndexNum`) is sealed and a new one starts.
//!
//! This layout, because: a put costs one 20-byte append and one slot update, a lookup one chain,
//! at 10 entries or at 20 million — no sort, no rewrite, no compaction; a file is bounded
//! (`maxIndexNum` entries), so the index grows in fixed steps that retention drops oldest first
//! as it drops CommitLog segments ([`IndexStore::delete_below`]: a file whose entries all point
//! below the log's start, never the newest); entries are appended in CommitLog order, so how far the index covers the log is one
//! number, the newest header's `endPhyOffset`, which is all recovery needs; and the files are what
//! a RocketMQ broker keeps, so an operator finds the names, sizes and defaults they know. Hash
//! collisions return other keys' records; the store reads every record a lookup names anyway and
//! keeps only those whose topic and keys match ([`record_matches`]), so answers are exact.
//!
//! ## Writing, flushing, recovery
//!
//! Files are read and written with `pread`/`pwrite` on a `File` (no mmap, as the rest of the
//! store), created at their full size (sparse). The newest file's header and slot table live in
//! memory: a put writes its entries (one `pwrite` per put), and the flush that runs with the
//! ConsumeQueues' writes the changed slots, fsyncs, then writes the header and fsyncs again. So
//! the header on disk never claims more than is durable: every entry below its `indexCount` is on
//! disk, and a slot is either what it was when that header was taken or points at a newer entry.
//! A file is sealed (its whole slot table, fsync, final header, fsync) before the next one is
//! created, so a file that has a successor on disk is complete; a header write never lowers the
//! `indexCount` on disk (a flush that took a sealed file's older header before the seal skips it).
//!
//! On open ([`IndexStore::open`]) files are taken oldest first while they are sound — the file
//! size the configuration gives, a plausible header, offsets following the previous file — and
//! the first that is not, with everything after it, is deleted: a torn or lost file is rebuilt
//! from the log. Files wholly past the CommitLog's end (cut by its
//! recovery) go too. In the newest file, slots pointing past `indexCount` (written after the last
//! header) are set back to the newest entry below it in their bucket, and entries past the log's
//! end are undone newest first (each bucket's head goes back to the entry's `prevIndex`); a repair
//! is written and fsynced before any new put. Then the index covers every record up to its newest
//! `endPhyOffset` ([`IndexStore::covered`]): the store dispatches the records after it again
//! (from there or from the ConsumeQueues' checkpoint, whichever is earlier), and the index takes
//! exactly the records past what it covers — none twice. All keys of a record go into one file (a
//! file without room for them is sealed first), so a record is covered whole or not at all.
//!
//! Deviations from RocketMQ, none visible on the wire: file names are UTC (RocketMQ's are local
//! time) and come from the store time of the first record a file takes; a file's first entry gets
//! `timeDiff` 0 (RocketMQ measures it from the previous file's end, then moves `beginTimestamp`);
//! keys repeated within a record and an empty `UNIQ_KEY` are indexed once and not at all; a chain
//! is followed only backwards (`prevIndex` < the entry), which ends every walk; a lookup reads at
//! most [`MAX_ENTRIES_READ`] entries. After an I/O error the index stops (queries fail) and the
//! next open rebuilds it past its last durable header.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use sextant_remoting::message::{MessageView, property, sys_flag};

use crate::Error;
use crate::files::{self, io};
use crate::fs::{Fs, OpenMode, StoreFile};

/// RocketMQ's slots per index file (`maxHashSlotNum`).
pub const DEFAULT_MAX_HASH_SLOTS: u32 = 5_000_000;
/// RocketMQ's entries per index file (`maxIndexNum`), entry 0 included.
pub const DEFAULT_MAX_INDEX_NUM: u32 = 20_000_000;
/// Bytes of an index file's header.
pub const HEADER_SIZE: usize = 40;
/// Bytes of a slot.
pub const SLOT_SIZE: usize = 4;
/// Bytes of an index entry.
pub const INDEX_ENTRY_SIZE: usize = 20;
/// Index entries one lookup reads at most, over all the files it looks at: a bound on the time
/// a query holds the store (a chain of a million entries newer than the query's time range
/// would otherwise be read whole).
pub const MAX_ENTRIES_READ: usize = 1 << 16;

/// `MessageSysFlag.TRANSACTION_ROLLBACK_TYPE`: both transaction bits.
const TRANSACTION_ROLLBACK: i32 = sys_flag::TRANSACTION_PREPARED | sys_flag::TRANSACTION_COMMIT;
/// Encoded entries kept before they are written (a rebuild writes in steps this large).
const PENDING_MAX: usize = 1 << 20;
/// Slots are written by page: the kernel writes back whole pages anyway, and one write of a
/// page costs far less than a write for each of its changed slots.
const PAGE: u64 = 4096;

/// How the index is sized and whether it is kept (RocketMQ's `MessageStoreConfig` names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    /// `messageIndexEnable`: index the records at all.
    pub enabled: bool,
    /// `maxHashSlotNum`: slots per file.
    pub max_hash_slots: u32,
    /// `maxIndexNum`: entries per file, the unused entry 0 included.
    pub max_index_num: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            enabled: true,
            max_hash_slots: DEFAULT_MAX_HASH_SLOTS,
            max_index_num: DEFAULT_MAX_INDEX_NUM,
        }
    }
}

impl IndexConfig {
    /// Why the sizes cannot make an index file, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.max_hash_slots == 0 || self.max_hash_slots > i32::MAX as u32 / SLOT_SIZE as u32 {
            return Err(format!(
                "maxHashSlotNum {} is not 1..=536870911",
                self.max_hash_slots
            ));
        }
        if self.max_index_num < 2 || self.max_index_num > i32::MAX as u32 {
            return Err(format!(
                "maxIndexNum {} is not 2..=2147483647",
                self.max_index_num
            ));
        }
        Ok(())
    }

    /// The size of one index file.
    pub fn file_len(&self) -> u64 {
        entry_pos(self.max_hash_slots, self.max_index_num)
    }
}

/// Where entry `n` starts in a file of `slots` slots.
fn entry_pos(slots: u32, n: u32) -> u64 {
    HEADER_SIZE as u64
        + u64::from(slots) * SLOT_SIZE as u64
        + u64::from(n) * INDEX_ENTRY_SIZE as u64
}

/// Where slot `b` is.
fn slot_pos(b: u32) -> u64 {
    HEADER_SIZE as u64 + u64::from(b) * SLOT_SIZE as u64
}

/// An index file's header (`IndexHeader`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexHeader {
    /// Store time of the first entry (of the previous file's last, before any).
    pub begin_timestamp: i64,
    /// Store time of the last entry.
    pub end_timestamp: i64,
    /// CommitLog offset of the first entry's record.
    pub begin_phy_offset: i64,
    /// CommitLog offset of the last entry's record: how far the file covers the log.
    pub end_phy_offset: i64,
    /// Buckets in use.
    pub hash_slot_count: i32,
    /// The next entry's number (1 for an empty file).
    pub index_count: i32,
}

impl IndexHeader {
    /// An empty file's header, beginning where the previous file ends (at 0 for the first).
    pub fn starting_at(phy_offset: i64, timestamp: i64) -> IndexHeader {
        IndexHeader {
            begin_timestamp: timestamp,
            end_timestamp: timestamp,
            begin_phy_offset: phy_offset,
            end_phy_offset: phy_offset,
            hash_slot_count: 0,
            index_count: 1,
        }
    }

    /// The 40 bytes on disk.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    /// Read 40 bytes from disk.
    pub fn decode(b: &[u8; HEADER_SIZE]) -> IndexHeader {
        let long = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let int = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        IndexHeader {
            begin_timestamp: long(0),
            end_timestamp: long(8),
            begin_phy_offset: long(16),
            end_phy_offset: long(24),
            hash_slot_count: int(32),
            index_count: int(36),
        }
    }

    /// Entries in the file.
    pub fn entries(&self) -> u32 {
        u32::try_from(self.index_count.max(1) - 1).unwrap_or(0)
    }

    /// Whether the file's time range meets `[begin, end]` (`IndexFile.isTimeMatched`).
    pub fn time_matched(&self, begin: i64, end: i64) -> bool {
        begin <= self.end_timestamp && end >= self.begin_timestamp
    }

    /// Whether a header read from disk could have been written by [`insert`]s into a file of
    /// `config`'s size (a torn or foreign one usually cannot).
    fn plausible(&self, config: &IndexConfig) -> bool {
        let count = i64::from(self.index_count);
        (1..=i64::from(config.max_index_num)).contains(&count)
            && (0..count.min(i64::from(config.max_hash_slots) + 1))
                .contains(&i64::from(self.hash_slot_count))
            && self.begin_phy_offset >= 0
            && self.end_phy_offset >= self.begin_phy_offset
    }
}

/// One index entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexEntry {
    /// [`key_hash`] of the key.
    pub key_hash: i32,
    /// CommitLog offset of the record.
    pub phy_offset: i64,
    /// Seconds from the header's `beginTimestamp` to the record's store time.
    pub time_diff: i32,
    /// The previous entry of the bucket, 0 for none.
    pub prev_index: i32,
}

impl IndexEntry {
    /// The 20 bytes on disk.
    pub fn encode(&self) -> [u8; INDEX_ENTRY_SIZE] {
        let mut b = [0u8; INDEX_ENTRY_SIZE];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev_index.to_be_bytes());
        b
    }

    /// Read 20 bytes from disk.
    pub fn decode(b: &[u8]) -> IndexEntry {
        let int = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        IndexEntry {
            key_hash: int(0),
            phy_offset: i64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
            time_diff: int(12),
            prev_index: int(16),
        }
    }
}

/// The hash of key `key` of `topic` (`IndexService.buildKey` then `indexKeyHashMethod`):
/// `abs("topic#key".hashCode())`, 0 for `Integer.MIN_VALUE`.
pub fn key_hash(topic: &str, key: &str) -> i32 {
    let h = [topic, "#", key]
        .iter()
        .flat_map(|s| s.encode_utf16())
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    positive(h)
}

/// `Math.abs` as `indexKeyHashMethod` takes it: 0 for `Integer.MIN_VALUE`, whose absolute value
/// is itself.
fn positive(h: i32) -> i32 {
    if h == i32::MIN { 0 } else { h.abs() }
}

/// The bucket of a key hash in a file of `slots` slots.
pub fn slot_of(key_hash: i32, slots: u32) -> u32 {
    key_hash.unsigned_abs() % slots
}

/// Seconds from `begin` to `timestamp`, as an entry keeps them: 0 when the file has no begin
/// time yet, clamped to `[0, i32::MAX]`.
pub fn time_diff(begin: i64, timestamp: i64) -> i32 {
    if begin <= 0 {
        return 0;
    }
    (timestamp.saturating_sub(begin) / 1000).clamp(0, i64::from(i32::MAX)) as i32
}

/// Put one key into a file (`IndexFile.putKey`): given the header and the current value of the
/// key's slot, the entry to write and its number, which the slot then holds; the header moves
/// on. `None` when the file is full. A slot value that is not an entry of the file counts as
/// an empty bucket.
pub fn insert(
    header: &mut IndexHeader,
    max_index_num: u32,
    slot_value: i32,
    key_hash: i32,
    phy_offset: i64,
    store_timestamp: i64,
) -> Option<(i32, IndexEntry)> {
    let n = header.index_count;
    if n < 1 || n as u32 >= max_index_num {
        return None;
    }
    let prev = if slot_value <= 0 || slot_value >= n {
        0
    } else {
        slot_value
    };
    if n == 1 {
        header.begin_phy_offset = phy_offset;
        header.begin_timestamp = store_timestamp;
    }
    if prev == 0 {
        header.hash_slot_count += 1;
    }
    header.index_count += 1;
    header.end_phy_offset = phy_offset;
    header.end_timestamp = store_timestamp;
    let entry = IndexEntry {
        key_hash,
        phy_offset,
        time_diff: time_diff(header.begin_timestamp, store_timestamp),
        prev_index: prev,
    };
    Some((n, entry))
}

/// What a lookup collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// [`key_hash`] of the key.
    pub key_hash: i32,
    /// Earliest store time (ms).
    pub begin: i64,
    /// Latest store time (ms).
    pub end: i64,
    /// Offsets wanted at most.
    pub limit: usize,
}

/// Which entries of one file a lookup collects (`IndexFile.selectPhyOffset`): following the
/// chain from `slot_value`, newest first, the CommitLog offsets of the entries whose hash is the
/// key's and whose time (`beginTimestamp + timeDiff` s) is within `[begin, end]`, each offset
/// once in `out`. The walk ends at the chain's end (a `prevIndex` that is not an earlier entry),
/// at an entry older than `begin`, when `out` holds `limit` offsets, or when `budget` entries
/// were read. `entry_at` reads an entry by number.
pub fn collect_chain<E>(
    header: &IndexHeader,
    slot_value: i32,
    lookup: &Lookup,
    budget: &mut usize,
    out: &mut Vec<u64>,
    mut entry_at: impl FnMut(i32) -> Result<IndexEntry, E>,
) -> Result<(), E> {
    if header.index_count <= 1 || slot_value <= 0 || slot_value >= header.index_count {
        return Ok(());
    }
    let mut at = slot_value;
    loop {
        if out.len() >= lookup.limit || *budget == 0 {
            return Ok(());
        }
        *budget -= 1;
        let e = entry_at(at)?;
        if e.time_diff < 0 {
            return Ok(());
        }
        let time = header
            .begin_timestamp
            .saturating_add(i64::from(e.time_diff) * 1000);
        if e.key_hash == lookup.key_hash
            && (lookup.begin..=lookup.end).contains(&time)
            && let Ok(phy) = u64::try_from(e.phy_offset)
            && !out.contains(&phy)
        {
            out.push(phy);
        }
        if e.prev_index <= 0 || e.prev_index >= at || time < lookup.begin {
            return Ok(());
        }
        at = e.prev_index;
    }
}

/// The keys a record is indexed under, without the topic: its `UNIQ_KEY`, then each non-empty
/// token of its `KEYS` split on spaces, each once; none for a rolled-back transaction record
/// (`IndexService.buildIndex`).
pub fn record_keys<'a>(m: &MessageView<'a>) -> Vec<&'a str> {
    if m.sys_flag & TRANSACTION_ROLLBACK == TRANSACTION_ROLLBACK {
        return Vec::new();
    }
    keys_of(m.property(property::UNIQ_KEY), m.property(property::KEYS))
}

/// The keys of a record with `uniq_key` and `keys` (see [`record_keys`]).
pub fn keys_of<'a>(uniq_key: Option<&'a str>, keys: Option<&'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let tokens = uniq_key
        .into_iter()
        .chain(keys.into_iter().flat_map(|k| k.split(' ')))
        .filter(|k| !k.is_empty());
    let mut seen = std::collections::HashSet::new();
    for k in tokens {
        // A linear check for the usual handful of keys, a set past that.
        let repeated = if out.len() < 16 {
            out.contains(&k)
        } else {
            if seen.is_empty() {
                seen.extend(out.iter().copied());
            }
            !seen.insert(k)
        };
        if !repeated {
            out.push(k);
        }
    }
    out
}

/// Whether a record read at an offset the index named answers a query for `key` of `topic`:
/// it is stored under `topic` and has `key` among its [`record_keys`] (a hash collision, or an
/// entry of a record lost with a log tail, does not).
pub fn record_matches(m: &MessageView<'_>, topic: &str, key: &str) -> bool {
    m.topic == topic && record_keys(m).contains(&key)
}

/// The name of an index file created at `ms` (ms since the epoch, UTC): `yyyyMMddHHmmssSSS`.
pub fn file_name(ms: i64) -> String {
    // Years 0..=9999 keep the name at 17 digits.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// The creation time an index file's name gives, `None` if it is not one.
pub fn parse_file_name(name: &str) -> Option<i64> {
    if name.len() != 17 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| name[r].parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, s, ms) = (n(8..10)?, n(10..12)?, n(12..14)?, n(14..17)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let t = days_from_civil(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + s) * 1000 + ms;
    (file_name(t) == name).then_some(t)
}

/// Howard Hinnant's `civil_from_days`: the date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What opening the index found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexRecovery {
    /// Files kept.
    pub files: usize,
    /// Files deleted: torn, of another size, not following the previous one, empty, or past the
    /// CommitLog's end (their records are indexed again from the log).
    pub removed: usize,
    /// Slots of the newest file set back to an entry its header covers.
    pub slots_repaired: u64,
    /// Entries of the newest file undone because the CommitLog no longer holds their records.
    pub entries_undone: u64,
}

struct IndexFile {
    /// Creation time, from the name.
    created: i64,
    path: PathBuf,
    file: Arc<dyn StoreFile>,
    header: IndexHeader,
    /// The slot table of the file being written, in memory (the flush writes it); `None` once
    /// sealed, when the file's own slots are complete.
    slots: Option<Arc<[AtomicI32]>>,
    /// The `indexCount` of the header on disk, held while one is written.
    on_disk: Arc<Mutex<i32>>,
}

impl IndexFile {
    fn entry(&self, slots: u32, n: i32) -> Result<IndexEntry, Error> {
        let mut b = [0u8; INDEX_ENTRY_SIZE];
        self.file
            .read_exact_at(&mut b, entry_pos(slots, n as u32))
            .map_err(io(&self.path))?;
        Ok(IndexEntry::decode(&b))
    }
}

/// The index files as [`IndexStore::view`] took them: lookups read them without the store's
/// lock (a file deleted meanwhile stays readable through its handle).
pub(crate) struct IndexView {
    files: Vec<FileView>,
    slots: u32,
    failed: Option<String>,
}

struct FileView {
    path: PathBuf,
    file: Arc<dyn StoreFile>,
    header: IndexHeader,
    slots: Option<Arc<[AtomicI32]>>,
}

impl FileView {
    fn slot(&self, b: u32) -> Result<i32, Error> {
        if let Some(s) = &self.slots {
            return Ok(s[b as usize].load(Ordering::Relaxed));
        }
        let mut v = [0u8; SLOT_SIZE];
        self.file
            .read_exact_at(&mut v, slot_pos(b))
            .map_err(io(&self.path))?;
        Ok(i32::from_be_bytes(v))
    }

    fn entry(&self, slots: u32, n: i32) -> Result<IndexEntry, Error> {
        let mut b = [0u8; INDEX_ENTRY_SIZE];
        self.file
            .read_exact_at(&mut b, entry_pos(slots, n as u32))
            .map_err(io(&self.path))?;
        Ok(IndexEntry::decode(&b))
    }
}

impl IndexView {
    /// The CommitLog offsets of records indexed under `key` in `topic` stored within
    /// `begin..=end`, newest first, at most `limit` (see [`IndexStore::lookup`]).
    pub(crate) fn lookup(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<u64>, Error> {
        if let Some(why) = &self.failed {
            return Err(Error::Failed(format!("the message index stopped: {why}")));
        }
        let lookup = Lookup {
            key_hash: key_hash(topic, key),
            begin,
            end,
            limit,
        };
        let b = slot_of(lookup.key_hash, self.slots);
        let mut out = Vec::new();
        let mut budget = MAX_ENTRIES_READ;
        for f in self.files.iter().rev() {
            if out.len() >= limit || budget == 0 {
                break;
            }
            if f.header.time_matched(begin, end) {
                let head = f.slot(b)?;
                collect_chain(&f.header, head, &lookup, &mut budget, &mut out, |n| {
                    f.entry(self.slots, n)
                })?;
            }
            if f.header.begin_timestamp < begin {
                break;
            }
        }
        Ok(out)
    }
}

/// The index files of a store: see the module documentation.
pub struct IndexStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    config: IndexConfig,
    /// Oldest first; the last is written to.
    files: Vec<IndexFile>,
    /// Encoded entries of the newest file not yet written, from entry `pending_at` on.
    pending: Vec<u8>,
    pending_at: i32,
    /// Slots of the newest file changed since the last flush.
    dirty_slots: Vec<u32>,
    /// The newest file's header changed since the last flush.
    header_dirty: bool,
    /// A file was created since the last flush: the directory needs an fsync.
    created: bool,
    /// Why the index stopped, if it did.
    failed: Option<String>,
}

/// The writes and fsyncs that make the index durable as it is now, taken from it to run
/// without the store lock.
pub(crate) struct IndexFlushJob {
    fs: Arc<dyn Fs>,
    files: Vec<FileFlush>,
    dir: Option<PathBuf>,
}

struct FileFlush {
    path: PathBuf,
    file: Arc<dyn StoreFile>,
    /// The slot table and the slots to write from it.
    slots: Option<(Arc<[AtomicI32]>, Vec<u32>)>,
    header: IndexHeader,
    on_disk: Arc<Mutex<i32>>,
}

impl IndexFlushJob {
    /// Write the changed slots, fsync, write the header, fsync; then the directory.
    pub(crate) fn run(self) -> Result<(), Error> {
        for f in self.files {
            if let Some((table, positions)) = f.slots {
                write_slots(&*f.file, &f.path, &table, positions)?;
            }
            f.file.sync_data().map_err(io(&f.path))?;
            write_header(&*f.file, &f.path, &f.on_disk, &f.header)?;
            f.file.sync_data().map_err(io(&f.path))?;
        }
        if let Some(dir) = self.dir {
            self.fs.sync_dir(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }
}

/// Write `header` unless the header on disk (`on_disk`: its `indexCount`) is later: a flush
/// that took a file's header before the file was sealed must not overwrite the final one.
fn write_header(
    file: &dyn StoreFile,
    path: &Path,
    on_disk: &Mutex<i32>,
    header: &IndexHeader,
) -> Result<(), Error> {
    let mut count = on_disk.lock().unwrap_or_else(|p| p.into_inner());
    if header.index_count < *count {
        return Ok(());
    }
    file.write_all_at(&header.encode(), 0).map_err(io(path))?;
    *count = header.index_count;
    Ok(())
}

/// Write the slots `positions` of `table` to `file`: every file page holding one of them, its
/// slots from `table`, adjacent pages in one write (at most 1 MiB).
fn write_slots(
    file: &dyn StoreFile,
    path: &Path,
    table: &[AtomicI32],
    positions: Vec<u32>,
) -> Result<(), Error> {
    let Some(last) = table.len().checked_sub(1) else {
        return Ok(());
    };
    let mut pages: Vec<u64> = positions.iter().map(|p| slot_pos(*p) / PAGE).collect();
    pages.sort_unstable();
    pages.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for p in pages {
        match runs.last_mut() {
            Some((start, end)) if *end + 1 == p && p - *start < 256 => *end = p,
            _ => runs.push((p, p)),
        }
    }
    let mut buf = Vec::new();
    for (first, end) in runs {
        // The slots within the pages (the first page also holds the header; the last, entries).
        let from = (first * PAGE).max(HEADER_SIZE as u64);
        let to = ((end + 1) * PAGE).min(slot_pos(last as u32) + SLOT_SIZE as u64);
        let (a, b) = (slot_index(from), slot_index(to - 1));
        buf.clear();
        for s in &table[a..=b] {
            buf.extend_from_slice(&s.load(Ordering::Relaxed).to_be_bytes());
        }
        file.write_all_at(&buf, slot_pos(a as u32))
            .map_err(io(path))?;
    }
    Ok(())
}

/// A slot in every page of a table of `n` slots.
fn every_page(n: usize) -> Vec<u32> {
    let n = n as u32;
    let mut all: Vec<u32> = (0..n).step_by(PAGE as usize / SLOT_SIZE).collect();
    // The header shifts the slots: the last page may hold only the last few.
    all.extend(n.checked_sub(1));
    all
}

/// The slot a byte of the slot table belongs to.
fn slot_index(byte: u64) -> usize {
    ((byte - HEADER_SIZE as u64) / SLOT_SIZE as u64) as usize
}

fn new_slots(n: u32) -> Arc<[AtomicI32]> {
    (0..n).map(|_| AtomicI32::new(0)).collect()
}

impl IndexStore {
    /// Open (creating if needed) the index in `dir` for a CommitLog that now ends at `log_end`,
    /// and repair it (see the module documentation). A disabled index touches no file.
    pub fn open(
        dir: impl AsRef<Path>,
        config: IndexConfig,
        log_end: u64,
    ) -> Result<(IndexStore, IndexRecovery), Error> {
        Self::open_in(crate::fs::real(), dir, config, log_end)
    }

    /// [`IndexStore::open`] on the file system `fs`.
    pub fn open_in(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        config: IndexConfig,
        log_end: u64,
    ) -> Result<(IndexStore, IndexRecovery), Error> {
        config.check().map_err(Error::Corrupt)?;
        let mut store = IndexStore {
            fs,
            dir: dir.as_ref().to_owned(),
            config,
            files: Vec::new(),
            pending: Vec::new(),
            pending_at: 1,
            dirty_slots: Vec::new(),
            header_dirty: false,
            created: false,
            failed: None,
        };
        let mut rec = IndexRecovery::default();
        if !store.config.enabled {
            return Ok((store, rec));
        }
        let dir = store.dir.clone();
        let fs = Arc::clone(&store.fs);
        files::ensure_dir(&*fs, &dir)?;
        let mut names = Vec::new();
        for entry in fs.list(&dir).map_err(io(&dir))? {
            if let Some(created) = parse_file_name(&entry.name)
                && !entry.is_dir
            {
                names.push((entry.name, created));
            }
        }
        names.sort();
        let expected = store.config.file_len();
        let mut cut = false;
        for (name, created) in names {
            let path = dir.join(&name);
            if cut {
                fs.remove_file(&path).map_err(io(&path))?;
                rec.removed += 1;
                continue;
            }
            let file = files::open(&*fs, &path, false)?;
            let len = file.len().map_err(io(&path))?;
            let mut head = [0u8; HEADER_SIZE];
            if len >= HEADER_SIZE as u64 {
                file.read_exact_at(&mut head, 0).map_err(io(&path))?;
            }
            let header = IndexHeader::decode(&head);
            let follows = store
                .files
                .last()
                .is_none_or(|p| header.begin_phy_offset >= p.header.end_phy_offset);
            if len != expected || !header.plausible(&store.config) || !follows {
                tracing::warn!(file = %path.display(), ?header, len, "index file dropped, rebuilt from the log");
                drop(file);
                fs.remove_file(&path).map_err(io(&path))?;
                rec.removed += 1;
                cut = true;
                continue;
            }
            store.files.push(IndexFile {
                created,
                path,
                file,
                header,
                slots: None,
                on_disk: Arc::new(Mutex::new(header.index_count)),
            });
        }
        // From the newest: empty files and files wholly past the log's end go; the newest left
        // is repaired (and goes too if nothing of it is left, which a sound file never is: its
        // first entry is its `beginPhyOffset`, below the log's end).
        loop {
            while let Some(last) = store.files.last() {
                let begin = u64::try_from(last.header.begin_phy_offset).unwrap_or(0);
                if last.header.entries() > 0 && begin < log_end {
                    break;
                }
                let f = store.files.pop().expect("a file");
                fs.remove_file(&f.path).map_err(io(&f.path))?;
                rec.removed += 1;
            }
            match store.files.last_mut() {
                Some(last) => {
                    repair(last, &store.config, log_end, &mut rec)?;
                    if last.header.entries() > 0 {
                        break;
                    }
                }
                None => break,
            }
        }
        if rec.removed > 0 {
            fs.sync_dir(&dir).map_err(io(&dir))?;
        }
        rec.files = store.files.len();
        Ok((store, rec))
    }

    /// Delete the oldest files whose every entry points below `log_start` (retention deleted
    /// those CommitLog segments; `IndexService.deleteExpiredFile`), never the newest. Returns
    /// how many went.
    pub fn delete_below(&mut self, log_start: u64) -> Result<usize, Error> {
        let highest: Vec<u64> = self
            .files
            .iter()
            .map(|f| u64::try_from(f.header.end_phy_offset).unwrap_or(0))
            .collect();
        let n = sextant_model::store::files_below(&highest, log_start);
        for f in self.files.drain(..n) {
            self.fs.remove_file(&f.path).map_err(io(&f.path))?;
        }
        if n > 0 {
            self.fs.sync_dir(&self.dir).map_err(io(&self.dir))?;
        }
        Ok(n)
    }

    /// Whether records are indexed.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The CommitLog offset of the last record indexed: every record up to it is, none after
    /// it. `None` when nothing is.
    pub fn covered(&self) -> Option<u64> {
        self.files
            .last()
            .and_then(|f| u64::try_from(f.header.end_phy_offset).ok())
    }

    /// Where a dispatch must start for the index to take every record it lacks (`None`: it
    /// takes none).
    pub fn resume_from(&self) -> Option<u64> {
        (self.config.enabled && self.failed.is_none()).then(|| self.covered().unwrap_or(0))
    }

    /// Why the index stopped, if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The newest file's end time and end offset (`indexLastUpdateTimestamp`,
    /// `indexLastUpdatePhyoffset`); zeros without a file.
    pub fn last_update(&self) -> (i64, i64) {
        self.files.last().map_or((0, 0), |f| {
            (f.header.end_timestamp, f.header.end_phy_offset)
        })
    }

    /// Index the record at `offset` if the index does not cover it yet; whether it did. The
    /// entries are written by [`IndexStore::finish`]. An I/O error stops the index (logged).
    pub fn dispatch(&mut self, m: &MessageView<'_>, offset: u64) -> bool {
        if self.resume_from().is_none() || self.covered().is_some_and(|c| offset <= c) {
            return false;
        }
        let keys = record_keys(m);
        if keys.is_empty() {
            return false;
        }
        let result = self.put_record(m.topic, &keys, offset, m.store_timestamp);
        if let Err(e) = result {
            self.fail(e.to_string());
            return false;
        }
        true
    }

    /// Write the entries dispatched since the last call.
    pub fn finish(&mut self) {
        if let Err(e) = self.write_pending() {
            self.fail(e.to_string());
        }
    }

    /// Stop indexing and answering: the in-memory index may be ahead of what could be written.
    /// No more flushes either, so the next open repairs from the last durable header.
    pub(crate) fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            tracing::error!(reason = %why, "message index stopped; it is rebuilt on the next open");
            self.failed = Some(why);
        }
    }

    fn put_record(
        &mut self,
        topic: &str,
        keys: &[&str],
        phy: u64,
        store_timestamp: i64,
    ) -> Result<(), Error> {
        let max = self.config.max_index_num;
        if keys.len() >= max as usize {
            tracing::warn!(
                offset = phy,
                keys = keys.len(),
                "a record has more keys than an index file holds; the rest are not indexed"
            );
        }
        let keys = &keys[..keys.len().min(max as usize - 1)];
        let fits = self.files.last().is_some_and(|f| {
            u64::from(f.header.index_count as u32) + keys.len() as u64 <= u64::from(max)
        });
        if !fits {
            self.roll(store_timestamp)?;
        }
        let slots = self.config.max_hash_slots;
        let f = self.files.last_mut().expect("a file to write");
        let table = f.slots.as_ref().expect("the newest file's slots");
        if self.pending.is_empty() {
            self.pending_at = f.header.index_count;
        }
        let phy = i64::try_from(phy).map_err(|_| Error::BadRecord(format!("offset {phy}")))?;
        for key in keys {
            let h = key_hash(topic, key);
            let b = slot_of(h, slots);
            let old = table[b as usize].load(Ordering::Relaxed);
            let (n, entry) = insert(&mut f.header, max, old, h, phy, store_timestamp)
                .expect("room was made for the record's keys");
            table[b as usize].store(n, Ordering::Relaxed);
            self.dirty_slots.push(b);
            self.pending.extend_from_slice(&entry.encode());
        }
        self.header_dirty = true;
        if self.pending.len() >= PENDING_MAX {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let f = self.files.last().expect("pending entries have a file");
        let at = entry_pos(self.config.max_hash_slots, self.pending_at as u32);
        f.file
            .write_all_at(&self.pending, at)
            .map_err(io(&f.path))?;
        self.pending.clear();
        Ok(())
    }

    /// Seal the newest file — its slots, an fsync, its final header, an fsync: a file with a
    /// successor is complete on disk (once per `maxIndexNum` entries) — and start one, named by
    /// `timestamp` (later than the last name), beginning where the last ends.
    fn roll(&mut self, timestamp: i64) -> Result<(), Error> {
        self.write_pending()?;
        let mut begin = IndexHeader::starting_at(0, 0);
        let mut created = timestamp.max(0);
        if let Some(f) = self.files.last_mut() {
            // The whole table: a flush running now may not have written the slots it took.
            if let Some(table) = f.slots.take() {
                write_slots(&*f.file, &f.path, &table, every_page(table.len()))?;
            }
            self.dirty_slots.clear();
            f.file.sync_data().map_err(io(&f.path))?;
            write_header(&*f.file, &f.path, &f.on_disk, &f.header)?;
            f.file.sync_data().map_err(io(&f.path))?;
            self.header_dirty = false;
            begin = IndexHeader::starting_at(f.header.end_phy_offset, f.header.end_timestamp);
            created = created.max(f.created + 1);
        }
        let (path, file) = loop {
            let path = self.dir.join(file_name(created));
            match self.fs.open(&path, OpenMode::CreateNew) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => created += 1,
                Err(e) => return Err(io(&path)(e)),
            }
        };
        file.set_len(self.config.file_len()).map_err(io(&path))?;
        file.write_all_at(&begin.encode(), 0).map_err(io(&path))?;
        self.files.push(IndexFile {
            created,
            path,
            file,
            header: begin,
            slots: Some(new_slots(self.config.max_hash_slots)),
            on_disk: Arc::new(Mutex::new(begin.index_count)),
        });
        self.created = true;
        self.header_dirty = true;
        Ok(())
    }

    /// The CommitLog offsets of the entries for `key` of `topic` stored within `[begin, end]`,
    /// newest first, each once, at most `limit` (`IndexService.queryOffset`): files newest
    /// first whose time range meets the query, until a file begins before `begin`. Hash
    /// collisions are included: check the records ([`record_matches`]).
    pub fn lookup(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<u64>, Error> {
        self.view().lookup(topic, key, begin, end, limit)
    }

    /// The index files as they are now, to look up in with the store's lock released (the
    /// files' handles, their headers as of now, the newest file's live slot table).
    pub(crate) fn view(&self) -> IndexView {
        IndexView {
            files: self
                .files
                .iter()
                .map(|f| FileView {
                    path: f.path.clone(),
                    file: Arc::clone(&f.file),
                    header: f.header,
                    slots: f.slots.clone(),
                })
                .collect(),
            slots: self.config.max_hash_slots,
            failed: self.failed.clone(),
        }
    }

    /// What makes the index durable as it is now (nothing once it stopped).
    pub(crate) fn flush_job(&mut self) -> IndexFlushJob {
        let mut job = IndexFlushJob {
            fs: Arc::clone(&self.fs),
            files: Vec::new(),
            dir: None,
        };
        if self.failed.is_some() {
            return job;
        }
        if let Some(f) = self.files.last()
            && (self.header_dirty || !self.dirty_slots.is_empty())
        {
            job.files.push(FileFlush {
                path: f.path.clone(),
                file: Arc::clone(&f.file),
                slots: f
                    .slots
                    .as_ref()
                    .map(|t| (Arc::clone(t), std::mem::take(&mut self.dirty_slots))),
                header: f.header,
                on_disk: Arc::clone(&f.on_disk),
            });
            self.header_dirty = false;
        }
        if std::mem::take(&mut self.created) {
            job.dir = Some(self.dir.clone());
        }
        job
    }
}

/// Make the newest file what its header covers, within a log ending at `log_end`, and load its
/// slot table: see the module documentation. A repair is durable before this returns.
fn repair(
    f: &mut IndexFile,
    config: &IndexConfig,
    log_end: u64,
    rec: &mut IndexRecovery,
) -> Result<(), Error> {
    let slots = config.max_hash_slots;
    let mut raw = vec![0u8; slots as usize * SLOT_SIZE];
    f.file
        .read_exact_at(&mut raw, HEADER_SIZE as u64)
        .map_err(io(&f.path))?;
    let mut table: Vec<i32> = raw
        .chunks_exact(SLOT_SIZE)
        .map(|c| i32::from_be_bytes(c.try_into().expect("4 bytes")))
        .collect();
    drop(raw);
    let count = f.header.index_count;
    let mut changed: Vec<u32> = Vec::new();
    // Slots written after the header was: back to the newest entry the header covers.
    let mut broken: HashSet<u32> = table
        .iter()
        .enumerate()
        .filter(|(_, v)| **v < 0 || **v >= count)
        .map(|(b, _)| b as u32)
        .collect();
    rec.slots_repaired += broken.len() as u64;
    changed.extend(broken.iter().copied());
    for b in &broken {
        table[*b as usize] = 0;
    }
    let mut hi = count;
    const CHUNK: i32 = 4096;
    while !broken.is_empty() && hi > 1 {
        let lo = (hi - CHUNK).max(1);
        let mut buf = vec![0u8; (hi - lo) as usize * INDEX_ENTRY_SIZE];
        f.file
            .read_exact_at(&mut buf, entry_pos(slots, lo as u32))
            .map_err(io(&f.path))?;
        for (i, c) in buf.chunks_exact(INDEX_ENTRY_SIZE).enumerate().rev() {
            let e = IndexEntry::decode(c);
            let b = slot_of(e.key_hash, slots);
            if broken.remove(&b) {
                table[b as usize] = lo + i as i32;
            }
        }
        hi = lo;
    }
    // Entries whose records the log no longer holds: undone, newest first.
    let mut n = count;
    while n > 1 {
        let e = f.entry(slots, n - 1)?;
        if u64::try_from(e.phy_offset).is_ok_and(|p| p < log_end) {
            break;
        }
        let b = slot_of(e.key_hash, slots);
        if table[b as usize] == n - 1 {
            table[b as usize] = if e.prev_index > 0 && e.prev_index < n - 1 {
                e.prev_index
            } else {
                0
            };
            changed.push(b);
        }
        n -= 1;
        rec.entries_undone += 1;
    }
    let mut header = f.header;
    if n != count {
        header.index_count = n;
        if n > 1 {
            let last = f.entry(slots, n - 1)?;
            header.end_phy_offset = last.phy_offset;
            header.end_timestamp = header
                .begin_timestamp
                .saturating_add(i64::from(last.time_diff) * 1000);
        } else {
            (header.end_phy_offset, header.end_timestamp) =
                (header.begin_phy_offset, header.begin_timestamp);
        }
    }
    header.hash_slot_count = table.iter().filter(|v| **v > 0).count() as i32;
    let atomic: Arc<[AtomicI32]> = table.into_iter().map(AtomicI32::new).collect();
    if !changed.is_empty() || header != f.header {
        tracing::warn!(
            file = %f.path.display(),
            slots = rec.slots_repaired,
            undone = rec.entries_undone,
            "index file repaired"
        );
        write_slots(&*f.file, &f.path, &atomic, changed)?;
        f.file.sync_data().map_err(io(&f.path))?;
        // An undo lowers the count: written whatever the guard holds.
        f.file
            .write_all_at(&header.encode(), 0)
            .map_err(io(&f.path))?;
        f.file.sync_data().map_err(io(&f.path))?;
        *f.on_disk.lock().unwrap_or_else(|p| p.into_inner()) = header.index_count;
        f.header = header;
    }
    f.slots = Some(atomic);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_remoting::body::java_hash;
    use std::collections::BTreeSet;
    use std::fs::{self, OpenOptions};
    use std::os::unix::fs::FileExt;

    fn tiny(slots: u32, max: u32) -> IndexConfig {
        IndexConfig {
            enabled: true,
            max_hash_slots: slots,
            max_index_num: max,
        }
    }

    /// Put each (key, offset, time) of topic "T" as its own record, then flush.
    fn put_all(index: &mut IndexStore, records: &[(&[&str], u64, i64)]) {
        for (keys, phy, ts) in records {
            index.put_record("T", keys, *phy, *ts).unwrap();
        }
        index.finish();
        index.flush_job().run().unwrap();
    }

    fn find(index: &IndexStore, key: &str) -> Vec<u64> {
        index.lookup("T", key, 0, i64::MAX, 64).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hashes_and_slots_are_javas() {
        // "T#a".hashCode() = (84 * 31 + 35) * 31 + 97.
        assert_eq!(key_hash("T", "a"), 81_906);
        assert_eq!(key_hash("T", "a"), java_hash("T#a"));
        for (t, k) in [("TopicTest", "order-1"), ("中文", "ключ"), ("T", "😀")] {
            let joined = format!("{t}#{k}");
            assert_eq!(key_hash(t, k), java_hash(&joined).abs(), "{joined}");
        }
        // A key whose hashCode is negative: its absolute value; MIN_VALUE is 0.
        assert_eq!(java_hash("T#k100"), -1_854_559_115);
        assert_eq!(key_hash("T", "k100"), 1_854_559_115);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(positive(java_hash("polygenelubricants")), 0);
        assert_eq!(slot_of(81_906, 2), 0);
        assert_eq!(slot_of(81_907, 2), 1);
        assert_eq!(slot_of(i32::MAX, 5_000_000), (i32::MAX as u32) % 5_000_000);
    }

    #[test]
    fn a_seal_writes_every_page_of_the_slot_table() {
        // 2000 slots: bytes 40..8040, pages 0 and 1 — slot 1999 is in page 1, as is 1024.
        assert_eq!(every_page(2000), [0, 1024, 1999]);
        // 2050 slots end at byte 8240, in page 2, which slot 2048 does not reach alone.
        let pages: BTreeSet<u64> = every_page(2050)
            .iter()
            .map(|s| slot_pos(*s) / PAGE)
            .collect();
        assert_eq!(pages, BTreeSet::from([0, 1, 2]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = crate::fs::RealFs.open(&path, OpenMode::Truncate).unwrap();
        let table: Vec<AtomicI32> = (0..3000).map(AtomicI32::new).collect();
        write_slots(&*file, &path, &table, every_page(table.len())).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 40 + 3000 * 4);
        for i in [0usize, 1013, 1014, 2999] {
            let at = 40 + i * 4;
            assert_eq!(
                i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()),
                i as i32
            );
        }
        assert!(
            bytes[..40].iter().all(|b| *b == 0),
            "the header is not touched"
        );
    }

    #[test]
    fn keys_of_a_record() {
        assert_eq!(keys_of(Some("U1"), Some("a b  c")), ["U1", "a", "b", "c"]);
        assert_eq!(keys_of(None, Some(" a a U1 a ")), ["a", "U1"]);
        assert_eq!(keys_of(Some("U1"), Some("U1 x")), ["U1", "x"]);
        assert!(keys_of(Some(""), Some("   ")).is_empty());
        assert!(keys_of(None, None).is_empty());
        let many: String = (0..40)
            .map(|i| format!("k{} k{} ", i % 20, i % 20))
            .collect();
        assert_eq!(keys_of(None, Some(&many)).len(), 20);
    }

    #[test]
    fn time_diffs_are_clamped_seconds() {
        assert_eq!(time_diff(0, 5_000), 0);
        assert_eq!(time_diff(1_000, 1_999), 0);
        assert_eq!(time_diff(1_000, 3_000), 2);
        assert_eq!(time_diff(10_000, 1_000), 0);
        assert_eq!(time_diff(1, i64::MAX), i32::MAX);
    }

    #[test]
    fn insert_threads_chains_and_moves_the_header() {
        let mut h = IndexHeader::starting_at(0, 0);
        let (n1, e1) = insert(&mut h, 4, 0, 7, 100, 10_000).unwrap();
        assert_eq!((n1, e1.prev_index, e1.time_diff), (1, 0, 0));
        assert_eq!((h.begin_phy_offset, h.begin_timestamp), (100, 10_000));
        // Same bucket (slot holds 1): chained.
        let (n2, e2) = insert(&mut h, 4, n1, 9, 200, 12_500).unwrap();
        assert_eq!((n2, e2.prev_index, e2.time_diff), (2, 1, 2));
        // A stale slot (not an entry yet) is an empty bucket.
        let (n3, e3) = insert(&mut h, 4, 17, 3, 300, 13_000).unwrap();
        assert_eq!((n3, e3.prev_index), (3, 0));
        assert_eq!(
            h,
            IndexHeader {
                begin_timestamp: 10_000,
                end_timestamp: 13_000,
                begin_phy_offset: 100,
                end_phy_offset: 300,
                hash_slot_count: 2,
                index_count: 4,
            }
        );
        assert_eq!(insert(&mut h, 4, 0, 1, 400, 14_000), None);
    }

    #[test]
    fn layout_golden_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = IndexStore::open(dir.path(), tiny(2, 4), 0).unwrap();
        // "T#a" (81906) and "T#c" (81908) share slot 0 of 2.
        put_all(
            &mut index,
            &[(&["a"], 0, 1_000_000), (&["c"], 100, 1_002_500)],
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // Created for a record stored at 1970-01-01 00:16:40.000 UTC.
        assert_eq!(names, ["19700101001640000"]);
        let bytes = fs::read(dir.path().join(&names[0])).unwrap();
        assert_eq!(bytes.len(), 40 + 2 * 4 + 4 * 20);
        let expected = concat!(
            // header: begin/end timestamp, begin/end offset, hashSlotCount 1, indexCount 3
            "00000000000f4240",
            "00000000000f4c04",
            "0000000000000000",
            "0000000000000064",
            "00000001",
            "00000003",
            // slots: bucket 0 → entry 2, bucket 1 empty
            "00000002",
            "00000000",
            // entry 0, unused
            "0000000000000000000000000000000000000000",
            // entry 1: hash 81906, offset 0, 0 s, no previous
            "00013ff2",
            "0000000000000000",
            "00000000",
            "00000000",
            // entry 2: hash 81908, offset 100, 2 s, previous 1
            "00013ff4",
            "0000000000000064",
            "00000002",
            "00000001",
            // entry 3, free
            "0000000000000000000000000000000000000000",
        );
        assert_eq!(hex(&bytes), expected);
    }

    #[test]
    fn collisions_share_a_chain_and_lookups_filter_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        // One slot: every key collides into one chain.
        let (mut index, _) = IndexStore::open(dir.path(), tiny(1, 100), 0).unwrap();
        put_all(
            &mut index,
            &[
                (&["a", "b"], 0, 1_000),
                (&["b"], 100, 2_000),
                (&["a"], 200, 3_000),
                (&["c", "a", "a"], 300, 4_000),
            ],
        );
        assert_eq!(find(&index, "a"), [300, 200, 0]);
        assert_eq!(find(&index, "b"), [100, 0]);
        assert_eq!(find(&index, "c"), [300]);
        assert!(find(&index, "d").is_empty());
        assert!(index.lookup("U", "a", 0, i64::MAX, 64).unwrap().is_empty());
        assert_eq!(index.lookup("T", "a", 0, i64::MAX, 2).unwrap(), [300, 200]);
        assert_eq!(index.last_update(), (4_000, 300));
        assert_eq!(index.covered(), Some(300));
    }

    #[test]
    fn collect_chain_stops_at_limit_budget_time_and_bad_links() {
        let header = IndexHeader {
            begin_timestamp: 10_000,
            end_timestamp: 20_000,
            begin_phy_offset: 0,
            end_phy_offset: 400,
            hash_slot_count: 1,
            index_count: 6,
        };
        let e = |h, phy, secs, prev| IndexEntry {
            key_hash: h,
            phy_offset: phy,
            time_diff: secs,
            prev_index: prev,
        };
        // 5 → 4 → 3 → 2 → 1; entry 3 is another key; entry 2 repeats entry 4's offset.
        let entries = [
            e(0, 0, 0, 0),
            e(7, 0, 0, 0),
            e(7, 300, 3, 1),
            e(8, 200, 5, 2),
            e(7, 300, 7, 3),
            e(7, 400, 9, 4),
        ];
        let read = |n: i32| -> Result<IndexEntry, ()> { Ok(entries[n as usize]) };
        let walk = |begin, end, limit, budget: usize| {
            let mut out = Vec::new();
            let mut budget = budget;
            let q = Lookup {
                key_hash: 7,
                begin,
                end,
                limit,
            };
            collect_chain(&header, 5, &q, &mut budget, &mut out, read).unwrap();
            (out, budget)
        };
        assert_eq!(walk(0, i64::MAX, 10, 100), (vec![400, 300, 0], 95));
        assert_eq!(walk(0, i64::MAX, 2, 100).0, [400, 300]);
        assert_eq!(walk(0, i64::MAX, 10, 2).0, [400, 300]);
        // Stored 7 s .. 9 s after the begin: the walk ends at the entry of 5 s.
        assert_eq!(walk(17_000, 19_000, 10, 100), (vec![400, 300], 97));
        assert_eq!(walk(0, 18_000, 10, 100).0, [300, 0]);
        // A slot that is not an entry, an empty file, a link forward: nothing or a stop.
        let mut out = Vec::new();
        let q = Lookup {
            key_hash: 7,
            begin: 0,
            end: i64::MAX,
            limit: 10,
        };
        collect_chain(&header, 6, &q, &mut 100, &mut out, read).unwrap();
        collect_chain(
            &IndexHeader::starting_at(0, 0),
            1,
            &q,
            &mut 100,
            &mut out,
            read,
        )
        .unwrap();
        assert!(out.is_empty());
        let looped = |n: i32| -> Result<IndexEntry, ()> { Ok(e(7, n.into(), 0, 5)) };
        collect_chain(&header, 5, &q, &mut 100, &mut out, looped).unwrap();
        assert_eq!(out, [5]);
    }

    #[test]
    fn time_ranges_pick_files_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        // Two entries per file.
        let (mut index, _) = IndexStore::open(dir.path(), tiny(4, 3), 0).unwrap();
        put_all(
            &mut index,
            &[
                (&["k"], 0, 100_000),
                (&["k"], 100, 105_000),
                (&["k"], 200, 110_000),
                (&["k"], 300, 115_000),
                (&["k"], 400, 120_000),
            ],
        );
        assert_eq!(index.files.len(), 3);
        let q = |b, e| index.lookup("T", "k", b, e, 64).unwrap();
        assert_eq!(q(0, i64::MAX), [400, 300, 200, 100, 0]);
        assert_eq!(q(105_000, 115_000), [300, 200, 100]);
        assert_eq!(q(110_000, 110_000), [200]);
        assert_eq!(q(121_000, i64::MAX), Vec::<u64>::new());
        assert_eq!(q(0, 99_999), Vec::<u64>::new());
        // The second file begins where the first ends, then at its first record.
        assert_eq!(index.files[1].header.begin_timestamp, 110_000);
        assert_eq!(index.files[1].header.begin_phy_offset, 200);
    }

    #[test]
    fn a_full_file_rolls_and_a_record_stays_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = IndexStore::open(dir.path(), tiny(3, 4), 0).unwrap();
        // Three entries per file: two keys, then three do not fit with them.
        put_all(
            &mut index,
            &[(&["a", "b"], 0, 5_000), (&["c", "d", "e"], 100, 5_000)],
        );
        assert_eq!(index.files.len(), 2);
        assert_eq!(index.files[0].header.index_count, 3);
        assert_eq!(index.files[1].header.index_count, 4);
        // The same store time: the second file's name is a millisecond later.
        assert_eq!(index.files[0].created + 1, index.files[1].created);
        put_all(&mut index, &[(&["a"], 200, 6_000)]);
        assert_eq!(index.files.len(), 3);
        assert_eq!(find(&index, "a"), [200, 0]);
        assert_eq!(find(&index, "e"), [100]);
        // A record with more keys than a file holds: as many as fit.
        put_all(&mut index, &[(&["v", "w", "x", "y", "z"], 300, 7_000)]);
        assert_eq!(find(&index, "x"), [300]);
        assert!(find(&index, "y").is_empty());
        // Sealed files keep their slots on disk, and the headers are on disk after a flush.
        let (reopened, rec) = IndexStore::open(dir.path(), tiny(3, 4), 1_000).unwrap();
        assert_eq!((rec.files, rec.removed), (4, 0));
        for k in ["a", "b", "c", "d", "e", "x"] {
            assert_eq!(find(&reopened, k), find(&index, k), "{k}");
        }
    }

    #[test]
    fn a_flush_taken_before_a_seal_does_not_undo_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny(3, 6);
        let (mut index, _) = IndexStore::open(dir.path(), c.clone(), 0).unwrap();
        put_all(&mut index, &[(&["a"], 0, 1_000)]);
        index.put_record("T", &["b"], 100, 2_000).unwrap();
        index.finish();
        // A flush takes the first file's header (2 entries) and its changed slots...
        let late = index.flush_job();
        // ... then puts fill the file (4 entries) and seal it, and only then the flush runs.
        index.put_record("T", &["c", "d"], 200, 3_000).unwrap();
        index.put_record("T", &["e", "f"], 300, 4_000).unwrap();
        index.finish();
        assert_eq!(index.files.len(), 2);
        late.run().unwrap();
        index.flush_job().run().unwrap();
        drop(index);
        let (index, rec) = IndexStore::open(dir.path(), c, 1_000).unwrap();
        assert_eq!((rec.files, rec.removed), (2, 0));
        assert_eq!(index.files[0].header.index_count, 5);
        for (k, at) in [("a", 0), ("b", 100), ("c", 200), ("d", 200), ("e", 300)] {
            assert_eq!(find(&index, k), [at], "{k}");
        }
    }

    #[test]
    fn reopening_keeps_the_index_and_its_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny(5, 8);
        let (mut index, rec) = IndexStore::open(dir.path(), c.clone(), 0).unwrap();
        assert_eq!(rec, IndexRecovery::default());
        assert_eq!(index.covered(), None);
        assert_eq!(index.resume_from(), Some(0));
        let records: Vec<(Vec<String>, u64, i64)> = (0..20u64)
            .map(|i| {
                (
                    vec![format!("k{}", i % 4), format!("u{i}")],
                    i * 100,
                    1_000 + i as i64,
                )
            })
            .collect();
        for (keys, phy, ts) in &records {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            index.put_record("T", &keys, *phy, *ts).unwrap();
        }
        index.finish();
        index.flush_job().run().unwrap();
        let before: Vec<_> = (0..4).map(|k| find(&index, &format!("k{k}"))).collect();
        assert_eq!(before[1], [1700, 1300, 900, 500, 100]);
        drop(index);
        let (index, rec) = IndexStore::open(dir.path(), c.clone(), 2_000).unwrap();
        assert_eq!(
            (rec.removed, rec.slots_repaired, rec.entries_undone),
            (0, 0, 0)
        );
        assert_eq!(index.covered(), Some(1900));
        let after: Vec<_> = (0..4).map(|k| find(&index, &format!("k{k}"))).collect();
        assert_eq!(after, before);
        assert_eq!(find(&index, "u7"), [700]);
        // Another size: every file is dropped and the index starts again.
        drop(index);
        let (index, rec) = IndexStore::open(dir.path(), tiny(6, 8), 2_000).unwrap();
        assert_eq!((rec.files, index.covered()), (0, None));
        assert!(rec.removed > 0);
        // A disabled index touches nothing and takes nothing.
        let (index, _) = IndexStore::open(
            dir.path().join("off"),
            IndexConfig {
                enabled: false,
                ..c
            },
            0,
        )
        .unwrap();
        assert_eq!(index.resume_from(), None);
        assert!(!dir.path().join("off").exists());
    }

    #[test]
    fn an_unflushed_tail_is_repaired_from_the_last_header() {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny(3, 50);
        let (mut index, _) = IndexStore::open(dir.path(), c.clone(), 0).unwrap();
        put_all(&mut index, &[(&["a"], 0, 1_000), (&["b"], 100, 2_000)]);
        // Entries written, the header not: as a crash in a flush leaves it after it wrote the
        // slots (all three point past the header's entries now) and before the header.
        index.put_record("T", &["a", "c"], 200, 3_000).unwrap();
        index.put_record("T", &["b"], 300, 4_000).unwrap();
        index.finish();
        let f = &index.files[0];
        let table = f.slots.as_ref().unwrap();
        write_slots(&*f.file, &f.path, table, vec![0]).unwrap();
        drop(index);
        let (index, rec) = IndexStore::open(dir.path(), c.clone(), 1_000).unwrap();
        assert_eq!(rec.slots_repaired, 3);
        assert_eq!(index.covered(), Some(100));
        assert_eq!(find(&index, "a"), [0]);
        assert_eq!(find(&index, "b"), [100]);
        assert!(find(&index, "c").is_empty());
        assert_eq!(index.resume_from(), Some(100));
    }

    #[test]
    fn entries_past_a_cut_log_are_undone() {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny(2, 4);
        let (mut index, _) = IndexStore::open(dir.path(), c.clone(), 0).unwrap();
        put_all(
            &mut index,
            &[
                (&["a"], 0, 1_000),
                (&["a"], 100, 2_000),
                (&["b"], 200, 3_000),
                (&["a", "b"], 300, 4_000),
                (&["a"], 400, 5_000),
            ],
        );
        assert_eq!(index.files.len(), 2);
        drop(index);
        // The log now ends at 150: the file from offset 300 on goes, the first loses offset 200.
        let (mut index, rec) = IndexStore::open(dir.path(), c.clone(), 150).unwrap();
        assert_eq!((rec.files, rec.removed, rec.entries_undone), (1, 1, 1));
        assert_eq!(index.covered(), Some(100));
        assert_eq!(find(&index, "a"), [100, 0]);
        assert!(find(&index, "b").is_empty());
        assert_eq!(index.files[0].header.hash_slot_count, 1);
        assert_eq!(index.last_update(), (2_000, 100));
        // Indexing goes on from there, records written again at the same offsets.
        put_all(&mut index, &[(&["c"], 200, 6_000)]);
        assert_eq!(find(&index, "c"), [200]);
        drop(index);
        let (index, _) = IndexStore::open(dir.path(), c, 1_000).unwrap();
        assert_eq!(find(&index, "a"), [100, 0]);
        assert_eq!(find(&index, "c"), [200]);
    }

    #[test]
    fn torn_files_and_what_follows_them_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = tiny(2, 3);
        let (mut index, _) = IndexStore::open(dir.path(), c.clone(), 0).unwrap();
        put_all(
            &mut index,
            &[
                (&["a"], 0, 1_000),
                (&["a"], 100, 2_000),
                (&["a"], 200, 3_000),
                (&["a"], 300, 4_000),
                (&["a"], 400, 5_000),
            ],
        );
        let second = index.files[1].path.clone();
        drop(index);
        // The second file's header is lost: it and the third go, the first stays.
        let f = OpenOptions::new().write(true).open(&second).unwrap();
        f.write_all_at(&[0u8; HEADER_SIZE], 0).unwrap();
        fs::write(dir.path().join("not-an-index"), b"x").unwrap();
        let (index, rec) = IndexStore::open(dir.path(), c.clone(), 1_000).unwrap();
        assert_eq!((rec.files, rec.removed), (1, 2));
        assert_eq!(index.covered(), Some(100));
        assert_eq!(find(&index, "a"), [100, 0]);
        assert!(dir.path().join("not-an-index").exists());
    }

    #[test]
    fn a_failed_index_stops_and_answers_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = IndexStore::open(dir.path(), tiny(2, 10), 0).unwrap();
        put_all(&mut index, &[(&["a"], 0, 1_000)]);
        index.fail("disk gone".into());
        assert_eq!(index.resume_from(), None);
        assert!(matches!(
            index.lookup("T", "a", 0, i64::MAX, 1),
            Err(Error::Failed(_))
        ));
        assert!(index.flush_job().files.is_empty());
    }

    #[test]
    fn file_names_are_utc_creation_times() {
        assert_eq!(file_name(0), "19700101000000000");
        assert_eq!(file_name(1_700_000_000_123), "20231114221320123");
        assert_eq!(file_name(951_782_400_000), "20000229000000000");
        assert_eq!(file_name(-5), "19700101000000000");
        for ms in [0, 1_700_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_file_name(&file_name(ms)), Some(ms));
        }
        for bad in [
            "2023111422132012",
            "20231314221320123",
            "20230230000000000",
            "x0231114221320123",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
