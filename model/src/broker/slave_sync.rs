//! What a slave takes from its master's tables (RocketMQ 4.9.8's `SlaveSynchronize.syncAll`,
//! every 10 s over the master's remoting port): the topic table, the subscription group table,
//! the consumer offsets and the delay-level cursors.
//!
//! RocketMQ takes whatever the master sends. Here the master's tables pass the same bounds a
//! client's requests do (`tables`): a table larger than this broker's cap is refused whole, and
//! an entry this broker would never hold (a name it refuses, more than
//! [`MAX_TOPIC_QUEUES`] queues, an offset of an unknown group or of a queue the topic lacks, a
//! delay level it does not have) is left out. A hostile or mistaken master cannot grow a slave
//! past what its own clients could.
//!
//! Offsets follow RocketMQ's `putAll`: for every `topic@group` the master has, the master's queue
//! map replaces the slave's; a `topic@group` only the slave has is kept. Alone, that would move
//! an offset a consumer committed to the slave while the master was away back to the master's
//! older value at the next sync (RocketMQ 4.9.8's behaviour: a consumer that died meanwhile, or
//! a new member of its group, reads those messages again). So before a slave takes the offsets
//! of a master it has not synced from over its current connection (the first sync after the
//! master became known, after its address changed, after it restarted — its sockets die with
//! it — or after the link failed), it sends that master its own offsets that are larger than
//! the master's ([`offsets_to_push`], at most [`MAX_PUSHES_PER_SYNC`] a sync, resumed by
//! [`push_batch`]), as a consumer would commit them: the master takes the larger, and the slave
//! then takes the master's table. Not at every sync: a master's offset deliberately moved back
//! (a reset) while the slave is connected is taken by the slave at its next sync and stays.

use std::collections::BTreeMap;

use crate::broker::admit::MAX_TOPIC_QUEUES;
use crate::broker::invalid_topic;
use crate::broker::tables::{SubscriptionGroup, admit_commit, invalid_group};
use crate::namesrv::{DataVersion, TopicConfig};

/// Why a table from the master is refused whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// The master's table has more entries than this broker may hold.
    #[error(
        "the master's {table} holds {count} entries, more than this broker's {cap_name} ({cap})"
    )]
    OverCap {
        /// Which table.
        table: &'static str,
        /// How many entries the master sent.
        count: usize,
        /// This broker's cap.
        cap: usize,
        /// The cap's configuration key.
        cap_name: &'static str,
    },
}

/// What a slave does with a versioned table (topics, subscription groups) from its master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableSync<T> {
    /// The master's data version is the slave's: nothing changed.
    Unchanged,
    /// Replace the slave's table with `table` and take the master's data version (as RocketMQ's
    /// `assignNewOne`), so the next sync of an unchanged master is [`TableSync::Unchanged`].
    Replace {
        /// The entries kept, by name.
        table: BTreeMap<String, T>,
        /// The master's data version.
        version: DataVersion,
        /// The names of the entries left out.
        skipped: Vec<String>,
    },
}

fn versioned<T>(
    local: &DataVersion,
    version: DataVersion,
    master: BTreeMap<String, T>,
    cap: (usize, &'static str, &'static str),
    keep: impl Fn(&str, &T) -> bool,
) -> Result<TableSync<T>, SyncRefusal> {
    if *local == version {
        return Ok(TableSync::Unchanged);
    }
    let (cap, cap_name, table) = cap;
    if master.len() > cap {
        return Err(SyncRefusal::OverCap {
            table,
            count: master.len(),
            cap,
            cap_name,
        });
    }
    let mut table = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, entry) in master {
        if keep(&name, &entry) {
            table.insert(name, entry);
        } else {
            skipped.push(name);
        }
    }
    Ok(TableSync::Replace {
        table,
        version,
        skipped,
    })
}

/// The topic table a slave takes from its master's GET_ALL_TOPIC_CONFIG answer: nothing when the
/// data versions are equal; refused past `max_topics` (`maxTopicCount`); otherwise the master's
/// table without the topics this broker would refuse (an invalid name, a name other than its
/// key, more than [`MAX_TOPIC_QUEUES`] read or write queues).
pub fn sync_topics(
    local: &DataVersion,
    version: DataVersion,
    master: BTreeMap<String, TopicConfig>,
    max_topics: usize,
) -> Result<TableSync<TopicConfig>, SyncRefusal> {
    versioned(
        local,
        version,
        master,
        (max_topics, "maxTopicCount", "topic table"),
        |name, t| {
            invalid_topic(name).is_none()
                && t.topic_name == name
                && t.read_queue_nums <= MAX_TOPIC_QUEUES
                && t.write_queue_nums <= MAX_TOPIC_QUEUES
        },
    )
}

