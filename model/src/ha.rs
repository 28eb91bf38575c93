//! Classic master/slave replication (RocketMQ's `DefaultHAService`, `DefaultHAConnection`,
//! `DefaultHAClient`): where a master starts streaming its CommitLog to a slave, how it cuts the
//! stream into chunks, which chunks a slave appends, and when a master counts a slave in sync.
//!
//! The wire (`../shared/docs/protocol.md` §8.4): the slave reports its CommitLog end as 8 bytes
//! (on connect, after each append, at least every `haSendHeartbeatInterval`); the master sends
//! `[startPhyOffset i64 | size i32 | size bytes of CommitLog]`, never across a segment boundary,
//! an empty chunk as a heartbeat. Positions here are CommitLog offsets; the stateright models
//! use message counts with a segment larger than any log, and the same functions.
//!
//! Divergence: a master that lost unflushed data (power loss) comes back with a shorter log than
//! its slave holds. Classic RocketMQ has no epochs, so neither side can repair that, nor always
//! see it: [`transfer_start`] refuses a slave ahead of the master, and [`accept_chunk`] a chunk
//! that does not start at the slave's end; but once the master's log grows past the slave's end,
//! streaming resumes there, and only the slave's record checks (in the store) can notice that the
//! master's bytes at that offset are the middle of a record. When a master record happens to
//! start exactly there, the slave's log silently continues its own lost records with the master's
//! new ones. The whole-cluster model's `divergence_skips_message` shows what consumers that read
//! the slave meanwhile can miss.

use std::fmt;

/// Bytes of a slave's offset report (`int64 maxPhyOffset`, big-endian).
pub const REPORT_LEN: usize = 8;
/// Bytes of a chunk header (`int64 startPhyOffset | int32 bodySize`).
pub const HEADER_LEN: usize = 12;
/// RocketMQ's `haTransferBatchSize`: the most bytes a master puts in one chunk (32 KiB).
pub const DEFAULT_TRANSFER_BATCH: usize = 32 * 1024;
/// The most bytes a slave accepts in one chunk: `DefaultHAClient`'s 4 MiB read buffer, so a
/// master configured with a larger batch than the default is still followed.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// RocketMQ's `haMaxGapNotInSync`: a slave further behind than this is not in sync (256 MiB).
pub const DEFAULT_MAX_GAP_NOT_IN_SYNC: u64 = 256 * 1024 * 1024;

/// The master's CommitLog as replication sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterLog {
    /// The oldest offset still stored (retention deletes segments below it).
    pub start: u64,
    /// The offset the next record goes to.
    pub end: u64,
    /// `mappedFileSizeCommitLog`: master and slave must use the same.
    pub segment_size: u64,
}

/// Why a master will not stream to a slave, or a slave will not append a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaRefusal {
    /// The slave holds more log than the master: the master lost data the slave has (the logs
    /// diverged). Neither appends across it; the slave must be rebuilt to follow this master.
    SlaveAhead {
        /// The slave's end.
        slave: u64,
        /// The master's end.
        master: u64,
    },
    /// The slave ends below the master's oldest stored offset: the records between are deleted
    /// on the master, so the slave can never catch up by streaming.
    SlaveBehindRetention {
        /// The slave's end.
        slave: u64,
        /// The master's oldest offset.
        master_start: u64,
    },
    /// A chunk that does not start where the slave's log ends (`DefaultHAClient`: "master
    /// pushed offset not equal the max phy offset in slave").
    Mismatch {
        /// The slave's end.
        slave: u64,
        /// Where the chunk starts.
        chunk: u64,
    },
    /// An empty slave's first chunk must start a segment.
    Unaligned {
        /// Where the chunk starts.
        chunk: u64,
        /// The segment size.
        segment_size: u64,
    },
    /// A chunk larger than a slave accepts ([`MAX_CHUNK`]).
    TooLarge {
        /// Its size.
        len: u64,
    },
    /// A chunk that runs past the end of its segment (masters never send one).
    CrossesSegment {
        /// Where it starts.
        chunk: u64,
        /// Its size.
        len: u64,
    },
}

