//! Split registrations: property tests of how the route table merges the parts of a broker's
//! registration cycles (the broker's `enableSplitRegistration`), with and without
//! `deleteTopicWithBrokerRegistration`, when parts are lost.
//!
//! - `no_part_removes_another`: a part only adds or updates; nothing routed before it is gone after
//!   it, except at the end of a whole cycle with deletion on.
//! - `a_whole_cycle_is_exact`: after every part of a cycle arrived in order, the broker's routed
//!   topics are exactly the cycle's (with deletion; a superset without), each with the cycle's
//!   queue numbers — also after an earlier cycle of the same version lost a part.
//! - Another broker's topics are never touched.
//!
//! `parts_as_whole_registrations_are_caught` shows the checker failing RocketMQ's behaviour when
//! both settings are on: each part read as a whole registration deletes the others' topics.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sextant_model::namesrv::{
    BrokerRegistration, NamesrvConfig, RegistrationPart, RouteTable, TopicConfig,
    split_registration,
};

type Topics = BTreeMap<String, u32>;

/// One registration cycle of broker `a`: its topic table, how many topics a part holds, and which
/// parts are lost on the way.
#[derive(Clone, Debug)]
struct Cycle {
    topics: Topics,
    per_part: usize,
    lost: Vec<bool>,
}

fn cycle() -> impl Strategy<Value = Cycle> {
    (
        prop::collection::btree_map((0..12u8).prop_map(|t| format!("T{t}")), 1..5u32, 1..10),
        1..5usize,
        prop::collection::vec(prop::bool::weighted(0.15), 12),
    )
        .prop_map(|(mut topics, per_part, lost)| {
            // A broker always has system topics (and RocketMQ refuses a first registration of
            // exactly one topic).
            topics.insert("TBW102".into(), 8);
            Cycle {
                topics,
                per_part,
                lost,
            }
        })
}

/// Broker `a`'s routed topics and their write queue numbers.
fn routed(t: &RouteTable, broker: &str) -> Topics {
    t.topics()
        .into_iter()
        .filter_map(|topic| {
            let route = t.route(&topic)?;
            let qd = route.queue_datas.iter().find(|q| q.broker_name == broker)?;
            Some((topic, qd.write_queue_nums))
        })
        .collect()
}

fn reg(topics: &Topics, counter: i64) -> BrokerRegistration {
    let mut r = BrokerRegistration::new("C", "a", 0, "m:1")
        .with_topics(topics.iter().map(|(t, q)| TopicConfig::new(t, *q)));
    r.data_version.counter = counter;
    r
}

/// The parts of `topics` in order, `per_part` topics each, marked when there are several.
fn parts(topics: &Topics, counter: i64, per_part: usize, mark: bool) -> Vec<BrokerRegistration> {
    let names: Vec<(&String, &u32)> = topics.iter().collect();
    let ranges = split_registration(&vec![1; names.len()], 0, Some(per_part), usize::MAX);
    let count = ranges.len() as u32;
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let part: Topics = names[r].iter().map(|(t, q)| ((*t).clone(), **q)).collect();
            let mut reg = reg(&part, counter);
            if mark && count > 1 {
                reg.part = Some(RegistrationPart::new(i as u32, count).unwrap());
            }
            reg
        })
        .collect()
}