/// The subscription group table a slave takes from its master's GET_ALL_SUBSCRIPTIONGROUP_CONFIG
/// answer: nothing when the data versions are equal; refused past `max_groups`
/// (`maxSubscriptionGroupCount`); otherwise the master's table without invalid group names.
pub fn sync_groups(
    local: &DataVersion,
    version: DataVersion,
    master: BTreeMap<String, SubscriptionGroup>,
    max_groups: usize,
) -> Result<TableSync<SubscriptionGroup>, SyncRefusal> {
    versioned(
        local,
        version,
        master,
        (
            max_groups,
            "maxSubscriptionGroupCount",
            "subscription group table",
        ),
        |name, _| invalid_group(name).is_none(),
    )
}

/// The consumer offsets a slave keeps after a sync.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OffsetSync {
    /// `topic@group` → queue id → offset.
    pub table: BTreeMap<String, BTreeMap<u32, u64>>,
    /// How many queue offsets were taken from the master.
    pub taken: usize,
    /// How many of the master's queue offsets were left out.
    pub dropped: usize,
}

/// The offset table of a slave after a sync (`syncConsumerOffset`: the master's entries `putAll`
/// over the slave's). A master's queue offset is taken only if this broker would take it from a
/// consumer (`tables::admit_commit`: the group known, the topic existing, the queue id below its
/// read queue count, the offset not negative); a `topic@group` of the master with at least one
/// such queue replaces the slave's whole entry; every other entry of the slave is kept. (When
/// due, the slave's larger offsets were sent to the master first: [`offsets_to_push`].)
pub fn sync_offsets<'a>(
    mut local: BTreeMap<String, BTreeMap<u32, u64>>,
    master: &BTreeMap<String, BTreeMap<i64, i64>>,
    topic: impl Fn(&str) -> Option<&'a TopicConfig>,
    group_known: impl Fn(&str) -> bool,
) -> OffsetSync {
    let (mut taken, mut dropped) = (0, 0);
    for (key, queues) in master {
        // `topic@group`: neither name may hold '@'.
        let Some((topic_name, group)) = key.split_once('@') else {
            dropped += queues.len();
            continue;
        };
        let config = topic(topic_name);
        let known = group_known(group);
        let kept: BTreeMap<u32, u64> = queues
            .iter()
            .filter_map(|(&qid, &offset)| {
                let qid = i32::try_from(qid).ok()?;
                admit_commit(group, known, topic_name, config, qid, offset).ok()
            })
            .collect();
        dropped += queues.len() - kept.len();
        if !kept.is_empty() {
            taken += kept.len();
            local.insert(key.clone(), kept);
        }
    }
    OffsetSync {
        table: local,
        taken,
        dropped,
    }
}

/// The most of its offsets a slave sends its master in one sync ([`push_batch`]); the rest
/// follow at the next syncs.
pub const MAX_PUSHES_PER_SYNC: usize = 10_000;

/// One of the slave's consumer offsets to send its master (UPDATE_CONSUMER_OFFSET), ordered by
/// topic, group and queue id, the order [`push_batch`] resumes in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetPush {
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// The queue id (below the topic's read queue count).
    pub queue_id: u32,
    /// The slave's offset (at most `i64::MAX`, so it goes on the wire as the Java `long`).
    pub offset: u64,
}

impl OffsetPush {
    /// Where the entry stands in the push order (its offset aside): a [`push_batch`] cursor.
    pub fn position(&self) -> (&str, &str, u32) {
        (&self.topic, &self.group, self.queue_id)
    }
}

