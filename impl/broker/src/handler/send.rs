//! SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE (`SendMessageProcessor`).

use std::borrow::Cow;

use sextant_model::broker::{self as decide, admit};
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use sextant_remoting::message::{self, decode_send_batch, offset_msg_id, property};
use sextant_remoting::transport::Peer;

use crate::broker::{Answer, Broker, NewMessage, header, reply};

impl Broker {
    pub(crate) async fn send(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: SendMessageRequestHeader = match req.code {
            request::SEND_MESSAGE => header(req)?,
            _ => header::<SendMessageRequestHeaderV2>(req)?.into(),
        };
        let batch = req.code == request::SEND_BATCH_MESSAGE || h.batch;
        let props = h.properties.as_deref().unwrap_or("");
        let items = if batch {
            let items = decode_send_batch(&req.body)
                .map_err(|e| reply(response::MESSAGE_ILLEGAL, e.to_string()))?;
            if items.is_empty() {
                return Err(reply(response::MESSAGE_ILLEGAL, "an empty batch"));
            }
            items
        } else {
            Vec::new()
        };
        let prepared = |p: &str| {
            message::property_of(p, property::TRANSACTION_PREPARED).is_some_and(|v| v == "true")
        };
        admit::admit_send(&admit::SendRequest {
            topic: &h.topic,
            sys_flag: h.sys_flag,
            transaction_prepared: prepared(props) || items.iter().any(|i| prepared(i.properties)),
            batch,
            body_len: req.body.len(),
            count: items.len().max(1),
            max_message_size: self.config.max_message_size,
        })?;
        let mut topic_name = h.topic.clone();
        let mut config = self.topic_for_send(&topic_name, h.default_topic_queue_nums)?;
        let mut requested_queue = h.queue_id;
        let reconsume_times = h.reconsume_times.unwrap_or(0);
        // A consumer retrying through a send: past its maximum the message goes to the DLQ.
        if let Some(dlq) =
            admit::retry_redirect(&topic_name, reconsume_times, h.max_reconsume_times)
        {
            topic_name = dlq;
            config = self.topic_for_send(&topic_name, 1)?;
            requested_queue = 0;
        }
        let qid = decide::send_queue(
            self.writeable(),
            &self.config.broker_name,
            &config,
            requested_queue,
            self.next_random(),
        )
        .map_err(|e| match e {
            decide::SendRefused::BadQueue { .. } => {
                reply(response::INVALID_PARAMETER, e.to_string())
            }
            _ => reply(response::NO_PERMISSION, e.to_string()),
        })?;
        let cluster = self.config.broker_cluster_name.as_str();
        let with_cluster = |props: &str| {
            let mut p = props.to_owned();
            if message::property_of(props, property::CLUSTER).is_none() {
                p.push_str(property::CLUSTER);
                p.push('\u{1}');
                p.push_str(cluster);
                p.push('\u{2}');
            }
            p
        };
        let max = self.config.max_message_size;
        let msgs = if batch {
            items
                .into_iter()
                .map(|i| {
                    admit::admit_message(i.body.len(), i.properties.len(), max)
                        .map(|()| (i.flag, i.body, with_cluster(i.properties)))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            admit::admit_message(req.body.len(), props.len(), max)?;
            vec![(h.flag, &req.body[..], with_cluster(props))]
        };
        let new = msgs
            .into_iter()
            .map(|(flag, body, properties)| NewMessage {
                topic: Cow::Borrowed(topic_name.as_str()),
                queue_id: qid,
                flag,
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: peer.addr,
                reconsume_times,
                body,
                properties,
            })
            .collect();
        let put = self.put_messages(new)?;
        let code = self.verdict(put.end).await;
        let first = put.stored[0];
        let msg_id = put
            .stored
            .iter()
            .map(|s| offset_msg_id(self.addr, s.physical_offset as i64))
            .collect::<Vec<_>>()
            .join(",");
        let resp = SendMessageResponseHeader {
            msg_id,
            queue_id: qid as i32,
            queue_offset: first.queue_offset as i64,
            transaction_id: None,
            batch_uniq_id: None,
            msg_region: Some(self.config.region_id.clone()),
            trace_on: Some(self.config.trace_on.to_string()),
        };
        Ok(RemotingCommand::response_to(req, code, None).with_ext(resp.to_ext()))
    }
}
