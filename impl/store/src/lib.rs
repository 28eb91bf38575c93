//! # sextant-store — the broker's storage
//!
//! The [`MessageStore`]: RocketMQ's append-only [`CommitLog`] and, dispatched from it, a
//! [`ConsumeQueue`] (20-byte entries) per topic queue, their file handles bounded by an LRU
//! (`StoreConfig::cq_max_open_files`); a flush thread for `SYNC_FLUSH` (group
//! commit: every put waiting when an fsync starts is covered by the next one) and `ASYNC_FLUSH`
//! (an interval); and recovery. Records are stored in RocketMQ's own layout
//! (`sextant_remoting::message`), in segment files named by their 20-digit start offset, so that
//! a pull answers with bytes copied straight from disk. The [`index`] (RocketMQ's `IndexFile`s)
//! finds records by key and unique key for QUERY_MESSAGE ([`MessageStore::query_message`]).
//!
//! On open the log is recovered — every record is checked (size, magic code, body CRC, its own
//! physical offset) and the log is cut at the first that fails, the torn tail a crash leaves —
//! the ConsumeQueues are cut back to it and the records past the last checkpoint are dispatched
//! again (verified where an entry exists). Without a checkpoint every queue is rebuilt. The
//! index is repaired to what its headers say is durable and takes the records past it.
//!
//! [`config`] keeps the small JSON files beside the logs (consumer offsets, topics), written
//! atomically. Which status a read answers is `sextant_model::broker::locate`'s decision.
//!
//! Retention ([`MessageStore::clean`]) deletes the oldest CommitLog segments as
//! `sextant_model::store::segments_to_delete` decides (RocketMQ's `CleanCommitLogService`), and
//! the ConsumeQueue and index files wholly below the log's new start; puts are refused with
//! [`Error::DiskFull`] above the disk's warning ratio (`put_allowed`).
//!
//! Every file goes through [`fs::Fs`]: [`fs::RealFs`] in a broker, and in tests (feature `sim`)
//! [`sim::SimFs`], a disk that loses what was not fsynced when the power goes.

mod commitlog;
pub mod config;
mod consumequeue;
mod files;
pub mod fs;
mod handles;
pub mod index;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod store;

pub use commitlog::{CommitLog, DEFAULT_SEGMENT_SIZE, FlushJob, Recovery};
pub use consumequeue::{ConsumeQueue, CqEntry, DEFAULT_ENTRIES_PER_FILE, ENTRY_SIZE};
pub use handles::DEFAULT_MAX_OPEN_CQ_FILES;
pub use index::{IndexConfig, IndexRecovery};
pub use store::{
    CleanReport, Get, GetResult, MAX_QUERY_BYTES, MessageStore, Put, PutResult, QueryResult,
    ReplicaAppend, StoreConfig, StoreRecovery, Stored, tags_code_of,
};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record is larger than a segment can hold.
    #[error("a record of {len} bytes does not fit a segment of {segment} bytes")]
    TooLarge {
        /// The record's size.
        len: usize,
        /// The segment size.
        segment: u64,
    },
    /// A record handed to `append` is not a stored-message record.
    #[error("not a message record: {0}")]
    BadRecord(String),
    /// The store's files are not what a commit log leaves (e.g. a gap between segments).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// An fsync failed earlier: what was written since may not be on disk, so the store takes
    /// no more puts (a later fsync could report success for pages the kernel already dropped).
    #[error("the store stopped taking messages after a failed flush: {0}")]
    Failed(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Another process has the store open.
    #[error("{0} is in use by another process")]
    Locked(std::path::PathBuf),
    /// A slave will not append a chunk where its master sent it (`sextant_model::ha`).
    #[error("replication refused: {0}")]
    Replica(#[from] sextant_model::ha::HaRefusal),
    /// A master streamed bytes that are not CommitLog records.
    #[error("bad replicated data: {0}")]
    BadReplica(String),
    /// The disk is above the warning ratio (`diskSpaceWarningLevelRatio`): puts are refused
    /// until retention or an operator frees space; reads go on.
    #[error("the disk is {:.1} % used: the store takes no puts", used_ratio * 100.0)]
    DiskFull {
        /// The share of the disk used.
        used_ratio: f64,
    },
}
