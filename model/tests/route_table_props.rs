//! Property tests of the NameServer route table under random registrations, heartbeats,
//! unregistrations, connection closes and the passing of time, with the liveness scan running
//! every scan interval as the server runs it.
//!
//! - `route_integrity`: a route never lists a broker that is unregistered or expired, every queue
//!   entry has its broker entry, a group has at most one master.
//! - `expiry_bounded`: a broker silent for longer than expiry + one scan interval is in no route.
//! - Topic config comes only from masters: topics only 4.x slaves reported are never routed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sextant_model::Millis;
use sextant_model::invariants::{expiry_bounded, route_integrity};
use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};

/// Six broker processes: process `p` is in group `p % 2` at address `10.0.0.p:10911`.
fn addr(p: usize) -> String {
    format!("10.0.0.{p}:10911")
}
fn group(p: usize) -> String {
    format!("broker-{}", p % 2)
}

#[derive(Clone, Debug)]
enum Op {
    /// Process registers with this id, these topics and this state version.
    Register {
        p: usize,
        id: u64,
        topics: Vec<u8>,
        state: i64,
        slave_topic: bool,
    },
    Heartbeat(usize),
    Unregister(usize),
    Close(usize),
    Advance(Millis),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..6usize,
            0..3u64,
            prop::collection::vec(0..3u8, 0..3),
            0..3i64,
            any::<bool>()
        )
            .prop_map(|(p, id, topics, state, slave_topic)| Op::Register {
                p,
                id,
                topics,
                state,
                slave_topic
            }),
        (0..6usize).prop_map(Op::Heartbeat),
        (0..6usize).prop_map(Op::Unregister),
        (0..6usize).prop_map(Op::Close),
        (0..70_000u64).prop_map(Op::Advance),
        (0..6_000u64).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn routes_list_only_live_brokers_and_expiry_is_bounded(
        ops in prop::collection::vec(op(), 1..60),
        expiry in prop::sample::select(vec![120_000u64, 10_000]),
        scan in prop::sample::select(vec![5_000u64, 10_000]),
    ) {
        let config = NamesrvConfig { broker_expiry: expiry, scan_interval: scan, ..Default::default() };
        let mut t = RouteTable::new(config);
        let mut now: Millis = 0;
        let mut last_seen: BTreeMap<String, Millis> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Register { p, id, topics, state, slave_topic } => {
                    let mut reg = BrokerRegistration::new("C", &group(p), id, &addr(p))
                        .with_topics(topics.iter().map(|t| TopicConfig::new(&format!("T{t}"), 4)));
                    if slave_topic {
                        reg.topic_configs.insert("SLAVE".into(), TopicConfig::new("SLAVE", 1));
                    }
                    reg.data_version.state_version = state;
                    if t.register(&reg, now).is_ok() {
                        last_seen.insert(addr(p), now);
                    }
                }
                Op::Heartbeat(p) => {
                    if t.heartbeat("C", &addr(p), now) {
                        last_seen.insert(addr(p), now);
                    }
                }
                Op::Unregister(p) => {
                    t.unregister("C", &addr(p), &group(p));
                }
                Op::Close(p) => {
                    t.channel_closed("C", &addr(p));
                }
                Op::Advance(dt) => {
                    // The server scans at every multiple of the scan interval.
                    let next_scan = (now / scan + 1) * scan;
                    now += dt;
                    let mut s = next_scan;
                    while s <= now {
                        t.scan_expired(s);
                        s += scan;
                    }
                }
            }
            for topic in t.topics() {
                if let Some(route) = t.route(&topic)
                    && let Err(v) = route_integrity(&t, &route)
                {
                    return Err(TestCaseError::fail(v.to_string()));
                }
            }
            if let Err(v) = expiry_bounded(&t, &last_seen, expiry + scan, now) {
                return Err(TestCaseError::fail(v.to_string()));
            }
        }
    }

    #[test]
    fn only_masters_define_topics(ids in prop::collection::vec(1..4u64, 1..4)) {
        let mut t = RouteTable::default();
        for (i, id) in ids.iter().enumerate() {
            let reg = BrokerRegistration::new("C", "g", *id, &addr(i))
                .with_topics([TopicConfig::new("T", 4), TopicConfig::new("U", 4)]);
            let _ = t.register(&reg, 0);
        }
        // 4.x brokers (no enableActingMaster): no prime slave, so no topic at all.
        prop_assert!(t.topics().is_empty());
        prop_assert!(t.route("T").is_none());
    }
}
