//! Property tests of what a slave takes from its master (`broker::slave_sync`) and of which broker
//! a pull answer sends a consumer to (`broker::pull::suggest_broker`).
//!
//! - `sync_topics` / `sync_groups`: nothing changes at an equal data version; a table past the
//!   cap is refused whole; otherwise every entry taken is one this broker accepts (valid name,
//!   keyed by its name, queue counts within the limit), every acceptable one is taken, and the
//!   master's version is kept.
//! - `sync_offsets`: every queue offset in the result came from the slave or passed
//!   `admit_commit` against the slave's topics and groups; a `topic@group` the master sent with
//!   an acceptable queue is exactly the master's (the master wins, RocketMQ's `putAll`); every
//!   other slave entry is untouched; nothing grows past the slave's entries plus what is
//!   admissible.
//! - `offsets_to_push`: exactly the slave's queue offsets the master admits (known group,
//!   existing topic, queue id in range) that are larger than the master's or that the master
//!   lacks — nothing of a group or topic the master does not have, nothing the master has at
//!   least as large; once the master has taken them, the slave's sync leaves every such queue at
//!   the larger of the two offsets (without the push, at the master's).
//! - `push_batch`: a round of batches sends every entry exactly once, in order, at most `limit`
//!   a batch, each batch making progress.
//! - `sync_delay_offsets`: only levels the broker has, no negative cursor, nothing acceptable
//!   lost.
//! - `suggest_broker`: the master whenever slave reads are off; with them on, the group's slow
//!   broker exactly when the pull is further behind than the memory budget, its `brokerId`
//!   otherwise; being further behind never turns a slave suggestion back into the master's.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sextant_model::broker::admit::MAX_TOPIC_QUEUES;
use sextant_model::broker::invalid_topic;
use sextant_model::broker::pull::{suggest_broker, suggest_pulling_from_slave};
use sextant_model::broker::slave_sync::{
    OffsetPush, SyncRefusal, TableSync, offsets_to_push, push_batch, sync_delay_offsets,
    sync_groups, sync_offsets, sync_topics,
};
use sextant_model::broker::tables::{SubscriptionGroup, admit_commit, invalid_group};
use sextant_model::namesrv::{DataVersion, TopicConfig};
use sextant_model::route::MASTER_ID;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z][A-Za-z0-9_-]{0,6}",
        1 => "%RETRY%[a-z]{1,3}",
        1 => "[ a-z!@.]{0,4}",
    ]
}

fn version() -> impl Strategy<Value = DataVersion> {
    (0i64..3, 0i64..3, 0i64..3).prop_map(|(state_version, timestamp, counter)| DataVersion {
        state_version,
        timestamp,
        counter,
    })
}

fn topic_table() -> impl Strategy<Value = BTreeMap<String, TopicConfig>> {
    prop::collection::btree_map(
        name(),
        (
            any::<bool>(),
            name(),
            0u32..MAX_TOPIC_QUEUES + 3,
            prop_oneof![Just(4u32), MAX_TOPIC_QUEUES - 1..MAX_TOPIC_QUEUES + 3],
        ),
        0..12,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, (same, other, r, w))| {
                let mut t = TopicConfig::new(if same { &k } else { &other }, 1);
                t.read_queue_nums = r;
                t.write_queue_nums = w;
                (k, t)
            })
            .collect()
    })
}

fn acceptable_topic(name: &str, t: &TopicConfig) -> bool {
    invalid_topic(name).is_none()
        && t.topic_name == name
        && t.read_queue_nums <= MAX_TOPIC_QUEUES
        && t.write_queue_nums <= MAX_TOPIC_QUEUES
}

