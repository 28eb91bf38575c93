//! # sextant-store — the broker's storage
//!
//! So far: the [`CommitLog`], RocketMQ's append-only message log, and the [`ConsumeQueue`], the
//! 20-byte-entry index of one topic queue into it. Records are stored in RocketMQ's
//! own layout (`sextant_remoting::message`), in segment files named by their 20-digit start
//! offset, so that a pull answers with bytes copied straight from disk. On open the log is
//! recovered: every record is checked (size, magic code, body CRC, its own physical offset), and
//! the log is truncated at the first one that fails — the torn tail a crash leaves.
//!
//! A ConsumeQueue recovers to its last valid entry and can be cut back to a recovered CommitLog's
//! end. Dispatching (building queues from the log), consumer offsets, flush modes with group
//! commit, and the broker that drives them come next (issue 5).

mod commitlog;
mod consumequeue;
mod files;

pub use commitlog::{CommitLog, DEFAULT_SEGMENT_SIZE, Recovery};
pub use consumequeue::{ConsumeQueue, CqEntry, DEFAULT_ENTRIES_PER_FILE, ENTRY_SIZE};

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
}
