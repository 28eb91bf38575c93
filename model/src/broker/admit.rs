//! What the broker takes, and what it stores it as: the checks of a send (`msgCheck`,
//! `SendMessageProcessor`), the topic a send lands in (existing, created from `TBW102`, a group's
//! retry or dead-letter topic, redirected to the DLQ past the maximum reconsume times), the
//! rewrite of a delayed message into the schedule topic and its redelivery, a consumer's
//! send-back, and UPDATE_AND_CREATE_TOPIC. Each answers the [`Refusal`] RocketMQ answers.

use crate::broker::{
    AUTO_CREATE_TOPIC, DEFAULT_MAX_RECONSUME_TIMES, DLQ_PREFIX, DelayLevels, RETRY_PREFIX, Refusal,
    SCHEDULE_TOPIC, SendBackTarget, auto_create, dlq_topic, group_topic, invalid_topic,
    retry_topic, send_back_target,
};
use crate::namesrv::TopicConfig;
use crate::route::Perm;

/// Topics no client may send to (`TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`): the schedule
/// topic (a message sent there with a delay would be copied into it forever), the transaction
/// topics and the broker's own.
pub const NOT_ALLOWED_SEND_TOPICS: [&str; 6] = [
    SCHEDULE_TOPIC,
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// Topics of the system (`TopicValidator.SYSTEM_TOPIC_SET`, and the `rmq_sys_` prefix): never
/// created or changed by UPDATE_AND_CREATE_TOPIC (`validateSystemTopicWhenUpdateTopic`).
pub const SYSTEM_TOPICS: [&str; 10] = [
    AUTO_CREATE_TOPIC,
    SCHEDULE_TOPIC,
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
];

/// The prefix of system topics (`TopicValidator.SYSTEM_TOPIC_PREFIX`).
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// The transaction bits of a message's `sysFlag` (`MessageSysFlag`: prepared 0x4, commit 0x8,
/// rollback 0xC).
pub const TRANSACTION_TYPE_MASK: i32 = 0xC;

/// The most messages one batch may hold: its response carries one 32-character offset id per
/// message (and a comma) in a header, which must fit the 16 MiB frame with room to spare.
pub const MAX_BATCH_MESSAGES: usize = 100_000;

/// The most topics a broker holds (system, retry and dead-letter topics included): each costs
/// a line in `topics.json`, its queues' files and a share of every NameServer registration.
pub const DEFAULT_MAX_TOPICS: usize = 10_000;

/// Whether `topic` is a system topic (`TopicValidator.isSystemTopic` with the topics a broker
/// adds): the fixed set, the `rmq_sys_` prefix and every `RMQ_SYS_` topic, the broker's
/// cluster-name and broker-name topics and `<cluster>_REPLY_TOPIC`.
pub fn system_topic(topic: &str, cluster: &str, broker_name: &str) -> bool {
    SYSTEM_TOPICS.contains(&topic)
        || topic.starts_with(SYSTEM_TOPIC_PREFIX)
        || topic.starts_with("RMQ_SYS_")
        || topic == cluster
        || topic == broker_name
        || topic.strip_suffix("_REPLY_TOPIC") == Some(cluster)
}

/// The group of a retry (`%RETRY%g`) or dead-letter (`%DLQ%g`) topic.
pub fn group_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(RETRY_PREFIX)
        .or_else(|| topic.strip_prefix(DLQ_PREFIX))
}

/// A send as its header and body describe it.
#[derive(Clone, Copy, Debug)]
pub struct SendRequest<'a> {
    /// The topic named in the header.
    pub topic: &'a str,
    /// The message `sysFlag`.
    pub sys_flag: i32,
    /// Whether the properties say `TRAN_MSG=true` (a prepared transaction message).
    pub transaction_prepared: bool,
    /// Whether it is a batch.
    pub batch: bool,
    /// The whole body's length (a batch: every message's encoding together).
    pub body_len: usize,
    /// How many messages the body holds.
    pub count: usize,
    /// `maxMessageSize`.
    pub max_message_size: usize,
}

