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
//!
//! It also decides retention, as RocketMQ's `CleanCommitLogService` / `CleanConsumeQueueService`
//! (`DefaultMessageStore`, every `cleanResourceInterval`, 10 s): which CommitLog segments a
//! clean pass deletes ([`segments_to_delete`]), which ConsumeQueue and index files follow them
//! ([`files_below`]), where a queue then starts ([`first_at_or_above`]), and whether a put is
//! refused because the disk is nearly full ([`put_allowed`]).

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

/// Why a broker's store takes no put, if it does not (`DefaultMessageStore.putMessage`: a
/// slave's log is its master's copy; anything else written to it would diverge from the master).
/// The broker answers SERVICE_NOT_AVAILABLE with it.
pub fn put_refused(role: BrokerRole) -> Option<&'static str> {
    (role == BrokerRole::Slave).then_some(
        "message store is slave mode, so putMessage is forbidden (the slave takes no writes)",
    )
}

/// `sysFlag`'s transaction type bits (`MessageSysFlag.TRANSACTION_*_TYPE`).
const TRANSACTION_TYPE_MASK: i32 = 0xC;
const TRANSACTION_PREPARED: i32 = 0x4;
const TRANSACTION_ROLLBACK: i32 = 0xC;

/// Whether a stored record gets a ConsumeQueue entry (`CommitLogDispatcherBuildConsumeQueue`):
/// not a prepared or rolled-back transaction message, which RocketMQ stores with queue offset 0
/// and keeps out of its queues. (A Sextant master refuses transaction messages; a Sextant slave
/// of a RocketMQ master meets them.)
pub fn dispatched_to_queue(sys_flag: i32) -> bool {
    !matches!(
        sys_flag & TRANSACTION_TYPE_MASK,
        TRANSACTION_PREPARED | TRANSACTION_ROLLBACK
    )
}

/// Whether a stored record is indexed by key (`IndexService.buildIndex`): not a rolled-back
/// transaction message.
pub fn indexed(sys_flag: i32) -> bool {
    sys_flag & TRANSACTION_TYPE_MASK != TRANSACTION_ROLLBACK
}

/// Retention settings (RocketMQ's `MessageStoreConfig` names in brackets, its defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    /// How long a segment is kept after its newest record (`fileReservedTime`, 72 h).
    pub file_reserved_ms: u64,
    /// The hours of the day (0–23) at which expired segments are deleted (`deleteWhen`, "04";
    /// RocketMQ takes a list such as "04;05").
    pub delete_when: Vec<u32>,
    /// Above this share of the disk used, expired segments are deleted at any hour
    /// (`diskMaxUsedSpaceRatio`, 75 %).
    pub disk_max_used_ratio: f64,
    /// Above this share, segments are deleted whether expired or not, oldest first, when
    /// `clean_file_forcibly` (`diskSpaceCleanForciblyRatio`, 0.85).
    pub disk_clean_forcibly_ratio: f64,
    /// Above this share, puts are refused (`diskSpaceWarningLevelRatio`, 0.90).
    pub disk_warning_ratio: f64,
    /// Whether a disk above `disk_clean_forcibly_ratio` deletes unexpired segments
    /// (`cleanFileForciblyEnable`, true).
    pub clean_file_forcibly: bool,
    /// Segments one pass deletes at most (`MappedFileQueue.DELETE_FILES_BATCH_MAX`, 10).
    pub delete_files_batch_max: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            file_reserved_ms: 72 * 3_600_000,
            delete_when: vec![4],
            disk_max_used_ratio: 0.75,
            disk_clean_forcibly_ratio: 0.85,
            disk_warning_ratio: 0.90,
            clean_file_forcibly: true,
            delete_files_batch_max: 10,
        }
    }
}

impl Retention {
    /// The hours of RocketMQ's `deleteWhen` ("04", "04;05"); `None` if one is not an hour.
    pub fn parse_delete_when(s: &str) -> Option<Vec<u32>> {
        s.split(';')
            .map(|h| h.trim().parse::<u32>().ok().filter(|h| *h < 24))
            .collect()
    }
}