impl fmt::Display for HaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HaRefusal::SlaveAhead { slave, master } => write!(
                f,
                "the slave's log ends at {slave}, past the master's end {master}: the master lost \
                 data the slave holds (the logs diverged); rebuild the slave to follow this master"
            ),
            HaRefusal::SlaveBehindRetention {
                slave,
                master_start,
            } => write!(
                f,
                "the slave's log ends at {slave}, below the master's oldest stored offset \
                 {master_start}: rebuild the slave"
            ),
            HaRefusal::Mismatch { slave, chunk } if chunk < slave => write!(
                f,
                "the master sent offset {chunk}, behind this slave's end {slave}: the master lost \
                 data the slave holds (the logs diverged); rebuild the slave to follow this master"
            ),
            HaRefusal::Mismatch { slave, chunk } => write!(
                f,
                "the master sent offset {chunk}, past this slave's end {slave}: a gap"
            ),
            HaRefusal::Unaligned {
                chunk,
                segment_size,
            } => write!(
                f,
                "an empty slave's first chunk at {chunk} does not start a {segment_size}-byte segment"
            ),
            HaRefusal::TooLarge { len } => {
                write!(
                    f,
                    "a chunk of {len} bytes is over the {MAX_CHUNK}-byte limit"
                )
            }
            HaRefusal::CrossesSegment { chunk, len } => {
                write!(f, "a chunk of {len} bytes at {chunk} runs past its segment")
            }
        }
    }
}

impl std::error::Error for HaRefusal {}

/// Where a master starts streaming to a slave that reported `reported` on connect
/// (`DefaultHAConnection.WriteSocketService`): a slave that holds nothing (0) starts at the start
/// of the master's last segment, as RocketMQ's does (it would otherwise copy the whole history);
/// any other slave continues from its own end, which must be within what the master stores.
pub fn transfer_start(reported: u64, master: MasterLog) -> Result<u64, HaRefusal> {
    if reported == 0 {
        let seg = master.segment_size.max(1);
        return Ok((master.end - master.end % seg).max(master.start));
    }
    if reported > master.end {
        return Err(HaRefusal::SlaveAhead {
            slave: reported,
            master: master.end,
        });
    }
    if reported < master.start {
        return Err(HaRefusal::SlaveBehindRetention {
            slave: reported,
            master_start: master.start,
        });
    }
    Ok(reported)
}

/// The next chunk a master sends from `from`: `(from, len)` with `len` at most `batch`, never
/// past the master's end or the end of `from`'s segment; `None` when the slave has everything
/// (the master then sends a heartbeat at `from` when one is due).
pub fn next_chunk(from: u64, master: MasterLog, batch: usize) -> Option<(u64, usize)> {
    let seg = master.segment_size.max(1);
    let segment_end = from - from % seg + seg;
    let len = (master.end.min(segment_end).saturating_sub(from)).min(batch.max(1) as u64);
    (len > 0).then_some((from, len as usize))
}

/// Whether a slave whose log ends at `slave_end` (`holds_nothing`: it stores no segment yet)
/// appends a chunk of `len` bytes at `chunk` (`DefaultHAClient.dispatchReadRequest`); a refusal
/// closes the HA connection and leaves the slave's log as it was. A heartbeat (`len` 0) is
/// checked the same way.
pub fn accept_chunk(
    slave_end: u64,
    holds_nothing: bool,
    chunk: u64,
    len: u64,
    segment_size: u64,
) -> Result<(), HaRefusal> {
    if len > MAX_CHUNK as u64 {
        return Err(HaRefusal::TooLarge { len });
    }
    let seg = segment_size.max(1);
    if holds_nothing {
        if !chunk.is_multiple_of(seg) {
            return Err(HaRefusal::Unaligned {
                chunk,
                segment_size,
            });
        }
    } else if chunk != slave_end {
        return Err(HaRefusal::Mismatch {
            slave: slave_end,
            chunk,
        });
    }
    if chunk % seg + len > seg {
        return Err(HaRefusal::CrossesSegment { chunk, len });
    }
    Ok(())
}

/// What a SYNC_MASTER counts as its slave's acknowledged offset for a put ending at
/// `master_end` (`DefaultHAService.isSlaveOK`): the offset the slave last reported, when a slave
/// is connected and lags by less than `max_gap`; `None` otherwise (the put answers
/// SLAVE_NOT_AVAILABLE). This is [`crate::store::PutProgress::slave_acked`].
pub fn slave_in_sync(master_end: u64, slave_acked: Option<u64>, max_gap: u64) -> Option<u64> {
    slave_acked.filter(|acked| master_end.saturating_sub(*acked) < max_gap)
}

