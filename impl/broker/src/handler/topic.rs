//! UPDATE_AND_CREATE_TOPIC, validated by `sextant_model::broker::admit::topic_update`.

use sextant_model::broker::admit;
use sextant_remoting::RemotingCommand;
use sextant_remoting::header::CreateTopicRequestHeader;

use crate::broker::{Answer, Broker, header, lock, ok};

impl Broker {
    pub(crate) fn update_topic(&self, req: &RemotingCommand) -> Answer {
        let h: CreateTopicRequestHeader = header(req)?;
        let (exists, count) = {
            let topics = lock(&self.topics);
            (topics.get(&h.topic).is_some(), topics.all().len())
        };
        let config = admit::topic_update(
            &admit::TopicUpdate {
                topic: &h.topic,
                read_queue_nums: h.read_queue_nums,
                write_queue_nums: h.write_queue_nums,
                perm: h.perm,
                topic_sys_flag: h.topic_sys_flag,
                order: h.order,
            },
            &self.config.broker_cluster_name,
            &self.config.broker_name,
            exists,
            count,
            self.config.max_topic_count,
        )?;
        self.create_topic(config)?;
        Ok(ok(req))
    }
}