proptest! {
    #[test]
    fn a_versioned_table_is_taken_within_the_cap_and_only_acceptable_entries(
        local in version(),
        master_version in version(),
        master in topic_table(),
        cap in 0usize..14,
        groups in prop::collection::btree_set(name(), 0..12),
    ) {
        match sync_topics(&local, master_version, master.clone(), cap) {
            Ok(TableSync::Unchanged) => prop_assert_eq!(local, master_version),
            Ok(TableSync::Replace { table, version, skipped }) => {
                prop_assert_ne!(local, master_version);
                prop_assert_eq!(version, master_version);
                prop_assert!(master.len() <= cap && table.len() <= cap);
                for (k, t) in &master {
                    prop_assert_eq!(table.contains_key(k), acceptable_topic(k, t), "{}", k);
                }
                prop_assert_eq!(table.len() + skipped.len(), master.len());
            }
            Err(SyncRefusal::OverCap { count, cap: c, .. }) => {
                prop_assert_ne!(local, master_version);
                prop_assert!(count > c && c == cap && count == master.len());
            }
        }
        let g: BTreeMap<String, SubscriptionGroup> = groups
            .iter()
            .map(|n| (n.clone(), SubscriptionGroup::default()))
            .collect();
        match sync_groups(&local, master_version, g.clone(), cap) {
            Ok(TableSync::Unchanged) => prop_assert_eq!(local, master_version),
            Ok(TableSync::Replace { table, .. }) => {
                prop_assert!(table.len() <= cap);
                for n in g.keys() {
                    prop_assert_eq!(table.contains_key(n), invalid_group(n).is_none());
                }
            }
            Err(_) => prop_assert!(g.len() > cap),
        }
    }

    #[test]
    fn the_slave_keeps_admissible_offsets_and_the_master_wins_per_topic_and_group(
        topics in prop::collection::btree_map("[A-C]", 0u32..4, 0..3),
        groups in prop::collection::btree_set("[g-i]", 0..3),
        local in prop::collection::btree_map(
            "[A-D]@[g-j]",
            prop::collection::btree_map(0u32..5, 0u64..100, 1..4),
            0..6,
        ),
        master in prop::collection::btree_map(
            prop_oneof!["[A-D]@[g-j]", "[A-D]", "[A-D]@[g-j]@x"],
            prop::collection::btree_map(-2i64..6, -5i64..100, 0..5),
            0..8,
        ),
    ) {
        let configs: BTreeMap<String, TopicConfig> = topics
            .iter()
            .map(|(t, q)| (t.clone(), TopicConfig::new(t, *q)))
            .collect();
        let find = |t: &str| configs.get(t);
        let known = |g: &str| groups.contains(g);
        let s = sync_offsets(local.clone(), &master, find, known);
        let admissible = |key: &str, q: i64, o: i64| -> bool {
            let Some((t, g)) = key.split_once('@') else { return false };
            i32::try_from(q).is_ok_and(|q| {
                admit_commit(g, known(g), t, find(t), q, o).is_ok()
            })
        };
        let mut taken = 0;
        let mut dropped = 0;
        let mut replaced = BTreeSet::new();
        for (key, queues) in &master {
            let ok: BTreeMap<u32, u64> = queues
                .iter()
                .filter(|(q, o)| admissible(key, **q, **o))
                .map(|(q, o)| (*q as u32, *o as u64))
                .collect();
            taken += ok.len();
            dropped += queues.len() - ok.len();
            if !ok.is_empty() {
                prop_assert_eq!(s.table.get(key), Some(&ok), "the master's entry wins: {}", key);
                replaced.insert(key.clone());
            }
        }
        for (key, queues) in &local {
            if !replaced.contains(key) {
                prop_assert_eq!(s.table.get(key), Some(queues), "kept: {}", key);
            }
        }
        prop_assert!(s.table.keys().all(|k| local.contains_key(k) || replaced.contains(k)));
        prop_assert_eq!((s.taken, s.dropped), (taken, dropped));
    }

    #[test]
    fn the_slave_pushes_exactly_its_larger_admissible_offsets_and_keeps_the_larger(
        topics in prop::collection::btree_map("[A-C]", 0u32..4, 0..3),
        groups in prop::collection::btree_set("[g-i]", 0..3),
        slave in prop::collection::btree_map(
            "[A-D]@[g-j]",
            prop::collection::btree_map(0u32..5, prop_oneof![0u64..20, Just(u64::MAX)], 1..4),
            0..6,
        ),
        master in prop::collection::btree_map(
            prop_oneof!["[A-D]@[g-j]", "[A-D]"],
            prop::collection::btree_map(-2i64..6, -5i64..20, 0..5),
            0..8,
        ),
    ) {
        // `topics` and `groups` are the master's tables (the slave holds them after its sync).
        let configs: BTreeMap<String, TopicConfig> = topics
            .iter()
            .map(|(t, q)| (t.clone(), TopicConfig::new(t, *q)))
            .collect();
        let find = |t: &str| configs.get(t);
        let known = |g: &str| groups.contains(g);
        let pushes = offsets_to_push(&slave, &master, find, known);

        // Exactly the entries where the slave is ahead of what the master would keep.
        let mut expected = Vec::new();
        for (key, queues) in &slave {
            let (t, g) = key.split_once('@').unwrap();
            for (&q, &o) in queues {
                let admitted = i64::try_from(o).is_ok_and(|o| {
                    admit_commit(g, known(g), t, find(t), q as i32, o).is_ok()
                });
                let theirs = master.get(key).and_then(|m| m.get(&i64::from(q))).copied();
                if admitted && theirs.is_none_or(|m| i128::from(m) < i128::from(o)) {
                    expected.push(OffsetPush {
                        topic: t.into(),
                        group: g.into(),
                        queue_id: q,
                        offset: o,
                    });
                }
            }
        }
        expected.sort();
        prop_assert_eq!(&pushes, &expected);
        for p in &pushes {
            prop_assert!(groups.contains(&p.group) && configs.contains_key(&p.topic));
            prop_assert!(p.queue_id < configs[&p.topic].read_queue_nums);
        }

        // The master takes them (as UPDATE_CONSUMER_OFFSET); then the slave takes the master's.
        let mut taken = master.clone();
        for p in &pushes {
            taken
                .entry(format!("{}@{}", p.topic, p.group))
                .or_default()
                .insert(i64::from(p.queue_id), p.offset as i64);
        }
        let after = sync_offsets(slave.clone(), &taken, find, known);
        let plain = sync_offsets(slave.clone(), &master, find, known);
        for (key, queues) in &slave {
            let (t, g) = key.split_once('@').unwrap();
            for (&q, &o) in queues {
                let Ok(o) = i64::try_from(o) else { continue };
                if admit_commit(g, known(g), t, find(t), q as i32, o).is_err() {
                    continue;
                }
                let theirs = master.get(key).and_then(|m| m.get(&i64::from(q))).copied();
                let larger = theirs.map_or(o, |m| m.max(o)) as u64;
                let kept = after.table.get(key).and_then(|m| m.get(&q)).copied();
                prop_assert_eq!(kept, Some(larger), "{} {}", key, q);
                // Without the push the master's smaller offset wins (RocketMQ's putAll).
                if theirs.is_some_and(|m| (0..o).contains(&m)) {
                    let reverted = plain.table.get(key).and_then(|m| m.get(&q)).copied();
                    prop_assert!(reverted < Some(o as u64));
                }
            }
        }
        // Pushing again changes nothing: the master now has them all.
        prop_assert!(offsets_to_push(&slave, &taken, find, known).is_empty());
    }

    #[test]
    fn a_push_round_sends_every_entry_once_in_bounded_batches(
        queues in prop::collection::btree_set(("[A-C]", "[g-i]", 0u32..6), 0..40),
        limit in 0usize..12,
    ) {
        let pushes: Vec<OffsetPush> = queues
            .into_iter()
            .map(|(topic, group, queue_id)| OffsetPush { topic, group, queue_id, offset: 1 })
            .collect();
        let mut sent: Vec<OffsetPush> = Vec::new();
        let mut after: Option<OffsetPush> = None;
        loop {
            let (batch, left) = push_batch(&pushes, after.as_ref().map(|p| p.position()), limit);
            prop_assert!(batch.len() <= limit.max(1));
            prop_assert_eq!(sent.len() + batch.len() + left, pushes.len());
            sent.extend_from_slice(batch);
            if left == 0 {
                break;
            }
            prop_assert!(!batch.is_empty(), "progress");
            after = batch.last().cloned();
        }
        prop_assert_eq!(sent, pushes);
    }

    #[test]
    fn delay_cursors_are_the_levels_this_broker_has(
        master in prop::collection::btree_map(-3i64..25, -5i64..1000, 0..20),
        max_level in 0i32..20,
    ) {
        let (kept, dropped) = sync_delay_offsets(&master, max_level);
        prop_assert!(kept.keys().all(|l| (1..=max_level).contains(l)));
        let acceptable = master
            .iter()
            .filter(|(l, o)| (1..=i64::from(max_level)).contains(*l) && **o >= 0)
            .count();
        prop_assert_eq!(kept.len(), acceptable);
        prop_assert_eq!(kept.len() + dropped, master.len());
        for (l, o) in &kept {
            prop_assert_eq!(master.get(&i64::from(*l)).copied(), Some(*o as i64));
        }
    }

    #[test]
    fn the_suggested_broker_follows_slave_reads_and_the_memory_budget(
        slave_read: bool,
        max_phy in 0u64..1_000_000,
        last in proptest::option::of(0u64..1_000_000),
        memory in prop_oneof![0u64..200_000, Just(u64::MAX)],
        ratio in prop_oneof![0u32..=100, Just(u32::MAX)],
        broker_id in 0u64..4,
        slow in 0u64..4,
        further in 0u64..100_000,
    ) {
        let group = SubscriptionGroup {
            broker_id,
            which_broker_when_consume_slowly: slow,
            ..SubscriptionGroup::default()
        };
        let far = suggest_pulling_from_slave(max_phy, last, memory, ratio);
        let budget = u128::from(memory) * u128::from(ratio) / 100;
        let expected_far = last.is_some_and(|l| u128::from(max_phy.saturating_sub(l)) > budget);
        prop_assert_eq!(far, expected_far);
        let id = suggest_broker(slave_read, far, &group);
        match (slave_read, far) {
            (false, _) => prop_assert_eq!(id, MASTER_ID),
            (true, true) => prop_assert_eq!(id, slow),
            (true, false) => prop_assert_eq!(id, broker_id),
        }
        // Further behind (the log grew) never stops suggesting the slave.
        if far {
            prop_assert!(suggest_pulling_from_slave(max_phy + further, last, memory, ratio));
        }
    }
}