/// One CommitLog segment, as a clean pass sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its first offset.
    pub start: u64,
    /// Its end (the start of the next segment).
    pub end: u64,
    /// When it was last written (ms): RocketMQ takes the file's modification time; Sextant the
    /// store timestamp of its newest record, which is the same moment give or take the flush.
    pub last_modified_ms: i64,
}

/// What one clean pass sees besides the segments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanInput {
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// The hour of the day now (0–23), for `deleteWhen`.
    pub hour_of_day: u32,
    /// The share of the store's disk used (0.0–1.0; negative when it could not be measured,
    /// which triggers a pass as a full disk does, of expired segments only).
    pub disk_used_ratio: f64,
    /// An operator asked for a deletion (`executeDeleteFilesManually`).
    pub manual: bool,
    /// No segment holding an offset at or above this may go (what a reader still needs: the
    /// dispatcher's position, a slave's; `u64::MAX` when nothing holds any back).
    pub min_needed_offset: u64,
}

/// Why a clean pass deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CleanTrigger {
    /// The hour is one of `deleteWhen`.
    Time,
    /// The disk is above `disk_max_used_ratio`.
    Space,
    /// An operator asked.
    Manual,
}

/// A clean pass's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanPlan {
    /// What triggered the pass (`None`: it deletes nothing).
    pub trigger: Option<CleanTrigger>,
    /// Whether unexpired segments go too (the disk is above `disk_clean_forcibly_ratio`).
    pub forcibly: bool,
    /// The start offsets of the segments to delete: the oldest, in order.
    pub delete: Vec<u64>,
}

/// The segments a clean pass deletes (`CleanCommitLogService.deleteExpiredFiles` and
/// `MappedFileQueue.deleteExpiredFileByTime`), `segments` oldest first, the last being the one
/// written to: the pass runs at a `deleteWhen` hour, when the disk is above
/// `disk_max_used_ratio`, or when asked; it then takes segments oldest first while each has
/// expired (`last_modified + file_reserved <= now`) or the disk is above
/// `disk_clean_forcibly_ratio` (with `clean_file_forcibly`), stopping at the first that has not
/// — never the last segment, never one holding `min_needed_offset` or later, at most
/// `delete_files_batch_max`.
pub fn segments_to_delete(
    segments: &[SegmentInfo],
    input: CleanInput,
    cfg: &Retention,
) -> CleanPlan {
    let ratio = input.disk_used_ratio;
    let space = ratio < 0.0 || ratio > cfg.disk_max_used_ratio;
    let trigger = if cfg.delete_when.contains(&input.hour_of_day) {
        Some(CleanTrigger::Time)
    } else if space {
        Some(CleanTrigger::Space)
    } else if input.manual {
        Some(CleanTrigger::Manual)
    } else {
        None
    };
    // A ratio that could not be measured triggers a pass but deletes only expired segments
    // (RocketMQ sets `cleanImmediately` only above the forcible ratio).
    let forcibly = cfg.clean_file_forcibly && ratio > cfg.disk_clean_forcibly_ratio;
    let mut delete = Vec::new();
    if trigger.is_some() {
        for s in segments.iter().take(segments.len().saturating_sub(1)) {
            if delete.len() >= cfg.delete_files_batch_max || s.end > input.min_needed_offset {
                break;
            }
            let expires = s
                .last_modified_ms
                .saturating_add(i64::try_from(cfg.file_reserved_ms).unwrap_or(i64::MAX));
            if input.now_ms < expires && !forcibly {
                break;
            }
            delete.push(s.start);
        }
    }
    CleanPlan {
        trigger,
        forcibly,
        delete,
    }
}

/// The disk is too full to take a put (`PutMessageStatus.SERVICE_NOT_AVAILABLE` with the disk
/// marked full, `runningFlags.getAndMakeDiskFull`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskFull {
    /// The share of the disk used.
    pub used_ratio: f64,
}

/// Whether a put may be stored with `disk_used_ratio` of the disk used: refused above
/// `disk_warning_ratio` (reads go on; nothing stored is lost).
pub fn put_allowed(disk_used_ratio: f64, cfg: &Retention) -> Result<(), DiskFull> {
    if disk_used_ratio > cfg.disk_warning_ratio {
        Err(DiskFull {
            used_ratio: disk_used_ratio,
        })
    } else {
        Ok(())
    }
}

