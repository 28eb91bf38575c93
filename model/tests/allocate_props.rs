//! Property tests of the allocation strategies and the rebalance plan.
//!
//! For every strategy and any queue list and member list — empty lists, a caller that is not a
//! member, duplicates and any order included — the members' shares partition exactly the queues
//! the strategy shares out. Averagely and by-circle shares differ in size by at most one.
//! Consistent hashing moves exactly the leaver's queues when one member leaves (and exactly the
//! joiner's new queues when one joins): no other queue changes owner.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sextant_model::consumer::{
    AllocateError, AllocateStrategy, Averagely, AveragelyByCircle, ByConfig, ByMachineRoom,
    ConsistentHash, GroupView, MachineRoomNearby, RebalancePlan,
};
use sextant_model::invariants::queue_owned_once;
use sextant_model::route::MessageQueue;

const ROOMS: [&str; 3] = ["hz", "sh", "bj"];

/// Queues on brokers named `room@broker-k`, possibly duplicated, in any order.
fn queues() -> impl Strategy<Value = Vec<MessageQueue>> {
    prop::collection::vec((0..2usize, 0..3usize, 0..4usize, 0..12u32), 0..48).prop_map(|v| {
        v.into_iter()
            .map(|(t, room, b, q)| {
                MessageQueue::new(&format!("T{t}"), &format!("{}@broker-{b}", ROOMS[room]), q)
            })
            .collect()
    })
}

/// Member ids `room@cK`, possibly duplicated, in any order.
fn consumers() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec((0..3usize, 0..10usize), 0..9).prop_map(|v| {
        v.into_iter()
            .map(|(room, c)| format!("{}@c{c}", ROOMS[room]))
            .collect()
    })
}

fn simple_strategies() -> Vec<Box<dyn AllocateStrategy>> {
    vec![
        Box::new(Averagely),
        Box::new(AveragelyByCircle),
        Box::new(ConsistentHash::default()),
        Box::new(MachineRoomNearby::new(Box::new(Averagely))),
        Box::new(MachineRoomNearby::new(Box::new(AveragelyByCircle))),
        Box::new(MachineRoomNearby::new(Box::new(ConsistentHash::default()))),
    ]
}