/// The slave's offsets its master should take before the slave takes the master's table: every
/// queue offset of the slave that the master would admit from a consumer (`admit_commit`
/// against the master's tables: `topic` and `group_known` are the topic and group tables the
/// master answered) and that is larger than the master's offset for that queue — or that the
/// master has none for. Nothing of a group or topic the master does not have, of a queue id
/// past its topic's read queues, or equal to or below the master's: the master keeps the larger
/// offset, never a smaller one pushed down. Sorted by topic, group and queue id.
pub fn offsets_to_push<'a>(
    slave: &BTreeMap<String, BTreeMap<u32, u64>>,
    master: &BTreeMap<String, BTreeMap<i64, i64>>,
    topic: impl Fn(&str) -> Option<&'a TopicConfig>,
    group_known: impl Fn(&str) -> bool,
) -> Vec<OffsetPush> {
    let mut pushes = Vec::new();
    for (key, queues) in slave {
        let Some((topic_name, group)) = key.split_once('@') else {
            continue;
        };
        let config = topic(topic_name);
        let known = group_known(group);
        if !known || config.is_none() {
            continue;
        }
        let theirs = master.get(key);
        for (&qid, &offset) in queues {
            let (Ok(q), Ok(o)) = (i32::try_from(qid), i64::try_from(offset)) else {
                continue;
            };
            if admit_commit(group, known, topic_name, config, q, o).is_err() {
                continue;
            }
            let master_offset = theirs.and_then(|m| m.get(&i64::from(qid)));
            if master_offset.is_some_and(|&m| m >= o) {
                continue;
            }
            pushes.push(OffsetPush {
                topic: topic_name.to_owned(),
                group: group.to_owned(),
                queue_id: qid,
                offset,
            });
        }
    }
    pushes.sort();
    pushes
}

/// The next pushes of a round that sends at most `limit` (at least one) a sync: those after the
/// position `after` (the last entry the previous sync of the round sent; `None` at the start),
/// and how many are left after them. A round thus sends every entry once however the master
/// answers, even one that accepts a push and keeps its old offset.
pub fn push_batch<'p>(
    pushes: &'p [OffsetPush],
    after: Option<(&str, &str, u32)>,
    limit: usize,
) -> (&'p [OffsetPush], usize) {
    let start = after.map_or(0, |a| pushes.partition_point(|p| p.position() <= a));
    let end = start.saturating_add(limit.max(1)).min(pushes.len());
    (&pushes[start..end], pushes.len() - end)
}

