//! What a PULL_MESSAGE may read (`PullMessageProcessor.processRequest`): the checks before the
//! store is read, where the read starts, which filter applies, whether the pull commits an offset
//! on the way, how much one answer carries and how long a pull that finds nothing is held; and
//! which broker the answer suggests the consumer pull from next (`suggestWhichBrokerId`).

use crate::Millis;
use crate::broker::tables::SubscriptionGroup;
use crate::broker::{Refusal, hold_time};
use crate::client::pull_flag;
use crate::namesrv::TopicConfig;
use crate::route::{MASTER_ID, Perm};

/// The most messages one pull returns (`maxTransferCountOnMessageInMemory`, raised).
pub const PULL_MAX_MSGS: usize = 1024;
/// About the most record bytes one pull returns (`maxTransferBytesOnMessageInMemory`).
pub const PULL_MAX_BYTES: usize = 256 * 1024;
/// The longest a pull is held, whatever the client asks.
pub const MAX_SUSPEND_MS: Millis = 300_000;

/// A pull as its header says.
#[derive(Clone, Copy, Debug)]
pub struct PullRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// `queueId`.
    pub queue_id: i32,
    /// `queueOffset`.
    pub queue_offset: i64,
    /// `sysFlag` (`PullSysFlag`).
    pub sys_flag: i32,
    /// `commitOffset`.
    pub commit_offset: i64,
    /// `maxMsgNums`.
    pub max_msg_nums: i32,
    /// `maxMsgBytes`, if sent.
    pub max_msg_bytes: Option<i32>,
    /// `suspendTimeoutMillis`.
    pub suspend_timeout_ms: i64,
}

/// The broker's side of a pull.
#[derive(Clone, Copy, Debug)]
pub struct PullBroker {
    /// `brokerPermission`.
    pub permission: Perm,
    /// Whether the broker is a master (a slave neither commits offsets nor moves consumers
    /// unless `offsetCheckInSlave`).
    pub master: bool,
    /// `offsetCheckInSlave`.
    pub offset_check_in_slave: bool,
    /// `longPollingEnable`.
    pub long_polling: bool,
    /// `shortPollingTimeMills`.
    pub short_polling_ms: Millis,
}

/// Where the subscription of a pull comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterSource {
    /// The expression sent with the pull.
    Request,
    /// The group's subscription from its heartbeats (none: every message).
    Group,
}

/// What a pull reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullPlan {
    /// The queue.
    pub queue_id: u32,
    /// Where the read starts (a negative offset reads from 0).
    pub offset: u64,
    /// Which subscription filters the messages.
    pub filter: FilterSource,
    /// An offset to commit on the way.
    pub commit: Option<u64>,
    /// Whether a pull that finds nothing new may be held.
    pub suspend: bool,
    /// How long it is held.
    pub hold_ms: Millis,
    /// The most messages answered.
    pub max_msgs: usize,
    /// About the most bytes answered.
    pub max_bytes: usize,
    /// Whether the broker may move the consumer to another offset (`nextOffsetCorrection`).
    pub correct: bool,
}

