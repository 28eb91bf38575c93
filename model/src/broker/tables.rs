//! The broker's tables keyed by what clients send, and the bound of each: the subscription group
//! table (`SubscriptionGroupManager`, auto-created from heartbeats and pulls up to a cap), which
//! consumer offsets a broker keeps (existing topics, queue ids below the read queue count, known
//! groups), and which queue locks it grants (queues that exist, groups with a live member).
//!
//! With these, what a client can make the broker hold is bounded by what an operator set up:
//! groups ≤ the cap; offsets ≤ groups × the queues of existing topics; locks ≤ live groups ×
//! queues; topics ≤ [`crate::broker::admit::DEFAULT_MAX_TOPICS`].

use std::collections::BTreeMap;

use crate::broker::{DEFAULT_MAX_RECONSUME_TIMES, Refusal};
use crate::namesrv::TopicConfig;
use crate::route::{MASTER_ID, MessageQueue};

/// The most subscription groups a broker keeps by default.
pub const DEFAULT_MAX_GROUPS: usize = 10_000;
/// The longest group name (`TopicValidator.GROUP_MAX_LENGTH`).
pub const GROUP_MAX_LENGTH: usize = 120;

/// Why a group name is refused (`TopicValidator.validateGroup`).
pub fn invalid_group(group: &str) -> Option<String> {
    if group.trim().is_empty() {
        return Some("The specified group is blank.".into());
    }
    if !group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'-' || b == b'_' || b == b'|')
    {
        return Some(format!(
            "The specified group: {group}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    if group.len() > GROUP_MAX_LENGTH {
        return Some(format!(
            "The specified group: {group}, is longer than group max length: {GROUP_MAX_LENGTH}"
        ));
    }
    None
}

/// One group's configuration (`SubscriptionGroupConfig`, the fields Sextant uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionGroup {
    /// `consumeEnable`: whether the group may pull.
    pub consume_enable: bool,
    /// `retryMaxTimes`.
    pub retry_max_times: i32,
    /// `brokerId`: the broker a pull answer sends a consumer that keeps up to, when
    /// `slaveReadEnable` (0: the master).
    pub broker_id: u64,
    /// `whichBrokerWhenConsumeSlowly`: the broker a pull answer sends a consumer that fell behind
    /// to, when `slaveReadEnable` (1: the first slave).
    pub which_broker_when_consume_slowly: u64,
}

/// `SubscriptionGroupConfig.whichBrokerWhenConsumeSlowly`'s default.
pub const DEFAULT_WHICH_BROKER_WHEN_CONSUME_SLOWLY: u64 = 1;

impl Default for SubscriptionGroup {
    fn default() -> Self {
        SubscriptionGroup {
            consume_enable: true,
            retry_max_times: DEFAULT_MAX_RECONSUME_TIMES,
            broker_id: MASTER_ID,
            which_broker_when_consume_slowly: DEFAULT_WHICH_BROKER_WHEN_CONSUME_SLOWLY,
        }
    }
}

/// The subscription group table: every group the broker knows, created by an operator or
/// automatically (`autoCreateSubscriptionGroup`) from a heartbeat, a pull or a send-back, at
/// most `max` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionGroups {
    max: usize,
    auto_create: bool,
    groups: BTreeMap<String, SubscriptionGroup>,
}

impl SubscriptionGroups {
    /// An empty table of at most `max` groups.
    pub fn new(max: usize, auto_create: bool) -> Self {
        SubscriptionGroups {
            max,
            auto_create,
            groups: BTreeMap::new(),
        }
    }

    /// Whether `group` is known.
    pub fn contains(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The config of `group`.
    pub fn get(&self, group: &str) -> Option<&SubscriptionGroup> {
        self.groups.get(group)
    }

    /// How many groups the table holds.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every group, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SubscriptionGroup)> {
        self.groups.iter()
    }

