//! Property tests of the replication decisions (`sextant_model::ha`): a slave that follows the
//! master's chunks from wherever streaming starts ends with exactly the master's log, chunk by
//! chunk within the limits; nothing is appended across a divergence.

use proptest::prelude::*;
use sextant_model::ha::{
    HaRefusal, MAX_CHUNK, MasterLog, accept_chunk, next_chunk, slave_in_sync, transfer_start,
};

fn master() -> impl Strategy<Value = MasterLog> {
    (1u64..5_000, 0u64..4, 0u64..20_000).prop_map(|(seg, first, len)| {
        let start = first * seg;
        MasterLog {
            start,
            end: start + len,
            segment_size: seg,
        }
    })
}

proptest! {
    /// From the offset a slave reports (nothing, or anywhere the master stores), the master's
    /// chunks are all accepted and bring the slave to the master's end; each chunk is at most
    /// the batch and stays within one segment.
    #[test]
    fn a_following_slave_reaches_the_master(m in master(), at in 0.0f64..=1.0, empty in any::<bool>(), batch in 1usize..3_000) {
        let reported = if empty { 0 } else { m.start + ((m.end - m.start) as f64 * at) as u64 };
        let mut from = transfer_start(reported, m).expect("within the master");
        prop_assert!(from >= m.start && from <= m.end);
        let mut slave_end = if empty { 0 } else { reported };
        let mut holds_nothing = empty;
        let mut chunks = 0;
        while let Some((start, len)) = next_chunk(from, m, batch) {
            prop_assert_eq!(start, from);
            prop_assert!(len >= 1 && len <= batch);
            prop_assert_eq!(start / m.segment_size, (start + len as u64 - 1) / m.segment_size);
            prop_assert_eq!(accept_chunk(slave_end, holds_nothing, start, len as u64, m.segment_size), Ok(()));
            slave_end = start + len as u64;
            holds_nothing = false;
            from = slave_end;
            chunks += 1;
            prop_assert!(chunks <= 40_000);
        }
        prop_assert_eq!(from, m.end);
        // Caught up: a heartbeat at the end is accepted too.
        prop_assert_eq!(accept_chunk(slave_end, holds_nothing, from, 0, m.segment_size), Ok(()));
    }

    /// A slave ahead of the master is never streamed to, and never appends what a master
    /// sends from its own (shorter) end.
    #[test]
    fn nothing_is_appended_across_a_divergence(m in master(), ahead in 1u64..10_000) {
        let slave_end = m.end + ahead;
        prop_assert!(
            matches!(transfer_start(slave_end, m), Err(HaRefusal::SlaveAhead { .. })),
            "streamed to a slave ahead of the master"
        );
        let refused = accept_chunk(slave_end, false, m.end, 1, m.segment_size);
        prop_assert!(matches!(refused, Err(HaRefusal::Mismatch { .. })), "{:?}", refused);
        prop_assert!(refused.unwrap_err().to_string().contains("diverged"));
    }

    /// Whatever a (possibly hostile) master sends, an accepted chunk starts at the slave's end
    /// (or a segment, for an empty slave), fits its segment and the size limit.
    #[test]
    fn accepted_chunks_are_well_placed(end in 0u64..100_000, empty in any::<bool>(), chunk in 0u64..100_000, len in 0u64..(2 * MAX_CHUNK as u64), seg in 1u64..(8 * MAX_CHUNK as u64)) {
        if accept_chunk(end, empty, chunk, len, seg).is_ok() {
            prop_assert!(len <= MAX_CHUNK as u64);
            let placed = if empty { chunk % seg == 0 } else { chunk == end };
            prop_assert!(placed);
            prop_assert!(chunk % seg + len <= seg);
        }
    }

    /// A slave counts as in sync exactly when connected and less than the gap behind.
    #[test]
    fn in_sync_is_the_gap(end in 0u64..1_000_000, acked in proptest::option::of(0u64..1_000_000), gap in 1u64..1_000_000) {
        let got = slave_in_sync(end, acked, gap);
        match acked {
            None => prop_assert_eq!(got, None),
            Some(a) if end.saturating_sub(a) < gap => prop_assert_eq!(got, Some(a)),
            Some(_) => prop_assert_eq!(got, None),
        }
    }
}
