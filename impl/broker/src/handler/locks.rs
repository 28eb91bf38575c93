//! LOCK_BATCH_MQ and UNLOCK_BATCH_MQ: orderly consumption's broker locks (`RebalanceLockManager`).

use sextant_model::broker::tables;
use sextant_model::route::MessageQueue;
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{self, LockBatchRequestBody, LockBatchResponseBody, MessageQueueJson};
use sextant_remoting::code::response;
use sextant_trace::{Event, Queue};

use crate::broker::{Answer, Broker, lock, ok, reply};

impl Broker {
    pub(crate) fn lock_batch(&self, req: &RemotingCommand, unlock: bool) -> Answer {
        let b: LockBatchRequestBody = body::decode("lock batch", &req.body)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let mqs: Vec<MessageQueue> = b.mq_set.iter().map(mq_of).collect();
        let now = self.now();
        if unlock {
            let mut locks = lock(&self.locks);
            let held: Vec<&MessageQueue> = mqs
                .iter()
                .filter(|mq| locks.holder(&b.consumer_group, mq, now) == Some(b.client_id.as_str()))
                .collect();
            for mq in held {
                self.trace(|| Event::LockReleased {
                    group: b.consumer_group.clone(),
                    queue: Queue::from(mq),
                    client: b.client_id.clone(),
                });
            }
            locks.unlock_batch(&b.consumer_group, &mqs, &b.client_id);
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
        let granted = {
            let mut locks = lock(&self.locks);
            let granted = locks.try_lock_batch(&b.consumer_group, &mqs, &b.client_id, now);
            // Under the table's lock: the trace orders grants as the table made them.
            for mq in &granted {
                self.trace(|| Event::LockGranted {
                    group: b.consumer_group.clone(),
                    queue: Queue::from(mq),
                    client: b.client_id.clone(),
                    expire_ms: self.config.lock_max_live_time,
                });
            }
            granted
        };
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