/// The checks of a send before its topic is looked up (`msgCheck`, `sendMessage`,
/// `sendBatchMessage`): a valid topic name (INVALID_PARAMETER), not a topic closed to sends
/// (NO_PERMISSION), no transaction message (Sextant has no transaction service: a prepared
/// message would otherwise be delivered as an ordinary one), a batch not to a retry topic and
/// within `maxMessageSize` as a whole and [`MAX_BATCH_MESSAGES`] (MESSAGE_ILLEGAL).
pub fn admit_send(req: &SendRequest<'_>) -> Result<(), Refusal> {
    if let Some(why) = invalid_topic(req.topic) {
        return Err(Refusal::InvalidParameter(format!("{why}: {}", req.topic)));
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&req.topic) {
        return Err(Refusal::NoPermission(format!(
            "Sending message to topic[{}] is forbidden.",
            req.topic
        )));
    }
    if req.sys_flag & TRANSACTION_TYPE_MASK != 0 || req.transaction_prepared {
        return Err(Refusal::NoPermission(format!(
            "transactional messages are not supported by this broker (sysFlag {:#x}): \
             the message was not stored",
            req.sys_flag
        )));
    }
    if req.batch && req.topic.starts_with(RETRY_PREFIX) {
        return Err(Refusal::MessageIllegal(format!(
            "batch request does not support retry group {}",
            req.topic
        )));
    }
    if req.body_len > req.max_message_size {
        return Err(Refusal::MessageIllegal(format!(
            "the message body size over max value, MAX: {} (this {}: {} bytes)",
            req.max_message_size,
            if req.batch { "batch" } else { "message" },
            req.body_len
        )));
    }
    if req.count > MAX_BATCH_MESSAGES {
        return Err(Refusal::MessageIllegal(format!(
            "a batch of {} messages: at most {MAX_BATCH_MESSAGES}",
            req.count
        )));
    }
    Ok(())
}

/// The checks of one message of a send: a body within `maxMessageSize` and properties that fit
/// the record's 2-byte length (MESSAGE_ILLEGAL).
pub fn admit_message(
    body_len: usize,
    properties_len: usize,
    max_message_size: usize,
) -> Result<(), Refusal> {
    if body_len > max_message_size {
        return Err(Refusal::MessageIllegal(format!(
            "the message body size over max value, MAX: {max_message_size}"
        )));
    }
    if properties_len > i16::MAX as usize {
        return Err(Refusal::MessageIllegal(format!(
            "the message properties length {properties_len} is too long"
        )));
    }
    Ok(())
}

/// What the broker knows when it looks up a send's topic.
#[derive(Clone, Copy, Debug)]
pub struct TopicLookup<'a> {
    /// The topic's config, if it exists.
    pub existing: Option<&'a TopicConfig>,
    /// The config of `TBW102`, if it exists.
    pub template: Option<&'a TopicConfig>,
    /// For a retry or dead-letter topic, whether its group is known (in the subscription
    /// group table).
    pub group_known: bool,
    /// How many topics the broker holds.
    pub topic_count: usize,
    /// The most it may hold.
    pub max_topics: usize,
}

/// The topic a send goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendTopic {
    /// An existing topic.
    Existing(TopicConfig),
    /// A topic to create first (and register with the NameServers).
    Create(TopicConfig),
}

impl SendTopic {
    /// The topic's config.
    pub fn config(&self) -> &TopicConfig {
        match self {
            SendTopic::Existing(c) | SendTopic::Create(c) => c,
        }
    }
}

