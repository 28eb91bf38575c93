//! The broker store's durability decisions: when a stored message may be acknowledged to its
//! producer, given the flush mode (`flushDiskType`) and the replication role (`brokerRole`).
//!
//! RocketMQ's `CommitLog` appends a message to the page cache, then (`handleDiskFlushAndHA`):
//! - with `SYNC_FLUSH` it waits for a group commit to fsync past the message, or answers
//!   `FLUSH_DISK_TIMEOUT` after `syncFlushTimeout`;
//! - with `SYNC_MASTER` it answers `SLAVE_NOT_AVAILABLE` at once when no slave is connected (or
//!   one lags by more than `haMaxGapNotInSync`), else waits for the slave to report it has the
//!   message, or answers `FLUSH_SLAVE_TIMEOUT`.
//!
//! Only `PUT_OK` becomes the producer's `SEND_OK`. The other answers leave the message stored on
//! the master, unacknowledged. This module decides which answer applies, from positions the caller
//! observes; the store (`impl/store`) and the durability model (`checks/`) both call it.

use std::fmt;

/// `flushDiskType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FlushDiskType {
    /// Acknowledge after an fsync (group commit) covers the message.
    SyncFlush,
    /// Acknowledge once the message is in the page cache; a background thread flushes.
    #[default]
    AsyncFlush,
}

/// `brokerRole`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BrokerRole {
    /// A master that replicates in the background.
    #[default]
    AsyncMaster,
    /// A master that acknowledges only what its slave holds.
    SyncMaster,
    /// A slave: takes no writes.
    Slave,
}

impl FlushDiskType {
    /// RocketMQ's configuration name (`SYNC_FLUSH`, `ASYNC_FLUSH`).
    pub fn name(self) -> &'static str {
        match self {
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
        }
    }
}

impl BrokerRole {
    /// RocketMQ's configuration name (`ASYNC_MASTER`, `SYNC_MASTER`, `SLAVE`).
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

impl fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the store stands with respect to one appended message, as the caller observes it.
/// Positions are commit-log offsets (or message counts: any measure that grows with the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutProgress {
    /// The log position just past the message.
    pub end: u64,
    /// How far the log is on disk (fsynced).
    pub flushed: u64,
    /// How far the slave has reported holding the log, or `None` when no slave is connected in
    /// sync (absent, or lagging by more than `haMaxGapNotInSync`).
    pub slave_acked: Option<u64>,
    /// The wait for the flush or the slave has passed its timeout.
    pub timed_out: bool,
}

/// The store's answer to a put (`PutMessageStatus`), or that it is still waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PutVerdict {
    /// Not yet decided: waiting for the flush or the slave.
    Wait,
    /// `PUT_OK`: the producer gets `SEND_OK`.
    Ok,
    /// `FLUSH_DISK_TIMEOUT`: stored, not known to be on disk.
    FlushDiskTimeout,
    /// `FLUSH_SLAVE_TIMEOUT`: stored, the slave did not confirm in time.
    FlushSlaveTimeout,
    /// `SLAVE_NOT_AVAILABLE`: stored, no slave in sync to wait for.
    SlaveNotAvailable,
}

impl PutVerdict {
    /// Whether the producer is told `SEND_OK`.
    pub fn is_ack(self) -> bool {
        self == PutVerdict::Ok
    }
}

/// The answer to a put appended at `progress`, as `handleDiskFlushAndHA` decides it: the flush
/// first, then replication.
pub fn put_verdict(flush: FlushDiskType, role: BrokerRole, progress: PutProgress) -> PutVerdict {
    if flush == FlushDiskType::SyncFlush && progress.flushed < progress.end {
        return if progress.timed_out {
            PutVerdict::FlushDiskTimeout
        } else {
            PutVerdict::Wait
        };
    }
    if role == BrokerRole::SyncMaster {
        return match progress.slave_acked {
            None => PutVerdict::SlaveNotAvailable,
            Some(at) if at >= progress.end => PutVerdict::Ok,
            Some(_) if progress.timed_out => PutVerdict::FlushSlaveTimeout,
            Some(_) => PutVerdict::Wait,
        };
    }
    PutVerdict::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use FlushDiskType::*;

    fn at(flushed: u64, slave_acked: Option<u64>, timed_out: bool) -> PutProgress {
        PutProgress {
            end: 10,
            flushed,
            slave_acked,
            timed_out,
        }
    }

    #[test]
    fn async_everything_acks_at_once() {
        let v = put_verdict(AsyncFlush, BrokerRole::AsyncMaster, at(0, None, false));
        assert_eq!(v, PutVerdict::Ok);
        assert!(v.is_ack());
    }

    #[test]
    fn sync_flush_waits_for_the_fsync() {
        let role = BrokerRole::AsyncMaster;
        assert_eq!(
            put_verdict(SyncFlush, role, at(9, None, false)),
            PutVerdict::Wait
        );
        assert_eq!(
            put_verdict(SyncFlush, role, at(9, None, true)),
            PutVerdict::FlushDiskTimeout
        );
        assert_eq!(
            put_verdict(SyncFlush, role, at(10, None, false)),
            PutVerdict::Ok
        );
    }

    #[test]
    fn sync_master_waits_for_the_slave_after_the_flush() {
        let role = BrokerRole::SyncMaster;
        assert_eq!(
            put_verdict(AsyncFlush, role, at(0, None, false)),
            PutVerdict::SlaveNotAvailable
        );
        assert_eq!(
            put_verdict(AsyncFlush, role, at(0, Some(9), false)),
            PutVerdict::Wait
        );
        assert_eq!(
            put_verdict(AsyncFlush, role, at(0, Some(9), true)),
            PutVerdict::FlushSlaveTimeout
        );
        assert_eq!(
            put_verdict(AsyncFlush, role, at(0, Some(10), false)),
            PutVerdict::Ok
        );
        // SYNC_FLUSH + SYNC_MASTER: the slave alone is not enough.
        assert_eq!(
            put_verdict(SyncFlush, role, at(0, Some(10), false)),
            PutVerdict::Wait
        );
        assert_eq!(
            put_verdict(SyncFlush, role, at(10, Some(10), false)),
            PutVerdict::Ok
        );
    }

    #[test]
    fn names_are_rocketmqs() {
        assert_eq!(SyncFlush.to_string(), "SYNC_FLUSH");
        assert_eq!(BrokerRole::SyncMaster.to_string(), "SYNC_MASTER");
    }
}
