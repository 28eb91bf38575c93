//! PULL_MESSAGE with long polling (`PullMessageProcessor`, `PullRequestHoldService`); what a
//! pull may read is `sextant_model::broker::pull::plan_pull`'s decision, which broker its answer
//! suggests next `pull::suggest_broker`'s.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sextant_model::broker::{self as decide, PullCode, TagFilter, pull};
use sextant_model::route::Perm;
use sextant_model::store::BrokerRole;
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::java_hash;
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use sextant_remoting::message::MessageView;
use sextant_store::Get;
use tokio::sync::watch;

use crate::broker::{Answer, Broker, Reply, header, lock, reply};

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
        let config = self.topic(&h.topic);
        let plan = pull::plan_pull(
            &pull::PullRequest {
                topic: &h.topic,
                queue_id: h.queue_id,
                queue_offset: h.queue_offset,
                sys_flag: h.sys_flag,
                commit_offset: h.commit_offset,
                max_msg_nums: h.max_msg_nums,
                max_msg_bytes: h.max_msg_bytes,
                suspend_timeout_ms: h.suspend_timeout_millis,
            },
            config.as_ref(),
            &pull::PullBroker {
                permission: Perm(self.config.broker_permission),
                master: self.settings.role != BrokerRole::Slave,
                offset_check_in_slave: self.config.offset_check_in_slave,
                long_polling: self.config.long_polling_enable,
                short_polling_ms: self.config.short_polling_time_mills,
            },
            req.ext("clientID").unwrap_or_default(),
        )?;
        let group = self.ensure_group(&h.consumer_group)?;
        if !group.consume_enable {
            return Err(reply(
                response::NO_PERMISSION,
                format!("subscription group no permission, {}", h.consumer_group),
            ));
        }
        let qid = plan.queue_id;
        let offset = plan.offset;
        let filter = match plan.filter {
            pull::FilterSource::Request => {
                TagFilter::parse(h.subscription.as_deref().unwrap_or("*"), java_hash)
            }
            pull::FilterSource::Group => lock(&self.groups)
                .group(&h.consumer_group)
                .and_then(|g| g.subscriptions.get(&h.topic))
                .map(|e| TagFilter::parse(e, java_hash))
                .unwrap_or_default(),
        };
        if let Some(commit) = plan.commit {
            self.commit(&h.topic, &h.consumer_group, qid, commit);
        }
        let arrival = plan.suspend.then(|| self.arrival(&h.topic, qid));
        let get = Get {
            topic: &h.topic,
            queue_id: qid,
            offset,
            max_msgs: plan.max_msgs,
            max_bytes: plan.max_bytes,
            correct: plan.correct,
        };
        let read =
            |allow_suspend: bool| -> Result<(PullCode, bool, sextant_store::GetResult), Reply> {
                let r = self
                    .store
                    .get(&get, &|code| filter.matches(code))
                    .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
                let code = decide::pull_code(r.status, offset);
                Ok((code, decide::suspend(code, plan.suspend, allow_suspend), r))
            };
        let (mut code, wait, mut result) = read(true)?;
        if wait && let Some(mut arrival) = arrival {
            let hold = Duration::from_millis(plan.hold_ms);
            // A held pull ends when a message arrives, when it times out, and at once when the
            // broker shuts down (answered with what is there).
            tokio::select! {
                _ = tokio::time::timeout(hold, arrival.wait_for(|max| *max > offset)) => {}
                _ = self.shutdown.cancelled() => {}
            }
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
        // Only with slave reads on does the suggestion depend on how far behind the pull is
        // (and cost a look at the CommitLog's end).
        let slave_read = self.config.slave_read_enable;
        let far_behind = slave_read
            && pull::suggest_pulling_from_slave(
                self.store.log_offsets().1,
                last_physical_offset(&result.records),
                self.physical_memory.load(Ordering::Relaxed),
                self.config.access_message_in_memory_max_ratio,
            );
        let suggested = pull::suggest_broker(slave_read, far_behind, &group);
        let resp_header = PullMessageResponseHeader {
            suggest_which_broker_id: i64::try_from(suggested).unwrap_or(0),
            next_begin_offset: result.next_begin as i64,
            min_offset: result.min as i64,
            max_offset: result.max as i64,
            offset_delta: None,
            topic_sys_flag: Some(config.map_or(0, |c| c.topic_sys_flag) as i32),
            group_sys_flag: Some(0),
            forbidden_type: None,
        };
        let remark = (resp_code != response::SUCCESS).then(|| format!("{:?}", result.status));
        Ok(RemotingCommand::response_to(req, resp_code, remark)
            .with_ext(resp_header.to_ext())
            .with_body(result.records))
    }
}

/// The CommitLog position of the last of `records` (stored records back to back), `None` if
/// there is none or it does not decode.
fn last_physical_offset(records: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    let mut last = None;
    while at < records.len() {
        let size = records.get(at..at.checked_add(4)?)?;
        let size = usize::try_from(i32::from_be_bytes(size.try_into().ok()?)).ok()?;
        if size < 4 {
            return None;
        }
        last = Some(at);
        at = at.checked_add(size)?;
    }
    let (m, _) = MessageView::decode(records.get(last?..)?).ok()?;
    u64::try_from(m.physical_offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(physical_offset: i64, body: &[u8]) -> Vec<u8> {
        let addr = "127.0.0.1:10911".parse().unwrap();
        let m = MessageView {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: addr,
            store_timestamp: 2,
            store_host: addr,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
            body,
            topic: "T",
            properties: "",
        };
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn the_last_records_position_or_none() {
        let mut two = record(1000, b"first");
        two.extend(record(5000, b"second, longer"));
        assert_eq!(last_physical_offset(&two), Some(5000));
        assert_eq!(last_physical_offset(&record(7, b"")), Some(7));
        // A torn tail: nothing is claimed.
        assert_eq!(last_physical_offset(&two[..two.len() - 1]), None);
        assert_eq!(last_physical_offset(&[]), None);
        assert_eq!(last_physical_offset(&[0, 0, 0, 2]), None);
        assert_eq!(last_physical_offset(&[0, 0]), None);
        assert_eq!(last_physical_offset(&[0xff, 0xff, 0xff, 0xff]), None);
    }
}
