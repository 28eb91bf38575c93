//! Property tests of the client's decisions (`sextant_model::client`) and of the process queue
//! under interleaved pulls, skips and consumption.
//!
//! For any broker group, route, cache, expression and history: an address chosen for a
//! subscription belongs to the group and respects `onlyThisBroker`; heartbeat targets are exactly
//! the masters (producers only) or every member; route comparison ignores order and sees every
//! real change; offline addresses are exactly the cached ones no route lists; the fallback route
//! never exceeds the cap or the read queues; a subscription passes exactly its tags; hash
//! selection is Java's arithmetic; and a process queue's committable offset never moves backward
//! and never passes a message still in flight, whatever the order of pulls, skips and
//! completions.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sextant_model::client::{
    FlowControl, Subscription, address_in_subscribe, default_topic_route, heartbeat_targets,
    offline_addresses, route_changed, select_by_hash,
};
use sextant_model::consumer::ProcessQueue;
use sextant_model::invariants::offset_not_past_unconsumed;
use sextant_model::route::{BrokerData, MASTER_ID, MessageQueue, Perm, QueueData, TopicRouteData};

fn group() -> impl Strategy<Value = BrokerData> {
    (0..3usize, prop::collection::btree_set(0..4u64, 0..4)).prop_map(|(n, ids)| BrokerData {
        cluster: "C".into(),
        broker_name: format!("b{n}"),
        broker_addrs: ids.iter().map(|i| (*i, format!("h{n}:{i}"))).collect(),
        ..Default::default()
    })
}

fn route() -> impl Strategy<Value = TopicRouteData> {
    prop::collection::vec((group(), 0..9u32, 0..9u32, 0..8u32), 0..4).prop_map(|gs| {
        let mut r = TopicRouteData::default();
        for (b, read, write, perm) in gs {
            r.queue_datas.push(QueueData {
                broker_name: b.broker_name.clone(),
                read_queue_nums: read,
                write_queue_nums: write,
                perm: Perm(perm),
                topic_sys_flag: 0,
            });
            r.broker_datas.push(b);
        }
        r
    })
}