/// The delay-level cursors a slave takes from its master's GET_ALL_DELAY_OFFSET answer (RocketMQ
/// 4.9.8 writes the master's `delayOffset.json` over the slave's): the levels this broker has
/// (`1..=max_level`) with a non-negative offset. Returns them and how many entries were left out.
pub fn sync_delay_offsets(
    master: &BTreeMap<i64, i64>,
    max_level: i32,
) -> (BTreeMap<i32, u64>, usize) {
    let kept: BTreeMap<i32, u64> = master
        .iter()
        .filter_map(|(&level, &offset)| {
            let level = i32::try_from(level)
                .ok()
                .filter(|l| (1..=max_level).contains(l))?;
            Some((level, u64::try_from(offset).ok()?))
        })
        .collect();
    let dropped = master.len() - kept.len();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(counter: i64) -> DataVersion {
        DataVersion {
            counter,
            ..DataVersion::default()
        }
    }

    fn topics(names: &[&str]) -> BTreeMap<String, TopicConfig> {
        names
            .iter()
            .map(|n| (n.to_string(), TopicConfig::new(n, 4)))
            .collect()
    }

    #[test]
    fn a_topic_table_is_taken_once_per_version_and_within_the_cap() {
        let t = topics(&["A", "B"]);
        assert_eq!(
            sync_topics(&v(3), v(3), t.clone(), 10),
            Ok(TableSync::Unchanged)
        );
        let Ok(TableSync::Replace {
            table,
            version,
            skipped,
        }) = sync_topics(&v(1), v(3), t.clone(), 10)
        else {
            panic!("replaced")
        };
        assert_eq!((table, version, skipped.len()), (t.clone(), v(3), 0));
        assert!(matches!(
            sync_topics(&v(1), v(3), topics(&["A", "B", "C"]), 2),
            Err(SyncRefusal::OverCap {
                count: 3,
                cap: 2,
                ..
            })
        ));
        // Entries this broker would refuse are left out, the others taken.
        let mut odd = t;
        odd.insert("bad name".into(), TopicConfig::new("bad name", 1));
        odd.insert("Key".into(), TopicConfig::new("NotKey", 1));
        odd.insert(
            "Wide".into(),
            TopicConfig::new("Wide", MAX_TOPIC_QUEUES + 1),
        );
        let Ok(TableSync::Replace { table, skipped, .. }) = sync_topics(&v(1), v(2), odd, 10)
        else {
            panic!("replaced")
        };
        assert_eq!(table.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(skipped, ["Key", "Wide", "bad name"]);
    }

    #[test]
    fn groups_skip_invalid_names_and_refuse_past_the_cap() {
        let g = |names: &[&str]| -> BTreeMap<String, SubscriptionGroup> {
            names
                .iter()
                .map(|n| (n.to_string(), SubscriptionGroup::default()))
                .collect()
        };
        let Ok(TableSync::Replace { table, skipped, .. }) =
            sync_groups(&v(0), v(1), g(&["g1", "g@2"]), 5)
        else {
            panic!("replaced")
        };
        assert_eq!((table.len(), skipped), (1, vec!["g@2".to_string()]));
        assert!(sync_groups(&v(0), v(1), g(&["a", "b", "c"]), 2).is_err());
        assert_eq!(
            sync_groups(&v(1), v(1), g(&["a", "b", "c"]), 2),
            Ok(TableSync::Unchanged)
        );
    }

    #[test]
    fn the_masters_offsets_win_and_the_slaves_others_stay() {
        let t = TopicConfig::new("T", 2);
        let topic = |n: &str| (n == "T").then_some(&t);
        let known = |g: &str| g == "g" || g == "h";
        let local = BTreeMap::from([
            // Committed to the slave while the master was away: the master's entry wins.
            ("T@g".to_string(), BTreeMap::from([(0, 50), (1, 60)])),
            // Only on the slave: kept.
            ("T@h".to_string(), BTreeMap::from([(0, 7)])),
        ]);
        let master = BTreeMap::from([
            (
                "T@g".to_string(),
                BTreeMap::from([(0, 40), (1, -1), (2, 9)]),
            ),
            ("T@unknown".to_string(), BTreeMap::from([(0, 1)])),
            ("X@g".to_string(), BTreeMap::from([(0, 1)])),
            ("no-separator".to_string(), BTreeMap::from([(0, 1)])),
            ("T@h".to_string(), BTreeMap::from([(i64::MAX, 1)])),
        ]);
        let s = sync_offsets(local, &master, topic, known);
        assert_eq!(s.table["T@g"], BTreeMap::from([(0, 40)]));
        assert_eq!(s.table["T@h"], BTreeMap::from([(0, 7)]));
        assert_eq!(s.table.len(), 2);
        assert_eq!((s.taken, s.dropped), (1, 6));
    }

    #[test]
    fn the_slave_pushes_only_its_larger_offsets_the_master_admits() {
        let t = TopicConfig::new("T", 2);
        let topic = |n: &str| (n == "T").then_some(&t);
        let known = |g: &str| g == "g";
        let slave = BTreeMap::from([
            // 0: larger than the master's; 1: the master's is larger; 2: no such queue.
            ("T@g".to_string(), BTreeMap::from([(0, 9), (1, 9), (2, 9)])),
            // A group and a topic the master does not have.
            ("T@h".to_string(), BTreeMap::from([(0, 9)])),
            ("X@g".to_string(), BTreeMap::from([(0, 9)])),
        ]);
        let master = BTreeMap::from([("T@g".to_string(), BTreeMap::from([(0, 5), (1, 12)]))]);
        let push = |queue_id, offset| OffsetPush {
            topic: "T".into(),
            group: "g".into(),
            queue_id,
            offset,
        };
        assert_eq!(offsets_to_push(&slave, &master, topic, known), [push(0, 9)]);
        // A queue the master has no offset for is pushed; an equal one is not.
        let master = BTreeMap::from([("T@g".to_string(), BTreeMap::from([(0, 9)]))]);
        assert_eq!(offsets_to_push(&slave, &master, topic, known), [push(1, 9)]);
    }

    #[test]
    fn a_push_round_resumes_after_the_last_entry_sent() {
        let pushes: Vec<OffsetPush> = (0..5)
            .map(|q| OffsetPush {
                topic: "T".into(),
                group: "g".into(),
                queue_id: q,
                offset: 1,
            })
            .collect();
        let (first, left) = push_batch(&pushes, None, 2);
        assert_eq!((first.len(), left), (2, 3));
        let (next, left) = push_batch(&pushes, Some(first[1].position()), 2);
        assert_eq!((next[0].queue_id, left), (2, 1));
        let (last, left) = push_batch(&pushes, Some(next[1].position()), 2);
        assert_eq!((last.len(), left), (1, 0));
        assert_eq!(push_batch(&pushes, None, 0).0.len(), 1, "at least one");
    }

    #[test]
    fn delay_cursors_only_for_levels_this_broker_has() {
        let master = BTreeMap::from([(0, 5), (1, 10), (2, -3), (18, 4), (19, 1), (i64::MIN, 1)]);
        let (kept, dropped) = sync_delay_offsets(&master, 18);
        assert_eq!(kept, BTreeMap::from([(1, 10), (18, 4)]));
        assert_eq!(dropped, 4);
    }
}