/// Each member's share, and the check that the shares partition `expected`.
fn assert_partition(
    view: &GroupView,
    strategy: &dyn AllocateStrategy,
    expected: &BTreeSet<MessageQueue>,
) -> BTreeMap<String, Vec<MessageQueue>> {
    let shares = view
        .allocate_all(strategy)
        .expect("non-empty view allocates");
    if let Err(v) = queue_owned_once(view, &shares, expected) {
        panic!("{}: {v}", strategy.name());
    }
    shares
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shares_partition_the_queues(qs in queues(), cs in consumers(), outsider in 0..10usize) {
        let view = GroupView::new(qs.clone(), cs.clone());
        let all: BTreeSet<MessageQueue> = qs.into_iter().collect();
        for s in simple_strategies() {
            if view.queues().is_empty() || view.consumers().is_empty() {
                // RocketMQ refuses to allocate; the rebalance keeps what it has.
                for cid in view.consumers().iter().map(String::as_str).chain(["x@outsider"]) {
                    let err = s.allocate(&view, cid).unwrap_err();
                    prop_assert!(matches!(err, AllocateError::NoQueues | AllocateError::NoConsumers));
                }
                continue;
            }
            assert_partition(&view, s.as_ref(), &all);
            let stranger = format!("zz@outsider{outsider}");
            prop_assert_eq!(s.allocate(&view, &stranger).unwrap(), vec![]);
        }
    }

    #[test]
    fn averagely_and_circle_are_balanced(qs in queues(), cs in consumers()) {
        let view = GroupView::new(qs, cs);
        prop_assume!(!view.queues().is_empty() && !view.consumers().is_empty());
        for s in [&Averagely as &dyn AllocateStrategy, &AveragelyByCircle] {
            let sizes: Vec<usize> = view.allocate_all(s).unwrap().values().map(Vec::len).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(max - min <= 1, "{}: sizes {:?}", s.name(), sizes);
            let n = view.queues().len();
            let c = view.consumers().len();
            prop_assert_eq!(*max, n.div_ceil(c));
        }
    }

    #[test]
    fn input_order_and_duplicates_do_not_matter(
        qs in queues(),
        cs in consumers(),
        seed in any::<u64>(),
    ) {
        let view = GroupView::new(qs.clone(), cs.clone());
        prop_assume!(!view.queues().is_empty() && !view.consumers().is_empty());
        // A different order, with every element twice.
        let mut qs2: Vec<_> = qs.iter().chain(&qs).cloned().collect();
        let mut cs2: Vec<_> = cs.iter().chain(&cs).cloned().collect();
        let rot = (seed as usize) % qs2.len().max(1);
        qs2.rotate_left(rot);
        qs2.reverse();
        let rot2 = (seed >> 32) as usize % cs2.len().max(1);
        cs2.rotate_left(rot2);
        let view2 = GroupView::new(qs2, cs2);
        prop_assert_eq!(&view, &view2);
        for s in simple_strategies() {
            prop_assert_eq!(view.allocate_all(s.as_ref()).unwrap(), view2.allocate_all(s.as_ref()).unwrap());
        }
    }

    #[test]
    fn by_config_partitions_when_the_config_does(
        qs in queues(),
        cs in consumers(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 48),
    ) {
        let view = GroupView::new(qs, cs);
        prop_assume!(!view.queues().is_empty() && !view.consumers().is_empty());
        // A configuration that gives every queue to one member.
        let mut s = ByConfig::default();
        for (mq, pick) in view.queues().iter().zip(picks.iter().cycle()) {
            let cid = pick.get(view.consumers()).clone();
            s.assignments.entry(cid).or_default().push(mq.clone());
        }
        let all: BTreeSet<_> = view.queues().iter().cloned().collect();
        assert_partition(&view, &s, &all);
    }

    #[test]
    fn by_machine_room_partitions_its_rooms(qs in queues(), cs in consumers(), rooms in prop::sample::subsequence(ROOMS.to_vec(), 0..=3)) {
        let view = GroupView::new(qs, cs);
        prop_assume!(!view.queues().is_empty() && !view.consumers().is_empty());
        let s = ByMachineRoom { consumer_idcs: rooms.iter().map(|r| r.to_string()).collect() };
        let eligible: BTreeSet<_> = s.eligible(&view).into_iter().cloned().collect();
        let shares = assert_partition(&view, &s, &eligible);
        let sizes: Vec<usize> = shares.values().map(Vec::len).collect();
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }

    #[test]
    fn consistent_hash_moves_only_the_leavers_queues(qs in queues(), cs in consumers(), pick in any::<prop::sample::Index>()) {
        let before = GroupView::new(qs.clone(), cs.clone());
        prop_assume!(!before.queues().is_empty() && before.consumers().len() >= 2);
        let leaver = pick.get(before.consumers()).clone();
        let after = GroupView::new(qs, before.consumers().iter().filter(|c| **c != leaver).cloned());
        let s = ConsistentHash::default();
        let owner = |view: &GroupView| -> BTreeMap<MessageQueue, String> {
            view.allocate_all(&s).unwrap().into_iter()
                .flat_map(|(c, qs)| qs.into_iter().map(move |q| (q, c.clone())))
                .collect()
        };
        let (o1, o2) = (owner(&before), owner(&after));
        let moved: BTreeSet<_> = o1.iter().filter(|(q, c)| o2[*q] != **c).map(|(q, _)| q.clone()).collect();
        let leavers: BTreeSet<_> = o1.iter().filter(|(_, c)| **c == leaver).map(|(q, _)| q.clone()).collect();
        // Bound: exactly the leaver's queues move, no other queue changes owner.
        prop_assert_eq!(&moved, &leavers);
        // And symmetrically, when the leaver joins again only the queues it gains move.
        let gained: BTreeSet<_> = o2.iter().filter(|(q, c)| o1[*q] != **c).map(|(q, _)| q.clone()).collect();
        prop_assert_eq!(gained, leavers);
    }

    #[test]
    fn rebalance_plan_reaches_the_new_share(
        held in prop::collection::btree_set(0..16u32, 0..16),
        share in prop::collection::btree_set(0..16u32, 0..16),
        expired in prop::collection::btree_set(0..16u32, 0..4),
    ) {
        let mq = |i: &u32| MessageQueue::new("T", "b", *i);
        let held: BTreeSet<_> = held.iter().map(mq).collect();
        let share: Vec<_> = share.iter().map(mq).collect();
        let expired: BTreeSet<_> = expired.iter().map(mq).filter(|q| held.contains(q)).collect();
        let plan = RebalancePlan::compute(&held, &share, &expired);
        prop_assert_eq!(plan.result(), share.iter().cloned().collect::<BTreeSet<_>>());
        for q in &plan.drop { prop_assert!(held.contains(q)); }
        for q in &plan.add { prop_assert!(share.contains(q)); prop_assert!(!held.contains(q) || expired.contains(q)); }
        for q in &plan.keep { prop_assert!(held.contains(q) && share.contains(q) && !expired.contains(q)); }
        prop_assert_eq!(plan.is_empty(), held == plan.result() && expired.is_empty());
    }
}
