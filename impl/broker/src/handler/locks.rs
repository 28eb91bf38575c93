//! LOCK_BATCH_MQ and UNLOCK_BATCH_MQ: orderly consumption's broker locks (`RebalanceLockManager`).

use sextant_model::broker::tables;
use sextant_model::route::MessageQueue;
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{self, LockBatchRequestBody, LockBatchResponseBody, MessageQueueJson};
use sextant_remoting::code::response;

use crate::broker::{Answer, Broker, lock, ok, reply};

impl Broker {
    pub(crate) fn lock_batch(&self, req: &RemotingCommand, unlock: bool) -> Answer {
        let b: LockBatchRequestBody = body::decode("lock batch", &req.body)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let mqs: Vec<MessageQueue> = b.mq_set.iter().map(mq_of).collect();
        let now = self.now();
        if unlock {
            lock(&self.locks).unlock_batch(&b.consumer_group, &mqs, &b.client_id);
            return Ok(ok(req));
        }
        // Only queues that exist, for a group with a live member (`tables::lockable`): the
        // table holds no more than live groups × queues (expired locks are pruned with the
        // channel scan).
        let live = lock(&self.groups).group(&b.consumer_group).is_some();
        let mqs = {
            let topics = lock(&self.topics);
            tables::lockable(&mqs, &self.config.broker_name, live, |t| topics.get(t))
        };
        let granted = lock(&self.locks).try_lock_batch(&b.consumer_group, &mqs, &b.client_id, now);
        let set = b
            .mq_set
            .into_iter()
            .filter(|m| granted.contains(&mq_of(m)))
            .collect();
        Ok(ok(req).with_body(body::encode(&LockBatchResponseBody {
            lock_ok_mq_set: set,
        })))
    }
}

/// The lock batch body's queue as the model's queue.
fn mq_of(m: &MessageQueueJson) -> MessageQueue {
    MessageQueue::new(&m.topic, &m.broker_name, m.queue_id)
}
