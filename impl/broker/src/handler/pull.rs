//! PULL_MESSAGE with long polling (`PullMessageProcessor`, `PullRequestHoldService`).

use std::time::Duration;

use sextant_model::Millis;
use sextant_model::broker::{self as decide, PullCode, TagFilter};
use sextant_model::route::Perm;
use sextant_model::store::BrokerRole;
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::java_hash;
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use sextant_store::Get;
use tokio::sync::watch;

use crate::broker::{Answer, Broker, Reply, header, lock, queue_id, reply};

/// Pull `sysFlag` bits (`PullSysFlag`).
mod pull_flag {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x2;
    pub const SUBSCRIPTION: i32 = 0x4;
}

/// The most messages one pull returns, and about the most bytes
/// (`maxTransferCountOnMessageInMemory` / `maxTransferBytesOnMessageInMemory`, raised for count).
const PULL_MAX_MSGS: usize = 1024;
const PULL_MAX_BYTES: usize = 256 * 1024;
/// The longest a pull is held, whatever the client asks (ms).
const MAX_SUSPEND_MS: Millis = 300_000;

impl Broker {
    pub(crate) fn arrival(&self, topic: &str, qid: u32) -> watch::Receiver<u64> {
        let mut arrivals = lock(&self.arrivals);
        arrivals
            .entry(topic.to_owned())
            .or_default()
            .entry(qid)
            .or_insert_with(|| watch::channel(self.store.offsets(topic, qid).1).0)
            .subscribe()
    }

    pub(crate) async fn pull(&self, req: &RemotingCommand) -> Answer {
        let h: PullMessageRequestHeader = header(req)?;
        let Some(config) = self.topic(&h.topic) else {
            return Err(reply(
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            ));
        };
        if !config.perm.is_readable() || !Perm(self.config.broker_permission).is_readable() {
            return Err(reply(
                response::NO_PERMISSION,
                format!("the topic[{}] pulling message is forbidden", h.topic),
            ));
        }
        let qid = queue_id(h.queue_id)?;
        if qid >= config.read_queue_nums {
            return Err(reply(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    h.queue_id,
                    h.topic,
                    config.read_queue_nums,
                    req.ext("clientID").unwrap_or_default()
                ),
            ));
        }
        let offset = u64::try_from(h.queue_offset).unwrap_or(0);
        let filter = if h.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            TagFilter::parse(h.subscription.as_deref().unwrap_or("*"), java_hash)
        } else {
            lock(&self.groups)
                .group(&h.consumer_group)
                .and_then(|g| g.subscriptions.get(&h.topic))
                .map(|e| TagFilter::parse(e, java_hash))
                .unwrap_or_default()
        };
        let master = self.settings.role != BrokerRole::Slave;
        if h.sys_flag & pull_flag::COMMIT_OFFSET != 0 && master && h.commit_offset >= 0 {
            self.commit(&h.topic, &h.consumer_group, qid, h.commit_offset as u64);
        }
        let suspend = h.sys_flag & pull_flag::SUSPEND != 0;
        let arrival = suspend.then(|| self.arrival(&h.topic, qid));
        let max_msgs = usize::try_from(h.max_msg_nums)
            .unwrap_or(0)
            .clamp(1, PULL_MAX_MSGS);
        let max_bytes = h
            .max_msg_bytes
            .and_then(|b| usize::try_from(b).ok())
            .filter(|b| *b > 0)
            .unwrap_or(PULL_MAX_BYTES)
            .min(PULL_MAX_BYTES);
        let get = Get {
            topic: &h.topic,
            queue_id: qid,
            offset,
            max_msgs,
            max_bytes,
            correct: master || self.config.offset_check_in_slave,
        };
        let read =
            |allow_suspend: bool| -> Result<(PullCode, bool, sextant_store::GetResult), Reply> {
                let r = self
                    .store
                    .get(&get, &|code| filter.matches(code))
                    .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
                let code = decide::pull_code(r.status, offset);
                Ok((code, decide::suspend(code, suspend, allow_suspend), r))
            };
        let (mut code, wait, mut result) = read(true)?;
        if wait && let Some(mut arrival) = arrival {
            let hold = Duration::from_millis(decide::hold_time(
                self.config.long_polling_enable,
                h.suspend_timeout_millis,
                self.config.short_polling_time_mills,
                MAX_SUSPEND_MS,
            ));
            let _ = tokio::time::timeout(hold, arrival.wait_for(|max| *max > offset)).await;
            (code, _, result) = read(false)?;
        }
        self.stats.pulled(if code == PullCode::Found {
            result.count as u64
        } else {
            0
        });
        let resp_code = match code {
            PullCode::Found => response::SUCCESS,
            PullCode::NoNewMessage => response::PULL_NOT_FOUND,
            PullCode::RetryImmediately => response::PULL_RETRY_IMMEDIATELY,
            PullCode::OffsetMoved => response::PULL_OFFSET_MOVED,
        };
        let resp_header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: result.next_begin as i64,
            min_offset: result.min as i64,
            max_offset: result.max as i64,
            offset_delta: None,
            topic_sys_flag: Some(config.topic_sys_flag as i32),
            group_sys_flag: Some(0),
            forbidden_type: None,
        };
        let remark = (resp_code != response::SUCCESS).then(|| format!("{:?}", result.status));
        Ok(RemotingCommand::response_to(req, resp_code, remark)
            .with_ext(resp_header.to_ext())
            .with_body(result.records))
    }
}
