//! CONSUMER_SEND_MSG_BACK: a message a consumer failed goes to `%RETRY%<group>` with a delay,
//! or to `%DLQ%<group>`, as `sextant_model::broker::admit::plan_send_back` decides.

use std::collections::BTreeMap;

use sextant_model::broker::admit;
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
        // The group must be known (created if the table allows); its retryMaxTimes is the
        // maximum unless the consumer sends one.
        let group = self.ensure_group(&h.group);
        let offset_id = offset_msg_id(m.store_host, m.physical_offset);
        let plan = admit::plan_send_back(
            &admit::SendBackRequest {
                group: &h.group,
                delay_level: h.delay_level,
                max_reconsume_times: h
                    .max_reconsume_times
                    .or(group.as_ref().ok().map(|g| g.retry_max_times)),
                origin_msg_id: h.origin_msg_id.as_deref(),
            },
            &admit::SentBack {
                topic: m.topic,
                reconsume_times: m.reconsume_times,
                retry_topic: m.property(property::RETRY_TOPIC),
                origin_msg_id: m.property(property::ORIGIN_MESSAGE_ID),
                uniq_key: m.property(property::UNIQ_KEY),
                offset_msg_id: &offset_id,
            },
            group.is_ok(),
        )?;
        self.topic_for_send(&plan.topic, 1)?;
        let mut props: BTreeMap<&str, &str> = parse_properties(m.properties);
        if let Some(t) = &plan.retry_topic {
            props.insert(property::RETRY_TOPIC, t);
        }
        if let Some(o) = &plan.origin_msg_id {
            props.insert(property::ORIGIN_MESSAGE_ID, o);
        }
        let delay_s = plan.delay_level.map(|d| d.to_string());
        props.remove(property::DELAY);
        if let Some(d) = &delay_s {
            props.insert(property::DELAY, d);
        }
        let properties = encode_properties(props);
        if plan.dead_letter {
            tracing::info!(group = %h.group, topic = %m.topic, times = m.reconsume_times, "message to the DLQ");
        }
        let put = self.put_messages(vec![NewMessage {
            topic: plan.topic.as_str().into(),
            queue_id: 0,
            flag: m.flag,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: peer.addr,
            reconsume_times: plan.reconsume_times,
            body: m.body,
            properties,
        }])?;
        let code = self.verdict(put.end).await;
        Ok(RemotingCommand::response_to(req, code, None))
    }
}
