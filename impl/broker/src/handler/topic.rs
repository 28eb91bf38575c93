//! UPDATE_AND_CREATE_TOPIC.

use sextant_model::broker::{self as decide};
use sextant_model::namesrv::TopicConfig;
use sextant_model::route::Perm;
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::response;
use sextant_remoting::header::CreateTopicRequestHeader;

use crate::broker::{Answer, Broker, header, ok, reply};

impl Broker {
    pub(crate) fn update_topic(&self, req: &RemotingCommand) -> Answer {
        let h: CreateTopicRequestHeader = header(req)?;
        if let Some(why) = decide::invalid_topic(&h.topic) {
            return Err(reply(response::SYSTEM_ERROR, why));
        }
        let nums = |n: i32, what: &str| {
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    reply(
                        response::INVALID_PARAMETER,
                        format!("{what} {n} is not 1..=1024"),
                    )
                })
        };
        let config = TopicConfig {
            topic_name: h.topic.clone(),
            read_queue_nums: nums(h.read_queue_nums, "readQueueNums")?,
            write_queue_nums: nums(h.write_queue_nums, "writeQueueNums")?,
            perm: Perm(
                u32::try_from(h.perm).unwrap_or(0) & (Perm::READ | Perm::WRITE | Perm::INHERIT),
            ),
            topic_sys_flag: u32::try_from(h.topic_sys_flag).unwrap_or(0),
            order: h.order,
        };
        self.create_topic(config)?;
        Ok(ok(req))
    }
}