/// The topic of a send (`msgCheck` → `createTopicInSendMessageMethod` /
/// `createTopicInSendMessageBackMethod`): an existing one; a retry or dead-letter topic of a
/// known group (one queue); a topic auto-created from `TBW102` when the template allows it;
/// none past the topic cap (SYSTEM_ERROR, saying so) or otherwise (TOPIC_NOT_EXIST).
pub fn send_topic(
    topic: &str,
    lookup: &TopicLookup<'_>,
    requested_queues: i32,
) -> Result<SendTopic, Refusal> {
    if let Some(t) = lookup.existing {
        return Ok(SendTopic::Existing(t.clone()));
    }
    if let Some(why) = invalid_topic(topic) {
        return Err(Refusal::InvalidParameter(format!("{why}: {topic}")));
    }
    let not_exist = || {
        Refusal::TopicNotExist(format!(
            "topic[{topic}] not exist, apply first please! \
             https://rocketmq.apache.org/docs/bestPractice/06FAQ"
        ))
    };
    let created = if group_of(topic).is_some() {
        if !lookup.group_known {
            return Err(Refusal::SubscriptionGroupNotExist(format!(
                "topic[{topic}]: the consumer group {} is unknown to this broker \
                 (a retry or dead-letter topic is created only for a group that heartbeats)",
                group_of(topic).unwrap_or_default()
            )));
        }
        group_topic(topic)
    } else {
        lookup
            .template
            .and_then(|t| auto_create(topic, t, requested_queues))
            .ok_or_else(not_exist)?
    };
    admit_new_topic(lookup.topic_count, lookup.max_topics)?;
    Ok(SendTopic::Create(created))
}

/// Whether one more topic fits under the cap.
pub fn admit_new_topic(topic_count: usize, max_topics: usize) -> Result<(), Refusal> {
    if topic_count >= max_topics {
        return Err(Refusal::SystemError(format!(
            "this broker holds {topic_count} topics, its maximum (maxTopicCount {max_topics}): \
             delete topics or raise the limit"
        )));
    }
    Ok(())
}

/// A send to a retry topic past the group's maximum reconsume times goes to the group's
/// dead-letter topic, queue 0, instead (`handleRetryAndDLQ`): its name, when redirected.
pub fn retry_redirect(
    topic: &str,
    reconsume_times: i32,
    max_reconsume_times: Option<i32>,
) -> Option<String> {
    let group = topic.strip_prefix(RETRY_PREFIX)?;
    let max = max_reconsume_times.unwrap_or(DEFAULT_MAX_RECONSUME_TIMES);
    (send_back_target(reconsume_times, max, 1) == SendBackTarget::DeadLetter)
        .then(|| dlq_topic(group))
}

/// How a message with a `DELAY` level is stored: in the schedule topic, queue `level − 1`, with
/// the level clamped to the highest (and its real topic and queue kept in properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayRewrite {
    /// The schedule queue.
    pub schedule_queue: u32,
    /// The level stored (clamped).
    pub level: i32,
}

/// The rewrite of a message whose `DELAY` property is `level`, or `None` when it is not delayed.
pub fn delay_rewrite(level: i32, levels: &DelayLevels) -> Option<DelayRewrite> {
    let schedule_queue = levels.queue_of(level)?;
    Some(DelayRewrite {
        schedule_queue,
        level: level.min(levels.max_level()),
    })
}

/// When a delayed message stored at `store_ms` with `level` is due.
pub fn due_at(store_ms: i64, level: i32, levels: &DelayLevels) -> i64 {
    let delay = levels.delay(level).unwrap_or(0);
    store_ms.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
}