/// The plan of a pull of `topic` (its config, if it exists): TOPIC_NOT_EXIST for a missing
/// topic; NO_PERMISSION when the topic or the broker is not readable; SYSTEM_ERROR for a queue
/// id not below the topic's read queue count (RocketMQ's remark). The count is clamped to
/// 1..=[`PULL_MAX_MSGS`], the bytes to [`PULL_MAX_BYTES`]; the filter is the request's when it
/// carries one; only a master commits, and only a non-negative offset.
pub fn plan_pull(
    req: &PullRequest<'_>,
    topic: Option<&TopicConfig>,
    broker: &PullBroker,
    consumer: &str,
) -> Result<PullPlan, Refusal> {
    let Some(config) = topic else {
        return Err(Refusal::TopicNotExist(format!(
            "topic[{}] not exist, apply first please!",
            req.topic
        )));
    };
    if !config.perm.is_readable() || !broker.permission.is_readable() {
        return Err(Refusal::NoPermission(format!(
            "the topic[{}] pulling message is forbidden",
            req.topic
        )));
    }
    let queue_id = u32::try_from(req.queue_id)
        .ok()
        .filter(|q| *q < config.read_queue_nums)
        .ok_or_else(|| {
            Refusal::SystemError(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{consumer}]",
                req.queue_id, req.topic, config.read_queue_nums
            ))
        })?;
    let commit = (req.sys_flag & pull_flag::COMMIT_OFFSET != 0 && broker.master)
        .then(|| u64::try_from(req.commit_offset).ok())
        .flatten();
    let max_msgs = usize::try_from(req.max_msg_nums)
        .unwrap_or(0)
        .clamp(1, PULL_MAX_MSGS);
    let max_bytes = req
        .max_msg_bytes
        .and_then(|b| usize::try_from(b).ok())
        .filter(|b| *b > 0)
        .map_or(PULL_MAX_BYTES, |b| b.min(PULL_MAX_BYTES));
    Ok(PullPlan {
        queue_id,
        offset: u64::try_from(req.queue_offset).unwrap_or(0),
        filter: if req.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            FilterSource::Request
        } else {
            FilterSource::Group
        },
        commit,
        suspend: req.sys_flag & pull_flag::SUSPEND != 0,
        hold_ms: hold_time(
            broker.long_polling,
            req.suspend_timeout_ms,
            broker.short_polling_ms,
            MAX_SUSPEND_MS,
        ),
        max_msgs,
        max_bytes,
        correct: broker.master || broker.offset_check_in_slave,
    })
}

/// Whether the store suggests the consumer pull from a slave (`DefaultMessageStore.getMessage`'s
/// `suggestPullingFromSlave`): what is left to read after this pull — from the CommitLog position
/// of the last message it read to the CommitLog's end, `max_phy_offset` — is more than
/// `ratio_percent` (`accessMessageInMemoryMaxRatio`, 40) per cent of the physical memory, so it is
/// most likely no longer in the page cache and reading it would slow the master. A pull that read
/// nothing (`None`) suggests nothing.
///
/// RocketMQ measures from the last ConsumeQueue entry the read *examined*, filtered out or not;
/// Sextant from the last message it returned. The budget is `total_memory × ratio / 100` in
/// integers (RocketMQ: a `double`, truncated).
pub fn suggest_pulling_from_slave(
    max_phy_offset: u64,
    last_pulled_phy_offset: Option<u64>,
    total_memory: u64,
    ratio_percent: u32,
) -> bool {
    let Some(last) = last_pulled_phy_offset else {
        return false;
    };
    let budget = u128::from(total_memory) * u128::from(ratio_percent) / 100;
    u128::from(max_phy_offset.saturating_sub(last)) > budget
}