/// How many of a queue's or the index's files go once the CommitLog starts at `log_start`,
/// given each file's highest CommitLog offset, oldest first
/// (`MappedFileQueue.deleteExpiredFileByOffset`, `IndexService.deleteExpiredFile`): the oldest
/// files while their highest offset is below `log_start`, never the last one (written to).
pub fn files_below(highest: &[u64], log_start: u64) -> usize {
    highest
        .iter()
        .take(highest.len().saturating_sub(1))
        .take_while(|h| **h < log_start)
        .count()
}

/// Where a queue starts once the CommitLog starts at `log_start` (`ConsumeQueue.correctMinOffset`):
/// the first of `offsets` (the CommitLog offsets of its entries from its first file on, rising)
/// at or above `log_start`, `offsets.len()` when none is. A binary search over `get(i)`.
pub fn first_at_or_above<E>(
    len: u64,
    log_start: u64,
    mut get: impl FnMut(u64) -> Result<u64, E>,
) -> Result<u64, E> {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if get(mid)? < log_start {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
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
    fn transaction_halves_stay_out_of_the_queues() {
        assert!(dispatched_to_queue(0) && indexed(0));
        assert!(!dispatched_to_queue(0x4) && indexed(0x4));
        assert!(dispatched_to_queue(0x8) && indexed(0x8));
        assert!(!dispatched_to_queue(0xC) && !indexed(0xC));
        // Other flags (compressed, multi-tags, born host v6) do not matter.
        assert!(dispatched_to_queue(0x1 | 0x2 | 0x10) && indexed(0x1 | 0x10));
    }

    #[test]
    fn only_a_slave_refuses_puts() {
        assert!(put_refused(BrokerRole::Slave).is_some());
        assert_eq!(put_refused(BrokerRole::AsyncMaster), None);
        assert_eq!(put_refused(BrokerRole::SyncMaster), None);
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

    const H: i64 = 3_600_000;

    fn segs(times: &[i64]) -> Vec<SegmentInfo> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| SegmentInfo {
                start: i as u64 * 100,
                end: i as u64 * 100 + 100,
                last_modified_ms: *t,
            })
            .collect()
    }

    fn input(now_ms: i64, hour_of_day: u32, disk_used_ratio: f64) -> CleanInput {
        CleanInput {
            now_ms,
            hour_of_day,
            disk_used_ratio,
            manual: false,
            min_needed_offset: u64::MAX,
        }
    }

    #[test]
    fn expired_segments_go_at_the_delete_hour_oldest_first() {
        let cfg = Retention::default();
        let s = segs(&[0, H, 2 * H, 100 * H]);
        // 73 h: the first two have expired, the third not yet (it stops there).
        let plan = segments_to_delete(&s, input(73 * H, 4, 0.1), &cfg);
        assert_eq!(plan.trigger, Some(CleanTrigger::Time));
        assert_eq!(plan.delete, [0, 100]);
        // Any other hour, a roomy disk: nothing.
        let plan = segments_to_delete(&s, input(73 * H, 5, 0.1), &cfg);
        assert_eq!((plan.trigger, plan.delete.len()), (None, 0));
        // Asked: the same two.
        let mut asked = input(73 * H, 5, 0.1);
        asked.manual = true;
        assert_eq!(segments_to_delete(&s, asked, &cfg).delete, [0, 100]);
    }

    #[test]
    fn ratios_exactly_at_a_threshold_are_not_over_it() {
        let cfg = Retention::default();
        let s = segs(&[0, H, 2 * H, 100 * H]);
        let at = |ratio| segments_to_delete(&s, input(10 * H, 5, ratio), &cfg);
        // An empty disk is a measured ratio, not a failed measurement.
        assert_eq!(at(0.0).trigger, None);
        assert_eq!(at(cfg.disk_max_used_ratio).trigger, None);
        let forcible = at(cfg.disk_clean_forcibly_ratio);
        assert_eq!(forcible.trigger, Some(CleanTrigger::Space));
        assert!(!forcible.forcibly);
        assert!(forcible.delete.is_empty(), "nothing has expired at 10 h");
        // A segment ending exactly at the oldest offset still needed holds none of it.
        let mut needed = input(73 * H, 4, 0.1);
        needed.min_needed_offset = 100;
        assert_eq!(segments_to_delete(&s, needed, &cfg).delete, [0]);
        needed.min_needed_offset = 99;
        assert!(segments_to_delete(&s, needed, &cfg).delete.is_empty());
    }

    #[test]
    fn a_full_disk_deletes_at_any_hour_and_forcibly_above_85_percent() {
        let cfg = Retention::default();
        let s = segs(&[0, H, 2 * H, 100 * H]);
        let plan = segments_to_delete(&s, input(73 * H, 5, 0.80), &cfg);
        assert_eq!(plan.trigger, Some(CleanTrigger::Space));
        assert!(!plan.forcibly);
        assert_eq!(plan.delete, [0, 100]);
        // Above 85 %: unexpired ones too, but never the last.
        let plan = segments_to_delete(&s, input(10 * H, 5, 0.86), &cfg);
        assert!(plan.forcibly);
        assert_eq!(plan.delete, [0, 100, 200]);
        // Without cleanFileForciblyEnable, only expired ones.
        let cfg2 = Retention {
            clean_file_forcibly: false,
            ..Retention::default()
        };
        assert_eq!(
            segments_to_delete(&s, input(10 * H, 5, 0.95), &cfg2)
                .delete
                .len(),
            0
        );
        // A disk that cannot be measured triggers a pass of expired segments only.
        let plan = segments_to_delete(&s, input(73 * H, 5, -1.0), &cfg);
        assert_eq!(
            (plan.trigger, plan.forcibly),
            (Some(CleanTrigger::Space), false)
        );
        assert_eq!(plan.delete, [0, 100]);
    }

    #[test]
    fn what_is_needed_the_batch_and_the_active_segment_hold_deletion_back() {
        let cfg = Retention {
            delete_files_batch_max: 2,
            ..Retention::default()
        };
        let s = segs(&[0; 6]);
        assert_eq!(
            segments_to_delete(&s, input(100 * H, 4, 0.1), &cfg).delete,
            [0, 100]
        );
        let mut needed = input(100 * H, 4, 0.1);
        needed.min_needed_offset = 150;
        // Segment 100..200 holds offset 150: only the first goes.
        assert_eq!(
            segments_to_delete(&s, needed, &Retention::default()).delete,
            [0]
        );
        // One segment (being written): never.
        assert!(
            segments_to_delete(&s[..1], input(100 * H, 4, 0.99), &cfg)
                .delete
                .is_empty()
        );
    }

    #[test]
    fn puts_are_refused_above_the_warning_ratio() {
        let cfg = Retention::default();
        assert_eq!(put_allowed(0.90, &cfg), Ok(()));
        assert_eq!(put_allowed(0.91, &cfg), Err(DiskFull { used_ratio: 0.91 }));
    }

    #[test]
    fn queue_and_index_files_follow_the_log_start() {
        assert_eq!(files_below(&[10, 20, 30], 25), 2);
        assert_eq!(files_below(&[10, 20, 30], 100), 2, "never the last");
        assert_eq!(files_below(&[10, 5, 30], 8), 0, "stops at the first kept");
        assert_eq!(files_below(&[], 8), 0);
        let offsets = [3u64, 5, 9, 12];
        let at = |s| first_at_or_above::<()>(4, s, |i| Ok(offsets[i as usize]));
        assert_eq!(at(0), Ok(0));
        assert_eq!(at(6), Ok(2));
        assert_eq!(at(13), Ok(4));
    }

    #[test]
    fn delete_when_and_hours() {
        assert_eq!(Retention::parse_delete_when("04"), Some(vec![4]));
        assert_eq!(Retention::parse_delete_when("04;05"), Some(vec![4, 5]));
        assert_eq!(Retention::parse_delete_when("24"), None);
    }
}