/// Where a due delayed message goes back to: its `REAL_TOPIC` and `REAL_QID`, when that topic
/// exists, may be sent to and has the queue. Otherwise why it is skipped — logged, the level's
/// cursor moves past it; it is never retried in a loop nor blocks its level.
pub fn redelivery_target(
    real_topic: Option<&str>,
    real_qid: Option<&str>,
    topic: Option<&TopicConfig>,
) -> Result<(String, u32), String> {
    let name = real_topic.ok_or("no REAL_TOPIC property")?;
    let qid: u32 = real_qid
        .and_then(|q| q.parse().ok())
        .ok_or_else(|| format!("REAL_QID {real_qid:?} is not a queue id"))?;
    if NOT_ALLOWED_SEND_TOPICS.contains(&name) {
        return Err(format!("REAL_TOPIC {name} may not be sent to"));
    }
    let t = topic.ok_or_else(|| format!("REAL_TOPIC {name} does not exist"))?;
    if qid >= t.write_queue_nums.max(t.read_queue_nums) {
        return Err(format!(
            "REAL_QID {qid} is not a queue of {name} ({} queues)",
            t.write_queue_nums.max(t.read_queue_nums)
        ));
    }
    Ok((name.to_owned(), qid))
}

/// A consumer's CONSUMER_SEND_MSG_BACK, as its header says.
#[derive(Clone, Copy, Debug)]
pub struct SendBackRequest<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// The delay level asked for (0: the broker picks, negative: the DLQ).
    pub delay_level: i32,
    /// `maxReconsumeTimes` of the header.
    pub max_reconsume_times: Option<i32>,
    /// `originMsgId` of the header.
    pub origin_msg_id: Option<&'a str>,
}

/// What the broker knows of the message sent back (read from its store).
#[derive(Clone, Copy, Debug)]
pub struct SentBack<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// How often it was reconsumed.
    pub reconsume_times: i32,
    /// Its `RETRY_TOPIC` property.
    pub retry_topic: Option<&'a str>,
    /// Its `ORIGIN_MESSAGE_ID` property.
    pub origin_msg_id: Option<&'a str>,
    /// Its `UNIQ_KEY` property.
    pub uniq_key: Option<&'a str>,
    /// Its offset message id.
    pub offset_msg_id: &'a str,
}

/// What a send-back stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendBackPlan {
    /// The retry or dead-letter topic.
    pub topic: String,
    /// Whether it goes to the dead-letter topic.
    pub dead_letter: bool,
    /// The `DELAY` property of the copy (none for the DLQ).
    pub delay_level: Option<i32>,
    /// Its reconsume count (one more).
    pub reconsume_times: i32,
    /// `RETRY_TOPIC` to set, when the message has none (the topic it was first sent to).
    pub retry_topic: Option<String>,
    /// `ORIGIN_MESSAGE_ID` to set, when the message has none.
    pub origin_msg_id: Option<String>,
}

/// The decision of `consumerSendMsgBack`: the group must be known (SUBSCRIPTION_GROUP_NOT_EXIST);
/// the target is [`send_back_target`]'s; the copy keeps the first topic (`RETRY_TOPIC`) and the
/// first id the message had — the header's `originMsgId`, else its `UNIQ_KEY`, else its offset
/// id (`MessageExt.getMsgId`) — and counts one more reconsume.
pub fn plan_send_back(
    req: &SendBackRequest<'_>,
    msg: &SentBack<'_>,
    group_known: bool,
) -> Result<SendBackPlan, Refusal> {
    if !group_known {
        return Err(Refusal::SubscriptionGroupNotExist(format!(
            "subscription group not exist, {} https://rocketmq.apache.org/docs/bestPractice/06FAQ",
            req.group
        )));
    }
    let max = req
        .max_reconsume_times
        .unwrap_or(DEFAULT_MAX_RECONSUME_TIMES);
    let target = send_back_target(msg.reconsume_times, max, req.delay_level);
    let (topic, delay_level, dead_letter) = match target {
        SendBackTarget::Retry { delay_level } => (retry_topic(req.group), Some(delay_level), false),
        SendBackTarget::DeadLetter => (dlq_topic(req.group), None, true),
    };
    let origin = req
        .origin_msg_id
        .filter(|o| !o.is_empty())
        .or(msg.uniq_key)
        .unwrap_or(msg.offset_msg_id);
    Ok(SendBackPlan {
        topic,
        dead_letter,
        delay_level: delay_level.filter(|d| *d > 0),
        reconsume_times: msg.reconsume_times.saturating_add(1),
        retry_topic: msg.retry_topic.is_none().then(|| msg.topic.to_owned()),
        origin_msg_id: msg.origin_msg_id.is_none().then(|| origin.to_owned()),
    })
}