proptest! {
    #[test]
    fn subscribe_address_is_a_member_and_respects_only_this_broker(
        b in group(), id in 0..5u64, only in any::<bool>(),
    ) {
        match address_in_subscribe(&b, id, only) {
            Some(a) => {
                let (found_id, _) = b.broker_addrs.iter().find(|(_, v)| v.as_str() == a.addr).unwrap();
                prop_assert_eq!(a.slave, *found_id != MASTER_ID);
                if only {
                    prop_assert!(*found_id == id || (id != MASTER_ID && *found_id == id + 1));
                }
                if b.broker_addrs.contains_key(&id) {
                    prop_assert_eq!(*found_id, id);
                }
            }
            None => {
                prop_assert!(!b.broker_addrs.contains_key(&id));
                prop_assert!(only || b.broker_addrs.is_empty());
            }
        }
    }

    #[test]
    fn heartbeat_targets_are_masters_or_everyone(gs in prop::collection::vec(group(), 0..4), consumer in any::<bool>()) {
        let t = heartbeat_targets(&gs, consumer);
        let expected: BTreeSet<&str> = gs
            .iter()
            .flat_map(|g| g.broker_addrs.iter())
            .filter(|(id, _)| consumer || **id == MASTER_ID)
            .map(|(_, a)| a.as_str())
            .collect();
        prop_assert_eq!(t, expected);
    }

    #[test]
    fn route_change_ignores_order_and_sees_changes(r in route(), seed in any::<u64>(), bump in 0..3u32) {
        let mut shuffled = r.clone();
        if seed % 2 == 0 {
            shuffled.queue_datas.reverse();
        }
        if seed % 3 == 0 {
            shuffled.broker_datas.reverse();
        }
        prop_assert!(!route_changed(Some(&r), &shuffled));
        if let Some(q) = shuffled.queue_datas.first_mut() {
            q.read_queue_nums += bump + 1;
            prop_assert!(route_changed(Some(&r), &shuffled));
        }
    }

    #[test]
    fn offline_addresses_are_exactly_the_unlisted(
        cached in prop::collection::btree_map(0..3usize, prop::collection::btree_set(0..4u64, 0..4), 0..3),
        routes in prop::collection::vec(route(), 0..3),
    ) {
        let cached: BTreeMap<String, BTreeMap<u64, String>> = cached
            .into_iter()
            .map(|(n, ids)| (format!("b{n}"), ids.into_iter().map(|i| (i, format!("h{n}:{i}"))).collect()))
            .collect();
        let live: BTreeSet<&str> = routes
            .iter()
            .flat_map(|r| r.broker_datas.iter())
            .flat_map(|b| b.broker_addrs.values())
            .map(String::as_str)
            .collect();
        let off = offline_addresses(&cached, routes.iter());
        let expected: Vec<(&str, u64, &str)> = cached
            .iter()
            .flat_map(|(n, a)| a.iter().map(move |(i, v)| (n.as_str(), *i, v.as_str())))
            .filter(|(_, _, a)| !live.contains(a))
            .collect();
        prop_assert_eq!(off, expected);
    }

    #[test]
    fn default_route_is_capped(r in route(), cap in 0..10u32) {
        let d = default_topic_route(&r, cap);
        prop_assert_eq!(d.queue_datas.len(), r.queue_datas.len());
        for (a, b) in r.queue_datas.iter().zip(&d.queue_datas) {
            prop_assert_eq!(b.read_queue_nums, cap.min(a.read_queue_nums));
            prop_assert_eq!(b.write_queue_nums, b.read_queue_nums);
            prop_assert_eq!(&a.broker_name, &b.broker_name);
        }
        prop_assert_eq!(&d.broker_datas, &r.broker_datas);
    }

    #[test]
    fn subscription_passes_exactly_its_tags(
        tags in prop::collection::vec("[a-c]{0,2}", 0..4),
        tag in proptest::option::of("[a-c]{0,2}"),
    ) {
        let expr = tags.join(" || ");
        let s = Subscription::parse(&expr);
        let set: BTreeSet<&str> = tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).collect();
        let expected = set.is_empty() || tag.as_deref().is_some_and(|t| set.contains(t));
        prop_assert_eq!(s.matches(tag.as_deref()), expected);
    }

    #[test]
    fn hash_selection_is_javas_arithmetic(n in 1..64usize, hash in any::<i32>()) {
        let qs: Vec<_> = (0..n as u32).map(|i| MessageQueue::new("T", "a", i)).collect();
        // Java: int v = hash % size; if (v < 0) v = Math.abs(v);
        let mut v = hash % n as i32;
        if v < 0 {
            v = v.abs();
        }
        prop_assert_eq!(select_by_hash(&qs, hash).unwrap().queue_id, v as u32);
    }

    #[test]
    fn flow_control_pauses_iff_over_a_threshold(
        msgs in 0..3000u64, bytes in 0..300u64, span in 0..5000u64, orderly in any::<bool>(),
    ) {
        let f = FlowControl { max_cached_msgs: 1000, max_cached_bytes: 100, max_span: 2000 };
        let over = msgs > 1000 || bytes > 100 || (!orderly && span > 2000);
        prop_assert_eq!(f.pause(msgs, bytes, span, orderly).is_some(), over);
    }

    /// Any interleaving of pulls (contiguous or with gaps, as filtering leaves them), skips and
    /// completions: the committable offset is monotonic and never passes a message in flight.
    #[test]
    fn commit_offset_is_monotonic_and_safe(
        start in 0..10u64,
        ops in prop::collection::vec((0..3u8, 1..5u64, any::<prop::sample::Index>()), 0..40),
    ) {
        let mut pq = ProcessQueue::starting_at(start);
        let mut committed = pq.commit_offset();
        for (kind, n, pick) in ops {
            match kind {
                0 => {
                    // A pull of n messages; every other one filtered out on the client.
                    let from = pq.next_pull();
                    pq.pulled((from..from + n).filter(|o| o % 2 == 0 || n == 1));
                    pq.skipped_to(from + n);
                }
                1 => {
                    let to = pq.next_pull() + n;
                    pq.skipped_to(to);
                }
                _ => {
                    let in_flight: Vec<u64> = pq.in_flight().collect();
                    if !in_flight.is_empty() {
                        pq.consumed(*pick.get(&in_flight));
                    }
                }
            }
            let c = pq.commit_offset();
            prop_assert!(c >= committed, "moved back from {} to {}", committed, c);
            if let Some(first) = pq.in_flight().next() {
                prop_assert!(offset_not_past_unconsumed(c, first).is_ok());
            } else {
                prop_assert_eq!(c, pq.next_pull());
            }
            committed = c;
        }
    }
}
