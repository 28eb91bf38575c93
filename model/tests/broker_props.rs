//! Property tests of the broker's decisions.
//!
//! - `locate` reads only inside `[min, max)`, and a corrected next offset is always inside
//!   `[min, max]`; an uncorrected one is the requested offset.
//! - A pull is suspended only for "nothing new".
//! - `send_back_target`: a message goes to the DLQ exactly when it has been reconsumed the
//!   maximum times or the consumer asks; a retry's delay level is positive.
//! - `send_queue` returns a queue below the write queue count for a random pick, and never
//!   accepts a queue past both counts.
//! - The lock table never grants a live lock held by another client, and always renews its own.
//! - Consumer groups: membership follows registrations, unregistrations and expiry.
//! - A held pull never waits past the cap; a committed offset is always answered as committed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sextant_model::broker::{
    ConsumerGroups, GetStatus, LockTable, PullCode, SendBackTarget, hold_time, locate, pull_code,
    query_offset, send_back_target, send_queue, suspend,
};
use sextant_model::namesrv::TopicConfig;
use sextant_model::route::MessageQueue;

proptest! {
    #[test]
    fn locate_stays_in_bounds(offset in 0u64..200, min in 0u64..100, len in 0u64..100, correct: bool) {
        let max = if len == 0 { 0 } else { min + len };
        let min = if max == 0 { 0 } else { min };
        match locate(offset, min, max, correct) {
            Ok(()) => prop_assert!(min <= offset && offset < max),
            Err((status, next)) => {
                prop_assert!(!(min <= offset && offset < max));
                if correct {
                    prop_assert!(min <= next && next <= max, "{status:?} {next}");
                } else {
                    prop_assert_eq!(next, offset);
                }
                let code = pull_code(status, offset);
                prop_assert_ne!(code, PullCode::Found);
                prop_assert_eq!(suspend(code, true, true), code == PullCode::NoNewMessage);
                if status == GetStatus::OffsetOverflowOne {
                    prop_assert_eq!(code, PullCode::NoNewMessage);
                }
            }
        }
    }

    #[test]
    fn send_back_dlq_exactly_when_due(times in 0i32..40, max in 0i32..32, level in -2i32..20) {
        match send_back_target(times, max, level) {
            SendBackTarget::DeadLetter => prop_assert!(times >= max || level < 0),
            SendBackTarget::Retry { delay_level } => {
                prop_assert!(times < max && level >= 0);
                prop_assert!(delay_level > 0);
                if level > 0 { prop_assert_eq!(delay_level, level); }
            }
        }
    }

    #[test]
    fn send_queue_in_range(w in 1u32..16, r in 1u32..16, requested in -3i32..40, random: u32) {
        let mut t = TopicConfig::new("T", w);
        t.read_queue_nums = r;
        match send_queue(true, "b", &t, requested, random) {
            Ok(q) => {
                if requested < 0 { prop_assert!(q < w) } else { prop_assert_eq!(q as i32, requested) }
                prop_assert!(q < w.max(r));
            }
            Err(_) => prop_assert!(requested >= 0 && requested as u32 >= w && requested as u32 >= r),
        }
    }

    #[test]
    fn locks_exclusive(ops in prop::collection::vec((0u8..3, 0u8..4, any::<bool>(), 0u64..50), 1..60)) {
        let mut t = LockTable::new(100);
        let mut now = 0;
        for (client, q, lock, dt) in ops {
            now += dt;
            let c = format!("c{client}");
            let mq = MessageQueue::new("T", "b", u32::from(q));
            let before = t.holder("G", &mq, now).map(str::to_owned);
            if lock {
                let got = t.try_lock_batch("G", std::slice::from_ref(&mq), &c, now);
                let granted = got.contains(&mq);
                match before {
                    Some(h) if h != c => prop_assert!(!granted),
                    _ => prop_assert!(granted),
                }
                if granted { prop_assert_eq!(t.holder("G", &mq, now), Some(c.as_str())); }
            } else {
                t.unlock_batch("G", std::slice::from_ref(&mq), &c);
                if before.as_deref() == Some(c.as_str()) {
                    prop_assert_eq!(t.holder("G", &mq, now), None);
                } else {
                    prop_assert_eq!(t.holder("G", &mq, now).map(str::to_owned), before);
                }
            }
        }
    }

    #[test]
    fn groups_follow_heartbeats(ops in prop::collection::vec((0u8..3, 0u8..3, 0u64..80), 1..60)) {
        let mut g = ConsumerGroups::new(100);
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut now = 0;
        for (op, who, dt) in ops {
            now += dt;
            let addr = format!("a{who}");
            for (a, _) in g.scan_expired(now).into_iter().map(|(_, a)| (a, ())) {
                prop_assert!(now - last[&a] > 100);
                last.remove(&a);
            }
            match op {
                0 | 1 => {
                    let changed = g.register("G", &addr, &format!("c{who}"), BTreeMap::new(), now);
                    prop_assert_eq!(changed, !last.contains_key(&addr));
                    last.insert(addr, now);
                }
                _ => {
                    prop_assert_eq!(g.unregister("G", &addr), last.remove(&addr).is_some());
                }
            }
            let ids: Vec<String> = last.keys().map(|a| format!("c{}", &a[1..])).collect();
            prop_assert_eq!(g.client_ids("G"), ids);
        }
    }

    #[test]
    fn holds_capped_and_commits_answered(
        long: bool, requested: i64, short in 0u64..10_000, cap in 0u64..400_000,
        committed in prop::option::of(0u64..100), min in 0u64..5, zero: bool,
    ) {
        let h = hold_time(long, requested, short, cap);
        prop_assert!(h <= cap);
        if !long { prop_assert_eq!(h, short.min(cap)); }
        match query_offset(committed, min, zero) {
            Some(o) => prop_assert!(committed == Some(o) || (committed.is_none() && o == 0 && min == 0 && zero)),
            None => prop_assert!(committed.is_none() && (min > 0 || !zero)),
        }
    }
}