    /// `findSubscriptionGroupConfig`: the group's config, created with the defaults when
    /// auto-creation is on, the name valid and the table under its cap. Returns whether it was
    /// created (the table then needs persisting). SUBSCRIPTION_GROUP_NOT_EXIST otherwise, with
    /// the reason.
    pub fn find_or_create(&mut self, group: &str) -> Result<(&SubscriptionGroup, bool), Refusal> {
        let created = if self.groups.contains_key(group) {
            false
        } else {
            if let Some(why) = invalid_group(group) {
                return Err(Refusal::SubscriptionGroupNotExist(why));
            }
            if !self.auto_create {
                return Err(Refusal::SubscriptionGroupNotExist(format!(
                    "subscription group [{group}] does not exist and autoCreateSubscriptionGroup is off"
                )));
            }
            if self.groups.len() >= self.max {
                return Err(Refusal::SubscriptionGroupNotExist(format!(
                    "subscription group [{group}] not created: this broker holds {} groups, its \
                     maximum (maxSubscriptionGroupCount)",
                    self.groups.len()
                )));
            }
            self.groups
                .insert(group.to_owned(), SubscriptionGroup::default());
            true
        };
        Ok((&self.groups[group], created))
    }

    /// Set `group`'s config (an operator's update, or a table loaded from disk), under the cap
    /// for a new group.
    pub fn put(&mut self, group: &str, config: SubscriptionGroup) -> Result<(), Refusal> {
        if !self.groups.contains_key(group) {
            if let Some(why) = invalid_group(group) {
                return Err(Refusal::InvalidParameter(why));
            }
            if self.groups.len() >= self.max {
                return Err(Refusal::SystemError(format!(
                    "this broker holds {} subscription groups, its maximum",
                    self.groups.len()
                )));
            }
        }
        self.groups.insert(group.to_owned(), config);
        Ok(())
    }

    /// Forget `group`. Returns whether it was known.
    pub fn remove(&mut self, group: &str) -> bool {
        self.groups.remove(group).is_some()
    }
}

/// Whether the broker keeps a consumer offset (`updateConsumerOffset`): the group known
/// (SUBSCRIPTION_GROUP_NOT_EXIST), the topic existing (TOPIC_NOT_EXIST), the queue id below the
/// topic's read queue count and the offset not negative (INVALID_PARAMETER). The queue id and
/// offset to keep.
pub fn admit_commit(
    group: &str,
    group_known: bool,
    topic_name: &str,
    topic: Option<&TopicConfig>,
    queue_id: i32,
    offset: i64,
) -> Result<(u32, u64), Refusal> {
    if !group_known {
        return Err(Refusal::SubscriptionGroupNotExist(format!(
            "Group {group} not exist!"
        )));
    }
    let Some(topic) = topic else {
        return Err(Refusal::TopicNotExist(format!(
            "Topic {topic_name} not exist!"
        )));
    };
    let qid = u32::try_from(queue_id)
        .ok()
        .filter(|q| *q < topic.read_queue_nums)
        .ok_or_else(|| {
            Refusal::InvalidParameter(format!(
                "queueId {queue_id} is not a queue of {topic_name} (readQueueNums {})",
                topic.read_queue_nums
            ))
        })?;
    let offset = u64::try_from(offset)
        .map_err(|_| Refusal::InvalidParameter(format!("commitOffset {offset}")))?;
    Ok((qid, offset))
}

