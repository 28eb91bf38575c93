//! Property tests of the durability decisions and the committable offset.
//!
//! - `put_verdict` acknowledges only what the configured modes require: with `SYNC_FLUSH` the
//!   message is on disk, with `SYNC_MASTER` the slave holds it.
//! - An acknowledgement stays an acknowledgement when the flush or the slave moves further.
//! - Without a timeout the store never answers a failure while a slave is connected.
//! - A process queue's committable offset never passes a message in flight, never moves
//!   backward, and equals one past the highest pulled once everything is consumed.

use proptest::prelude::*;
use sextant_model::consumer::ProcessQueue;
use sextant_model::store::{BrokerRole, FlushDiskType, PutProgress, PutVerdict, put_verdict};

fn modes() -> impl Strategy<Value = (FlushDiskType, BrokerRole)> {
    (
        prop::sample::select(vec![FlushDiskType::SyncFlush, FlushDiskType::AsyncFlush]),
        prop::sample::select(vec![
            BrokerRole::AsyncMaster,
            BrokerRole::SyncMaster,
            BrokerRole::Slave,
        ]),
    )
}

fn progress() -> impl Strategy<Value = PutProgress> {
    (
        0..20u64,
        0..20u64,
        prop::option::of(0..20u64),
        any::<bool>(),
    )
        .prop_map(|(end, flushed, slave_acked, timed_out)| PutProgress {
            end,
            flushed,
            slave_acked,
            timed_out,
        })
}

proptest! {
    #[test]
    fn acks_only_what_the_modes_require((flush, role) in modes(), p in progress()) {
        let v = put_verdict(flush, role, p);
        if v.is_ack() {
            if flush == FlushDiskType::SyncFlush {
                prop_assert!(p.flushed >= p.end);
            }
            if role == BrokerRole::SyncMaster {
                prop_assert!(p.slave_acked.is_some_and(|s| s >= p.end));
            }
        }
        if !p.timed_out && p.slave_acked.is_some() {
            prop_assert!(matches!(v, PutVerdict::Ok | PutVerdict::Wait), "{v:?}");
        }
    }

    #[test]
    fn an_ack_survives_progress((flush, role) in modes(), p in progress(), more in 0..5u64, slave_more in 0..5u64) {
        prop_assume!(put_verdict(flush, role, p).is_ack());
        let later = PutProgress {
            flushed: p.flushed + more,
            slave_acked: p.slave_acked.map(|s| s + slave_more),
            ..p
        };
        prop_assert!(put_verdict(flush, role, later).is_ack());
    }

    #[test]
    fn committable_offset_never_passes_in_flight(
        start in 0..10u64,
        pulls in prop::collection::vec(1..4u64, 0..6),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut pq = ProcessQueue::starting_at(start);
        let mut next = start;
        for n in pulls {
            pq.pulled(next..next + n);
            next += n;
        }
        prop_assert_eq!(pq.next_pull(), next);
        let mut committed = pq.commit_offset();
        prop_assert_eq!(committed, start);
        for i in order {
            let in_flight: Vec<u64> = pq.in_flight().collect();
            if in_flight.is_empty() {
                break;
            }
            let c = pq.consumed(*i.get(&in_flight));
            prop_assert!(c >= committed, "moved back from {} to {}", committed, c);
            prop_assert!(pq.in_flight().all(|o| o >= c));
            committed = c;
        }
        if pq.in_flight().next().is_none() {
            prop_assert_eq!(pq.commit_offset(), next);
        }
    }
}
