//! Which connection owns a broker: property tests of [`RouteTable::connection_closed`] under random
//! registrations over several connections, closes, heartbeats, unregistrations and liveness scans.
//!
//! The property (`close_removes_exactly_the_owned`): closing a connection removes exactly the
//! brokers whose last accepted registration came over it — a broker that re-registered over
//! another connection stays, every broker it owns goes. A reference map (broker → last channel)
//! is kept beside the table. `naive_close_by_address_is_caught` runs the same checker on the
//! address-keyed close (every broker that ever registered over the connection) and shows it fails.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sextant_model::Millis;
use sextant_model::namesrv::{BrokerRegistration, ChannelId, RouteTable, TopicConfig};

/// Four broker processes, each the master of its own group.
fn addr(p: usize) -> String {
    format!("10.0.0.{p}:10911")
}

fn registration(p: usize, channel: ChannelId) -> BrokerRegistration {
    BrokerRegistration::new("C", &format!("broker-{p}"), 0, &addr(p))
        .with_topics([
            TopicConfig::new(&format!("T{p}"), 4),
            TopicConfig::new("TBW102", 8),
        ])
        .over(channel)
}

#[derive(Clone, Debug)]
enum Op {
    Register { p: usize, c: u64 },
    Close(u64),
    Heartbeat(usize),
    Unregister(usize),
    Advance(Millis),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..3u64).prop_map(|(p, c)| Op::Register { p, c }),
        2 => (0..3u64).prop_map(Op::Close),
        1 => (0..4usize).prop_map(Op::Heartbeat),
        1 => (0..4usize).prop_map(Op::Unregister),
        1 => (0..150_000u64).prop_map(Op::Advance),
    ]
}

/// The brokers live in `t`, by address.
fn live(t: &RouteTable) -> BTreeSet<String> {
    t.live_brokers().keys().map(|k| k.addr.clone()).collect()
}

/// Check one close: `after` lists exactly the brokers of `before` not owned by `channel` in
/// `owners`, and each keeps its owner.
fn check_close(
    before: &BTreeSet<String>,
    after: &RouteTable,
    channel: ChannelId,
    owners: &BTreeMap<String, ChannelId>,
) -> Result<(), String> {
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|a| owners.get(*a) != Some(&channel))
        .cloned()
        .collect();
    let got = live(after);
    if got != expected {
        return Err(format!(
            "closing {channel:?}: live {got:?}, expected {expected:?} (owners {owners:?})"
        ));
    }
    for a in &got {
        if after.owner("C", a) != owners.get(a).copied() {
            return Err(format!("{a} is owned by {:?}", after.owner("C", a)));
        }
        if after.route(&format!("T{}", &a[7..a.len() - 6])).is_none() {
            return Err(format!("{a} is live but its topic is not routed"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn close_removes_exactly_the_owned(ops in prop::collection::vec(op(), 1..50)) {
        let mut t = RouteTable::default();
        let mut now: Millis = 0;
        let mut owners: BTreeMap<String, ChannelId> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Register { p, c } => {
                    t.register(&registration(p, ChannelId(c)), now).expect("a master registers");
                    owners.insert(addr(p), ChannelId(c));
                }
                Op::Close(c) => {
                    let before = live(&t);
                    let removed = t.connection_closed(ChannelId(c));
                    prop_assert!(removed.iter().all(|r| r.channel == Some(ChannelId(c))));
                    if let Err(e) = check_close(&before, &t, ChannelId(c), &owners) {
                        return Err(TestCaseError::fail(e));
                    }
                    owners.retain(|_, o| *o != ChannelId(c));
                }
                Op::Heartbeat(p) => {
                    t.heartbeat("C", &addr(p), now);
                }
                Op::Unregister(p) => {
                    t.unregister("C", &addr(p), &format!("broker-{p}"));
                    owners.remove(&addr(p));
                }
                Op::Advance(dt) => {
                    now += dt;
                    for r in t.scan_expired(now) {
                        prop_assert_eq!(owners.remove(&r.broker.addr), r.channel);
                    }
                }
            }
            prop_assert_eq!(live(&t), owners.keys().cloned().collect::<BTreeSet<_>>());
        }
    }
}

/// The address-keyed close a server keeping "brokers seen on this connection" would make: it
/// drops a broker that moved to another connection, and the checker says so.
#[test]
fn naive_close_by_address_is_caught() {
    let mut t = RouteTable::default();
    let mut seen: BTreeMap<ChannelId, BTreeSet<String>> = BTreeMap::new();
    let mut owners = BTreeMap::new();
    for (p, c) in [(0, ChannelId(1)), (0, ChannelId(2)), (1, ChannelId(1))] {
        t.register(&registration(p, c), 0).unwrap();
        seen.entry(c).or_default().insert(addr(p));
        owners.insert(addr(p), c);
    }
    let before = live(&t);
    let mut naive = t.clone();
    for a in &seen[&ChannelId(1)] {
        naive.channel_closed("C", a);
    }
    let err = check_close(&before, &naive, ChannelId(1), &owners).unwrap_err();
    assert!(err.contains("10.0.0.0"), "{err}");
    // The model's close passes the same check.
    t.connection_closed(ChannelId(1));
    check_close(&before, &t, ChannelId(1), &owners).unwrap();
    assert_eq!(live(&t), BTreeSet::from([addr(0)]));
}