/// Run `cycles` through a table; `mark` false sends the parts unmarked (as a Java broker does).
fn run(cycles: &[Cycle], delete: bool, mark: bool) -> Result<(), String> {
    let mut t = RouteTable::new(NamesrvConfig {
        delete_topic_with_broker_registration: delete,
        ..Default::default()
    });
    let other = BrokerRegistration::new("C", "b", 0, "m:2")
        .with_topics([TopicConfig::new("T0", 2), TopicConfig::new("B", 2)]);
    t.register(&other, 0).map_err(|e| e.to_string())?;
    let mut counter = 0;
    let mut previous: Option<&Topics> = None;
    let mut ever: BTreeSet<String> = BTreeSet::new();
    for (n, c) in cycles.iter().enumerate() {
        // The broker bumps its data version whenever its topic table changes.
        if previous != Some(&c.topics) {
            counter += 1;
        }
        previous = Some(&c.topics);
        ever.extend(c.topics.keys().cloned());
        let parts = parts(&c.topics, counter, c.per_part, mark);
        let last = parts.len() - 1;
        let mut intact = true;
        for (i, part) in parts.iter().enumerate() {
            if c.lost[i % c.lost.len()] {
                intact = false;
                continue;
            }
            let before = routed(&t, "a");
            t.register(part, n as u64).map_err(|e| e.to_string())?;
            let after = routed(&t, "a");
            for (topic, q) in &part.topic_configs {
                if !after.contains_key(topic) {
                    return Err(format!(
                        "cycle {n} part {i}: {topic} (q {}) not routed",
                        q.write_queue_nums
                    ));
                }
            }
            let whole_cycle_end = i == last && intact;
            for topic in before.keys() {
                let may_leave = delete && whole_cycle_end && !c.topics.contains_key(topic);
                if !after.contains_key(topic) && !may_leave {
                    return Err(format!("cycle {n} part {i}/{}: {topic} removed", last + 1));
                }
            }
            if routed(&t, "b") != BTreeMap::from([("B".into(), 2), ("T0".into(), 2)]) {
                return Err(format!("cycle {n} part {i}: broker b's topics changed"));
            }
        }
        if intact {
            let got = routed(&t, "a");
            if delete && got != c.topics {
                return Err(format!(
                    "after whole cycle {n}: {got:?}, expected {:?}",
                    c.topics
                ));
            }
            for (topic, q) in &c.topics {
                if got.get(topic) != Some(q) {
                    return Err(format!(
                        "after whole cycle {n}: {topic} has {:?}, expected {q}",
                        got.get(topic)
                    ));
                }
            }
            if got.keys().any(|k| !ever.contains(k)) {
                return Err(format!(
                    "after whole cycle {n}: {got:?} has topics never sent"
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_part_removes_another_and_a_whole_cycle_is_exact(
        cycles in prop::collection::vec(cycle(), 1..8),
        delete in any::<bool>(),
    ) {
        if let Err(e) = run(&cycles, delete, true) {
            return Err(TestCaseError::fail(e));
        }
    }
}

#[test]
fn parts_as_whole_registrations_are_caught() {
    let two_parts = Cycle {
        topics: [("T1", 1), ("T2", 1), ("T3", 1)]
            .map(|(t, q)| (t.to_string(), q))
            .into(),
        per_part: 2,
        lost: vec![false],
    };
    run(std::slice::from_ref(&two_parts), true, true).unwrap();
    let err = run(std::slice::from_ref(&two_parts), true, false).unwrap_err();
    assert!(err.contains("removed"), "{err}");
    // Without deletion, unmarked parts merge as RocketMQ's do.
    run(&[two_parts], false, false).unwrap();
}

#[test]
fn a_lost_part_is_healed_by_the_next_cycle_of_the_same_version() {
    let v1: Topics = [("T1", 1), ("T2", 1)]
        .map(|(t, q)| (t.to_string(), q))
        .into();
    let v2: Topics = [("T1", 1), ("T2", 8)]
        .map(|(t, q)| (t.to_string(), q))
        .into();
    let mut t = RouteTable::default();
    for r in parts(&v1, 1, 1, true) {
        t.register(&r, 0).unwrap();
    }
    // Version 2 changes T2, whose part is lost.
    let p2 = parts(&v2, 2, 1, true);
    t.register(&p2[0], 1).unwrap();
    assert_eq!(routed(&t, "a")["T2"], 1);
    assert!(
        t.query_data_version("C", "m:1", &reg(&v2, 2).data_version, 1),
        "not applied yet"
    );
    // The next cycle, same version, applies T2 again although its version is not new.
    for r in &p2 {
        t.register(r, 2).unwrap();
    }
    assert_eq!(routed(&t, "a")["T2"], 8);
    assert!(!t.query_data_version("C", "m:1", &reg(&v2, 2).data_version, 2));
}