/// Whether an HA connection that last heard from its peer at `last_heard` is dead at `now`
/// (`haHousekeepingInterval`, 20 s).
pub fn housekeeping_expired(last_heard: crate::Millis, now: crate::Millis, interval: u64) -> bool {
    now.saturating_sub(last_heard) > interval
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1000;

    fn master(start: u64, end: u64) -> MasterLog {
        MasterLog {
            start,
            end,
            segment_size: SEG,
        }
    }

    #[test]
    fn the_defaults_are_rocketmqs() {
        // MessageStoreConfig: haTransferBatchSize = 1024 * 32, haMaxGapNotInSync =
        // 1024 * 1024 * 256; DefaultHAClient: READ_MAX_BUFFER_SIZE = 1024 * 1024 * 4.
        assert_eq!(DEFAULT_TRANSFER_BATCH, 32_768);
        assert_eq!(DEFAULT_MAX_GAP_NOT_IN_SYNC, 268_435_456);
        assert_eq!(MAX_CHUNK, 4_194_304);
        let big = 1 << 30;
        assert!(accept_chunk(0, true, 0, 4_194_304, big).is_ok());
        assert_eq!(
            accept_chunk(0, true, 0, 4_194_305, big),
            Err(HaRefusal::TooLarge { len: 4_194_305 })
        );
    }

    #[test]
    fn a_mismatch_says_whether_the_logs_diverged_or_left_a_gap() {
        let behind = HaRefusal::Mismatch {
            slave: 2000,
            chunk: 1500,
        };
        assert!(behind.to_string().contains("diverged"), "{behind}");
        let gap = HaRefusal::Mismatch {
            slave: 2000,
            chunk: 2500,
        };
        assert!(gap.to_string().contains("a gap"), "{gap}");
        assert!(!gap.to_string().contains("diverged"));
    }

    #[test]
    fn an_empty_slave_starts_at_the_last_segment() {
        assert_eq!(transfer_start(0, master(0, 0)), Ok(0));
        assert_eq!(transfer_start(0, master(0, 2500)), Ok(2000));
        assert_eq!(transfer_start(0, master(0, 3000)), Ok(3000));
        assert_eq!(transfer_start(0, master(4000, 4200)), Ok(4000));
    }

    #[test]
    fn a_slave_continues_from_its_own_end_within_the_master() {
        assert_eq!(transfer_start(1234, master(1000, 2500)), Ok(1234));
        assert_eq!(transfer_start(2500, master(1000, 2500)), Ok(2500));
        assert_eq!(
            transfer_start(1000, master(1000, 2500)),
            Ok(1000),
            "exactly at the master's oldest offset"
        );
        assert_eq!(
            transfer_start(2600, master(1000, 2500)),
            Err(HaRefusal::SlaveAhead {
                slave: 2600,
                master: 2500
            })
        );
        assert_eq!(
            transfer_start(900, master(1000, 2500)),
            Err(HaRefusal::SlaveBehindRetention {
                slave: 900,
                master_start: 1000
            })
        );
    }

    #[test]
    fn chunks_stop_at_the_batch_the_end_and_the_segment() {
        let m = master(0, 2500);
        assert_eq!(next_chunk(0, m, 300), Some((0, 300)));
        assert_eq!(next_chunk(900, m, 300), Some((900, 100)));
        assert_eq!(next_chunk(2400, m, 300), Some((2400, 100)));
        assert_eq!(next_chunk(2500, m, 300), None);
    }

    #[test]
    fn a_slave_appends_only_at_its_end() {
        assert_eq!(accept_chunk(500, false, 500, 100, SEG), Ok(()));
        assert_eq!(accept_chunk(500, false, 500, 0, SEG), Ok(()));
        assert!(matches!(
            accept_chunk(500, false, 400, 10, SEG),
            Err(HaRefusal::Mismatch { .. })
        ));
        assert!(
            accept_chunk(500, false, 400, 10, SEG)
                .unwrap_err()
                .to_string()
                .contains("diverged")
        );
        assert!(matches!(
            accept_chunk(500, false, 600, 10, SEG),
            Err(HaRefusal::Mismatch { .. })
        ));
        assert!(matches!(
            accept_chunk(900, false, 900, 200, SEG),
            Err(HaRefusal::CrossesSegment { .. })
        ));
        assert!(matches!(
            accept_chunk(0, false, 0, MAX_CHUNK as u64 + 1, u64::MAX),
            Err(HaRefusal::TooLarge { .. })
        ));
        assert_eq!(accept_chunk(0, true, 3000, 10, SEG), Ok(()));
        assert!(matches!(
            accept_chunk(0, true, 3010, 10, SEG),
            Err(HaRefusal::Unaligned { .. })
        ));
    }

    #[test]
    fn in_sync_within_the_gap() {
        assert_eq!(slave_in_sync(100, None, 50), None);
        assert_eq!(slave_in_sync(100, Some(60), 50), Some(60));
        assert_eq!(slave_in_sync(100, Some(50), 50), None);
        assert_eq!(slave_in_sync(100, Some(120), 50), Some(120));
    }

    #[test]
    fn housekeeping() {
        assert!(!housekeeping_expired(1000, 21_000, 20_000));
        assert!(housekeeping_expired(1000, 21_001, 20_000));
        assert!(!housekeeping_expired(5000, 1000, 20_000));
    }
}
