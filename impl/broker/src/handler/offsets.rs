//! Consumer offsets and queue offsets: QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP (`ConsumerManageProcessor`, `AdminBrokerProcessor`).

use std::sync::atomic::Ordering;

use sextant_model::broker::{self as decide, tables};
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};

use crate::broker::{Answer, Broker, header, lock, ok, queue_id, reply};

impl Broker {
    pub(crate) fn commit(&self, topic: &str, group: &str, qid: u32, offset: u64) {
        let mut offsets = lock(&self.offsets);
        offsets.commit(topic, group, qid, offset);
        // Under the table's lock: the trace orders commits as the table took them.
        self.trace(|| sextant_trace::Event::OffsetStored {
            group: group.to_owned(),
            queue: sextant_trace::Queue {
                topic: topic.to_owned(),
                broker: self.config.broker_name.clone(),
                id: qid,
            },
            offset,
        });
        drop(offsets);
        self.offsets_dirty.store(true, Ordering::Release);
    }

    pub(crate) fn query_offset(&self, req: &RemotingCommand) -> Answer {
        let h: QueryConsumerOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        let (min, _) = self.store.offsets(&h.topic, qid);
        let committed = self.committed_offset(&h.topic, &h.consumer_group, qid);
        let Some(offset) =
            decide::query_offset(committed, min, h.set_zero_if_not_found != Some(false))
        else {
            return Err(reply(
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            ));
        };
        Ok(Self::offset_answer(req, offset))
    }

    pub(crate) fn update_offset(&self, req: &RemotingCommand) -> Answer {
        let h: UpdateConsumerOffsetRequestHeader = header(req)?;
        let (qid, offset) = tables::admit_commit(
            &h.consumer_group,
            self.group_known(&h.consumer_group),
            &h.topic,
            self.topic(&h.topic).as_ref(),
            h.queue_id,
            h.commit_offset,
        )?;
        self.commit(&h.topic, &h.consumer_group, qid, offset);
        Ok(ok(req))
    }

    pub(crate) fn offset_answer(req: &RemotingCommand, offset: u64) -> RemotingCommand {
        ok(req).with_ext(
            OffsetResponseHeader {
                offset: offset as i64,
            }
            .to_ext(),
        )
    }

    pub(crate) fn max_offset(&self, req: &RemotingCommand) -> Answer {
        let h: GetMaxOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        Ok(Self::offset_answer(
            req,
            self.store.offsets(&h.topic, qid).1,
        ))
    }

    pub(crate) fn min_offset(&self, req: &RemotingCommand) -> Answer {
        let h: GetMinOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        Ok(Self::offset_answer(
            req,
            self.store.offsets(&h.topic, qid).0,
        ))
    }

    pub(crate) fn search_offset(&self, req: &RemotingCommand) -> Answer {
        let h: SearchOffsetRequestHeader = header(req)?;
        let qid = queue_id(h.queue_id)?;
        let offset = self
            .store
            .offset_by_time(&h.topic, qid, h.timestamp)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        Ok(Self::offset_answer(req, offset))
    }
}
