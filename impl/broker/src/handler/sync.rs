//! What a slave asks its master for every 10 s (`AdminBrokerProcessor`): GET_ALL_CONSUMER_OFFSET
//! and GET_ALL_DELAY_OFFSET. (GET_ALL_TOPIC_CONFIG is answered in `admin`,
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG in `groups`.) The slave's side is
//! `crate::broker::slave_sync`.

use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{self, ConsumerOffsetBody, DelayOffsetBody};
use sextant_remoting::code::response;
use sextant_store::config::load_bytes_in;

use crate::broker::{Answer, Broker, lock, ok, reply};

impl Broker {
    /// GET_ALL_CONSUMER_OFFSET: every committed offset (`ConsumerOffsetSerializeWrapper`).
    pub(crate) fn all_consumer_offsets(&self, req: &RemotingCommand) -> Answer {
        let table = lock(&self.offsets)
            .offset_table
            .iter()
            .map(|(key, queues)| {
                let queues = queues
                    .iter()
                    .map(|(&q, &o)| (i64::from(q), i64::try_from(o).unwrap_or(i64::MAX)))
                    .collect();
                (key.clone(), queues)
            })
            .collect();
        let body = body::encode(&ConsumerOffsetBody {
            offset_table: table,
        });
        Ok(ok(req).with_body(body))
    }

    /// GET_ALL_DELAY_OFFSET: the delay-level cursors (`DelayOffsetSerializeWrapper`) as last
    /// written to `config/delayOffset.json` — at most `flushConsumerOffsetInterval` behind the
    /// delivery (RocketMQ answers from memory; here the cursors live with the delivery job, not
    /// in the broker's state). No file yet: no cursor (`{"offsetTable":{}}`, as RocketMQ's empty
    /// table).
    pub(crate) fn all_delay_offsets(&self, req: &RemotingCommand) -> Answer {
        let path = self.delay_offset_path();
        let cursors = match load_bytes_in(&*self.store.config().fs, &path) {
            Ok(Some(bytes)) => body::decode::<DelayOffsetBody>("delay offsets", &bytes)
                .map_err(|e| reply(response::SYSTEM_ERROR, format!("{}: {e}", path.display())))?,
            Ok(None) => DelayOffsetBody::default(),
            Err(e) => return Err(reply(response::SYSTEM_ERROR, e.to_string())),
        };
        Ok(ok(req).with_body(body::encode(&cursors)))
    }
}
