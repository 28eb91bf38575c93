//! CONSUMER_SEND_MSG_BACK: a message a consumer failed goes to `%RETRY%<group>` with a delay, or to `%DLQ%<group>`.

use std::collections::BTreeMap;

use sextant_model::broker::{self as decide, SendBackTarget};
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::response;
use sextant_remoting::header::ConsumerSendMsgBackRequestHeader;
use sextant_remoting::message::{
    MessageView, encode_properties, offset_msg_id, parse_properties, property,
};
use sextant_remoting::transport::Peer;

use crate::broker::{Answer, Broker, NewMessage, header, reply};

impl Broker {
    pub(crate) async fn send_back(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: ConsumerSendMsgBackRequestHeader = header(req)?;
        if !self.writeable() {
            return Err(reply(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.config.broker_name
                ),
            ));
        }
        let offset = u64::try_from(h.offset).map_err(|_| {
            reply(
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            )
        })?;
        let record = self.store.read_record(offset).map_err(|e| {
            reply(
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}: {e}", h.offset),
            )
        })?;
        let (m, _) = MessageView::decode(&record)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let max = h
            .max_reconsume_times
            .unwrap_or(decide::DEFAULT_MAX_RECONSUME_TIMES);
        let target = decide::send_back_target(m.reconsume_times, max, h.delay_level);
        let (topic, delay) = match target {
            SendBackTarget::Retry { delay_level } => (decide::retry_topic(&h.group), delay_level),
            SendBackTarget::DeadLetter => (decide::dlq_topic(&h.group), 0),
        };
        self.topic_for_send(&topic, 1)?;
        let mut props: BTreeMap<&str, &str> = parse_properties(m.properties);
        if !props.contains_key(property::RETRY_TOPIC) {
            props.insert(property::RETRY_TOPIC, m.topic);
        }
        // The first id the message had: kept across retries; else what the consumer names, its
        // client-side unique key, or its offset id (`MessageExt.getMsgId`).
        let origin = h
            .origin_msg_id
            .clone()
            .filter(|o| !o.is_empty())
            .or_else(|| m.property(property::UNIQ_KEY).map(str::to_owned))
            .unwrap_or_else(|| offset_msg_id(m.store_host, m.physical_offset));
        if !props.contains_key(property::ORIGIN_MESSAGE_ID) {
            props.insert(property::ORIGIN_MESSAGE_ID, &origin);
        }
        let delay_s = delay.to_string();
        props.remove(property::DELAY);
        if delay > 0 {
            props.insert(property::DELAY, &delay_s);
        }
        let properties = encode_properties(props);
        if target == SendBackTarget::DeadLetter {
            tracing::info!(group = %h.group, topic = %m.topic, times = m.reconsume_times, "message to the DLQ");
        }
        let put = self.put_messages(vec![NewMessage {
            topic: topic.into(),
            queue_id: 0,
            flag: m.flag,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: peer.addr,
            reconsume_times: m.reconsume_times + 1,
            body: m.body,
            properties,
        }])?;
        let code = self.verdict(put.end).await;
        Ok(RemotingCommand::response_to(req, code, None))
    }
}