/// The broker id a pull answer suggests the consumer pull from next (`suggestWhichBrokerId`,
/// `PullMessageProcessor`): with `slaveReadEnable` off always the master ([`MASTER_ID`]); with it
/// on, the group's `whichBrokerWhenConsumeSlowly` (default 1) when the store suggests a slave
/// ([`suggest_pulling_from_slave`]), else the group's `brokerId` (default 0).
pub fn suggest_broker(
    slave_read_enable: bool,
    suggest_slave: bool,
    group: &SubscriptionGroup,
) -> u64 {
    if !slave_read_enable {
        MASTER_ID
    } else if suggest_slave {
        group.which_broker_when_consume_slowly
    } else {
        group.broker_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_far_behind_is_sent_to_the_slave_only_with_slave_reads_on() {
        // 10 000 bytes of memory at 40 %: a budget of 4 000 bytes.
        let far = suggest_pulling_from_slave(100_000, Some(90_000), 10_000, 40);
        let near = suggest_pulling_from_slave(100_000, Some(96_000), 10_000, 40);
        assert!(far && !near);
        assert!(!suggest_pulling_from_slave(100_000, None, 10_000, 40));
        assert!(!suggest_pulling_from_slave(
            100_000,
            Some(96_000),
            u64::MAX,
            u32::MAX
        ));
        // At exactly the budget: not yet (RocketMQ: `diff > memory`).
        assert!(!suggest_pulling_from_slave(4_000, Some(0), 10_000, 40));
        assert!(suggest_pulling_from_slave(4_001, Some(0), 10_000, 40));
        let group = SubscriptionGroup {
            broker_id: 2,
            which_broker_when_consume_slowly: 3,
            ..SubscriptionGroup::default()
        };
        assert_eq!(suggest_broker(false, true, &group), MASTER_ID);
        assert_eq!(suggest_broker(false, false, &group), MASTER_ID);
        assert_eq!(suggest_broker(true, true, &group), 3);
        assert_eq!(suggest_broker(true, false, &group), 2);
        let d = SubscriptionGroup::default();
        assert_eq!(
            (
                suggest_broker(true, true, &d),
                suggest_broker(true, false, &d)
            ),
            (1, 0)
        );
    }

    fn req() -> PullRequest<'static> {
        PullRequest {
            topic: "T",
            queue_id: 1,
            queue_offset: 5,
            sys_flag: pull_flag::COMMIT_OFFSET | pull_flag::SUSPEND,
            commit_offset: 4,
            max_msg_nums: 32,
            max_msg_bytes: None,
            suspend_timeout_ms: 15_000,
        }
    }

    const MASTER: PullBroker = PullBroker {
        permission: Perm::READ_WRITE,
        master: true,
        offset_check_in_slave: false,
        long_polling: true,
        short_polling_ms: 1000,
    };

    #[test]
    fn a_pull_is_checked_and_clamped() {
        let t = TopicConfig::new("T", 2);
        let p = plan_pull(&req(), Some(&t), &MASTER, "c").unwrap();
        assert_eq!(
            (p.queue_id, p.offset, p.commit, p.suspend, p.hold_ms),
            (1, 5, Some(4), true, 15_000)
        );
        assert_eq!(p.filter, FilterSource::Group);
        assert!(matches!(
            plan_pull(&req(), None, &MASTER, "c"),
            Err(Refusal::TopicNotExist(_))
        ));
        let r = PullRequest {
            queue_id: 2,
            ..req()
        };
        assert!(matches!(
            plan_pull(&r, Some(&t), &MASTER, "c"),
            Err(Refusal::SystemError(_))
        ));
        let r = PullRequest {
            queue_id: -1,
            ..req()
        };
        assert!(plan_pull(&r, Some(&t), &MASTER, "c").is_err());
        let mut w = t.clone();
        w.perm = Perm(Perm::WRITE);
        assert!(matches!(
            plan_pull(&req(), Some(&w), &MASTER, "c"),
            Err(Refusal::NoPermission(_))
        ));
        let slave = PullBroker {
            master: false,
            ..MASTER
        };
        let p = plan_pull(&req(), Some(&t), &slave, "c").unwrap();
        assert_eq!((p.commit, p.correct), (None, false));
        let r = PullRequest {
            commit_offset: -1,
            max_msg_nums: 1_000_000,
            max_msg_bytes: Some(i32::MAX),
            queue_offset: -7,
            suspend_timeout_ms: i64::MAX,
            ..req()
        };
        let p = plan_pull(&r, Some(&t), &MASTER, "c").unwrap();
        assert_eq!(
            (p.commit, p.max_msgs, p.max_bytes, p.offset, p.hold_ms),
            (None, PULL_MAX_MSGS, PULL_MAX_BYTES, 0, MAX_SUSPEND_MS)
        );
    }

    #[test]
    fn pull_flags_and_byte_limits_are_read_one_by_one() {
        let t = TopicConfig::new("T", 2);
        let plan = |sys_flag, max_msg_bytes| {
            let r = PullRequest {
                sys_flag,
                max_msg_bytes,
                ..req()
            };
            plan_pull(&r, Some(&t), &MASTER, "c").unwrap()
        };
        let p = plan(pull_flag::SUSPEND, None);
        assert!(p.suspend);
        assert_eq!((p.commit, p.filter), (None, FilterSource::Group));
        let p = plan(pull_flag::COMMIT_OFFSET, None);
        assert!(!p.suspend);
        assert_eq!(p.commit, Some(4));
        let p = plan(pull_flag::SUBSCRIPTION, None);
        assert!(!p.suspend);
        assert_eq!(p.filter, FilterSource::Request);
        // RocketMQ's maxTransferBytesOnMessageInMemory: 256 KiB.
        assert_eq!(plan(0, None).max_bytes, 262_144);
        assert_eq!(plan(0, Some(1_000)).max_bytes, 1_000);
        assert_eq!(
            plan(0, Some(0)).max_bytes,
            PULL_MAX_BYTES,
            "0 means no limit asked"
        );
        assert_eq!(plan(0, Some(-1)).max_bytes, PULL_MAX_BYTES);
    }
}