/// The queues of a LOCK_BATCH_MQ the broker may lock: none when `group` has no live member;
/// otherwise those of this broker (`broker_name`) whose topic exists (`topic`) with the queue
/// id below its read queue count. Asking for others is not an error — they are just not
/// granted, as a queue locked by someone else is not.
pub fn lockable<'a>(
    mqs: &[MessageQueue],
    broker_name: &str,
    group_live: bool,
    topic: impl Fn(&str) -> Option<&'a TopicConfig>,
) -> Vec<MessageQueue> {
    if !group_live {
        return Vec::new();
    }
    mqs.iter()
        .filter(|mq| {
            &*mq.broker_name == broker_name
                && topic(&mq.topic).is_some_and(|t| mq.queue_id < t.read_queue_nums)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_created_up_to_the_cap() {
        let mut t = SubscriptionGroups::new(2, true);
        assert!(t.find_or_create("a").unwrap().1);
        assert!(!t.find_or_create("a").unwrap().1);
        assert!(t.find_or_create("b").unwrap().1);
        assert!(matches!(
            t.find_or_create("c"),
            Err(Refusal::SubscriptionGroupNotExist(_))
        ));
        assert!(
            t.find_or_create("a").is_ok(),
            "a known group is still found"
        );
        assert!(t.find_or_create("bad group").is_err());
        assert!(t.find_or_create(&"g".repeat(121)).is_err());
        let mut off = SubscriptionGroups::new(2, false);
        assert!(off.find_or_create("a").is_err());
        off.put("a", SubscriptionGroup::default()).unwrap();
        assert!(off.find_or_create("a").is_ok());
    }

    #[test]
    fn group_names_allow_each_of_percent_bar_dash_underscore() {
        // `^[%|a-zA-Z0-9_-]+$`, each special character alone too.
        for ok in ["%", "|", "-", "_", "aZ9", "%RETRY%g|x-y_z"] {
            assert_eq!(invalid_group(ok), None, "{ok}");
        }
        for bad in ["a b", "a.b", "a/b", "é", " ", ""] {
            assert!(invalid_group(bad).is_some(), "{bad:?}");
        }
        assert_eq!(invalid_group(&"g".repeat(GROUP_MAX_LENGTH)), None);
        assert!(invalid_group(&"g".repeat(GROUP_MAX_LENGTH + 1)).is_some());
    }

    #[test]
    fn the_group_table_answers_what_it_holds() {
        let mut t = SubscriptionGroups::new(2, false);
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(!t.contains("a"));
        assert_eq!(t.get("a"), None);
        let slow = SubscriptionGroup {
            which_broker_when_consume_slowly: 2,
            ..SubscriptionGroup::default()
        };
        t.put("a", slow.clone()).unwrap();
        assert!(t.contains("a") && !t.is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("a"), Some(&slow));
        assert!(matches!(
            t.put("bad group", SubscriptionGroup::default()),
            Err(Refusal::InvalidParameter(_))
        ));
        t.put("b", SubscriptionGroup::default()).unwrap();
        assert!(matches!(
            t.put("c", SubscriptionGroup::default()),
            Err(Refusal::SystemError(_))
        ));
        // A known group is updated even at the cap.
        t.put("a", SubscriptionGroup::default()).unwrap();
        assert_eq!(t.get("a"), Some(&SubscriptionGroup::default()));
        assert_eq!(
            t.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(t.remove("a"));
        assert!(!t.remove("a"), "already gone");
        assert!(!t.contains("a"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn offsets_only_for_known_groups_and_real_queues() {
        let t = TopicConfig::new("T", 4);
        assert_eq!(admit_commit("g", true, "T", Some(&t), 3, 7), Ok((3, 7)));
        assert!(matches!(
            admit_commit("g", false, "T", Some(&t), 3, 7),
            Err(Refusal::SubscriptionGroupNotExist(_))
        ));
        assert!(matches!(
            admit_commit("g", true, "X", None, 3, 7),
            Err(Refusal::TopicNotExist(_))
        ));
        assert!(admit_commit("g", true, "T", Some(&t), 4, 7).is_err());
        assert!(admit_commit("g", true, "T", Some(&t), -1, 7).is_err());
        assert!(admit_commit("g", true, "T", Some(&t), 0, -7).is_err());
    }

    #[test]
    fn locks_only_for_existing_queues_of_live_groups() {
        let t = TopicConfig::new("T", 2);
        let find = |n: &str| (n == "T").then_some(&t);
        let mqs = [
            MessageQueue::new("T", "b", 0),
            MessageQueue::new("T", "b", 2),
            MessageQueue::new("T", "other", 0),
            MessageQueue::new("X", "b", 0),
        ];
        assert_eq!(lockable(&mqs, "b", true, find), vec![mqs[0].clone()]);
        assert!(lockable(&mqs, "b", false, find).is_empty());
    }
}