/// UPDATE_AND_CREATE_TOPIC as its header says.
#[derive(Clone, Copy, Debug)]
pub struct TopicUpdate<'a> {
    /// The topic.
    pub topic: &'a str,
    /// `readQueueNums`.
    pub read_queue_nums: i32,
    /// `writeQueueNums`.
    pub write_queue_nums: i32,
    /// `perm`.
    pub perm: i32,
    /// `topicSysFlag`.
    pub topic_sys_flag: i32,
    /// `order`.
    pub order: bool,
}

/// The most queues a topic may have on one broker.
pub const MAX_TOPIC_QUEUES: u32 = 1024;

/// The config UPDATE_AND_CREATE_TOPIC stores (`updateAndCreateTopic`): a valid name that is no
/// system topic (INVALID_PARAMETER), 1..=[`MAX_TOPIC_QUEUES`] read and write queues
/// (INVALID_PARAMETER), the permission masked to read, write and inherit; a new topic only
/// under the cap.
pub fn topic_update(
    req: &TopicUpdate<'_>,
    cluster: &str,
    broker_name: &str,
    exists: bool,
    topic_count: usize,
    max_topics: usize,
) -> Result<TopicConfig, Refusal> {
    if let Some(why) = invalid_topic(req.topic) {
        return Err(Refusal::InvalidParameter(format!("{why}: {}", req.topic)));
    }
    if system_topic(req.topic, cluster, broker_name) {
        return Err(Refusal::InvalidParameter(format!(
            "The topic[{}] is conflict with system topic.",
            req.topic
        )));
    }
    let nums = |n: i32, what: &str| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_TOPIC_QUEUES).contains(n))
            .ok_or_else(|| {
                Refusal::InvalidParameter(format!("{what} {n} is not 1..={MAX_TOPIC_QUEUES}"))
            })
    };
    let config = TopicConfig {
        topic_name: req.topic.to_owned(),
        read_queue_nums: nums(req.read_queue_nums, "readQueueNums")?,
        write_queue_nums: nums(req.write_queue_nums, "writeQueueNums")?,
        perm: Perm(
            u32::try_from(req.perm).unwrap_or(0) & (Perm::READ | Perm::WRITE | Perm::INHERIT),
        ),
        topic_sys_flag: u32::try_from(req.topic_sys_flag).unwrap_or(0),
        order: req.order,
    };
    if !exists {
        admit_new_topic(topic_count, max_topics)?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<'a>(topic: &'a str) -> SendRequest<'a> {
        SendRequest {
            topic,
            sys_flag: 0,
            transaction_prepared: false,
            batch: false,
            body_len: 10,
            count: 1,
            max_message_size: 100,
        }
    }

    #[test]
    fn system_topics_are_closed_to_sends() {
        for t in NOT_ALLOWED_SEND_TOPICS {
            assert!(matches!(
                admit_send(&send(t)),
                Err(Refusal::NoPermission(_))
            ));
        }
        assert!(admit_send(&send("TopicTest")).is_ok());
        assert!(matches!(
            admit_send(&send("bad topic")),
            Err(Refusal::InvalidParameter(_))
        ));
    }

    #[test]
    fn transactions_and_oversized_batches_are_refused() {
        for flag in [0x4, 0x8, 0xC] {
            let r = SendRequest {
                sys_flag: flag,
                ..send("T")
            };
            assert!(matches!(admit_send(&r), Err(Refusal::NoPermission(_))));
        }
        let r = SendRequest {
            transaction_prepared: true,
            ..send("T")
        };
        assert!(admit_send(&r).is_err());
        // Each message is small; the batch as a whole is over the limit.
        let r = SendRequest {
            batch: true,
            body_len: 101,
            count: 50,
            ..send("T")
        };
        assert!(matches!(admit_send(&r), Err(Refusal::MessageIllegal(_))));
        let r = SendRequest {
            batch: true,
            body_len: 100,
            ..send("%RETRY%g")
        };
        assert!(matches!(admit_send(&r), Err(Refusal::MessageIllegal(_))));
    }

    #[test]
    fn sizes_and_counts_at_their_limits_are_admitted() {
        let at_max = SendRequest {
            body_len: 100,
            ..send("T")
        };
        assert!(
            admit_send(&at_max).is_ok(),
            "a body of exactly maxMessageSize"
        );
        let over = SendRequest {
            body_len: 101,
            ..send("T")
        };
        assert!(matches!(admit_send(&over), Err(Refusal::MessageIllegal(_))));
        let full = SendRequest {
            batch: true,
            count: MAX_BATCH_MESSAGES,
            ..send("T")
        };
        assert!(admit_send(&full).is_ok());
        let too_many = SendRequest {
            count: MAX_BATCH_MESSAGES + 1,
            ..full
        };
        assert!(matches!(
            admit_send(&too_many),
            Err(Refusal::MessageIllegal(_))
        ));
        assert!(admit_message(100, 0, 100).is_ok());
        assert!(admit_message(0, 0, 100).is_ok());
        assert!(matches!(
            admit_message(101, 0, 100),
            Err(Refusal::MessageIllegal(_))
        ));
        // Properties fit the record's 2-byte length: 32 767 bytes at most.
        assert!(admit_message(1, 32_767, 100).is_ok());
        assert!(matches!(
            admit_message(1, 32_768, 100),
            Err(Refusal::MessageIllegal(_))
        ));
    }

    #[test]
    fn group_topics_only_for_known_groups_and_topics_capped() {
        let template = crate::broker::auto_create_template(true);
        let mut lookup = TopicLookup {
            existing: None,
            template: Some(&template),
            group_known: false,
            topic_count: 5,
            max_topics: 10,
        };
        assert!(matches!(
            send_topic("%RETRY%g", &lookup, 4),
            Err(Refusal::SubscriptionGroupNotExist(_))
        ));
        lookup.group_known = true;
        assert_eq!(
            send_topic("%DLQ%g", &lookup, 4).unwrap(),
            SendTopic::Create(group_topic("%DLQ%g"))
        );
        assert!(matches!(
            send_topic("T", &lookup, 4).unwrap(),
            SendTopic::Create(c) if c.write_queue_nums == 4
        ));
        lookup.topic_count = 10;
        assert!(matches!(
            send_topic("T", &lookup, 4),
            Err(Refusal::SystemError(_))
        ));
        let t = TopicConfig::new("T", 2);
        lookup.existing = Some(&t);
        assert_eq!(
            send_topic("T", &lookup, 4).unwrap(),
            SendTopic::Existing(t.clone())
        );
    }

    #[test]
    fn redelivery_checks_the_real_topic() {
        let t = TopicConfig::new("T", 4);
        assert_eq!(
            redelivery_target(Some("T"), Some("3"), Some(&t)),
            Ok(("T".into(), 3))
        );
        assert!(redelivery_target(Some("T"), Some("4"), Some(&t)).is_err());
        assert!(redelivery_target(Some("T"), Some("x"), Some(&t)).is_err());
        assert!(redelivery_target(None, Some("1"), Some(&t)).is_err());
        assert!(redelivery_target(Some("T"), Some("1"), None).is_err());
        let s = TopicConfig::new(SCHEDULE_TOPIC, 18);
        assert!(redelivery_target(Some(SCHEDULE_TOPIC), Some("1"), Some(&s)).is_err());
    }

    #[test]
    fn send_back_keeps_the_first_topic_and_id() {
        let req = SendBackRequest {
            group: "g",
            delay_level: 0,
            max_reconsume_times: None,
            origin_msg_id: None,
        };
        let msg = SentBack {
            topic: "T",
            reconsume_times: 0,
            retry_topic: None,
            origin_msg_id: None,
            uniq_key: Some("U"),
            offset_msg_id: "O",
        };
        let p = plan_send_back(&req, &msg, true).unwrap();
        assert_eq!(p.topic, "%RETRY%g");
        assert_eq!(p.delay_level, Some(3));
        assert_eq!(p.retry_topic.as_deref(), Some("T"));
        assert_eq!(p.origin_msg_id.as_deref(), Some("U"));
        assert_eq!(p.reconsume_times, 1);
        let again = SentBack {
            topic: "%RETRY%g",
            reconsume_times: 16,
            retry_topic: Some("T"),
            origin_msg_id: Some("U"),
            ..msg
        };
        let p = plan_send_back(&req, &again, true).unwrap();
        assert!(p.dead_letter);
        assert_eq!(
            (p.retry_topic, p.origin_msg_id, p.delay_level),
            (None, None, None)
        );
        assert!(plan_send_back(&req, &msg, false).is_err());
        // The origin id the request names wins over the message's key; an empty one does not.
        let named = SendBackRequest {
            origin_msg_id: Some("X"),
            ..req
        };
        let p = plan_send_back(&named, &msg, true).unwrap();
        assert_eq!(p.origin_msg_id.as_deref(), Some("X"));
        let empty = SendBackRequest {
            origin_msg_id: Some(""),
            ..req
        };
        let p = plan_send_back(&empty, &msg, true).unwrap();
        assert_eq!(p.origin_msg_id.as_deref(), Some("U"));
        // A hostile reconsume count of -3 computes delay level 0: no delay, not level 0.
        let odd = SentBack {
            reconsume_times: -3,
            ..msg
        };
        let p = plan_send_back(&req, &odd, true).unwrap();
        assert_eq!((p.delay_level, p.dead_letter), (None, false));
    }

    #[test]
    fn topic_updates_are_validated() {
        let mut u = TopicUpdate {
            topic: "T",
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 0xFF,
            topic_sys_flag: 0,
            order: false,
        };
        let c = topic_update(&u, "C", "B", false, 0, 10).unwrap();
        assert_eq!(c.perm, Perm(7));
        for sys in ["TBW102", "C", "B", "rmq_sys_x", SCHEDULE_TOPIC] {
            u.topic = sys;
            assert!(topic_update(&u, "C", "B", false, 0, 10).is_err(), "{sys}");
        }
        u.topic = "T";
        u.read_queue_nums = 0;
        assert!(topic_update(&u, "C", "B", false, 0, 10).is_err());
        u.read_queue_nums = 1025;
        assert!(topic_update(&u, "C", "B", false, 0, 10).is_err());
        u.read_queue_nums = 8;
        assert!(topic_update(&u, "C", "B", false, 10, 10).is_err());
        assert!(topic_update(&u, "C", "B", true, 10, 10).is_ok());
    }

    #[test]
    fn delays_rewrite_into_the_schedule_queue() {
        let levels = DelayLevels::default();
        assert_eq!(delay_rewrite(0, &levels), None);
        assert_eq!(
            delay_rewrite(3, &levels),
            Some(DelayRewrite {
                schedule_queue: 2,
                level: 3
            })
        );
        assert_eq!(delay_rewrite(99, &levels).unwrap().level, 18);
        assert_eq!(due_at(1000, 1, &levels), 2000);
        assert_eq!(
            retry_redirect("%RETRY%g", 16, None).as_deref(),
            Some("%DLQ%g")
        );
        assert_eq!(retry_redirect("%RETRY%g", 15, None), None);
        assert_eq!(retry_redirect("T", 99, None), None);
    }
}
