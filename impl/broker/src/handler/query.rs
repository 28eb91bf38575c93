//! QUERY_MESSAGE (12): the messages of a topic with a key or a unique key, found through the
//! store's message index (`QueryMessageProcessor.queryMessage`) — what `mqadmin
//! queryMsgByKey`, `queryMsgByUniqueKey` and Sextant's `Admin::query_message` ask.
//!
//! The answer is the stored records back to back, by CommitLog offset: the newest
//! [`query_max_num`] stored within `[beginTimestamp, endTimestamp]`, within 4 MiB. Its header
//! carries the newest index file's end time and offset (`indexLastUpdateTimestamp`,
//! `indexLastUpdatePhyoffset`), also with QUERY_NOT_FOUND ("can not find message, maybe time range
//! not correct"). RocketMQ answers whatever its index names and leaves hash collisions to the
//! client; Sextant answers only the records stored under the topic that have the key (a `KEYS`
//! token or the `UNIQ_KEY`), which every client's own check then passes.

use sextant_remoting::RemotingCommand;
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{QueryMessageRequestHeader, QueryMessageResponseHeader};

use crate::broker::{Answer, Broker, header, ok, reply};

/// The extFields key that marks a query by unique key (`MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub(crate) const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// QUERY_NOT_FOUND's remark.
const NOT_FOUND: &str = "can not find message, maybe time range not correct";

impl Broker {
    /// QUERY_MESSAGE: see the module documentation.
    pub(crate) fn query_message(&self, req: &RemotingCommand) -> Answer {
        let h: QueryMessageRequestHeader = header(req)?;
        let unique = req
            .ext_fields
            .as_ref()
            .and_then(|e| e.get(UNIQUE_KEY_QUERY))
            .is_some_and(|v| v == "true");
        let max = query_max_num(
            h.max_num,
            unique,
            self.config.default_query_max_num,
            self.config.max_msgs_num_batch,
        );
        let found = self
            .store
            .query_message(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let ext = QueryMessageResponseHeader {
            index_last_update_timestamp: found.index_last_update_timestamp,
            index_last_update_phyoffset: found.index_last_update_phy_offset,
        }
        .to_ext();
        if found.count == 0 {
            return Ok(RemotingCommand::response_to(
                req,
                response::QUERY_NOT_FOUND,
                Some(NOT_FOUND.into()),
            )
            .with_ext(ext));
        }
        Ok(ok(req).with_ext(ext).with_body(found.records))
    }
}

/// How many messages a query answers at most: what it asks (`maxNum`), or for a query by
/// unique key `defaultQueryMaxNum` whatever it asks, and never more than `maxMsgsNumBatch`;
/// none for a negative `maxNum`.
pub(crate) fn query_max_num(
    requested: i32,
    unique: bool,
    default_query_max_num: u32,
    max_msgs_num_batch: u32,
) -> usize {
    let asked = if unique {
        i64::from(default_query_max_num)
    } else {
        i64::from(requested)
    };
    usize::try_from(asked.min(i64::from(max_msgs_num_batch))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_num_is_asked_or_the_unique_default_capped_by_the_batch() {
        assert_eq!(query_max_num(10, false, 32, 64), 10);
        assert_eq!(query_max_num(1000, false, 32, 64), 64);
        // By unique key: 32 whatever is asked (mqadmin asks 32, Sextant's client may ask 1).
        assert_eq!(query_max_num(1, true, 32, 64), 32);
        assert_eq!(query_max_num(1000, true, 32, 64), 32);
        assert_eq!(query_max_num(1, true, 100, 64), 64);
        assert_eq!(query_max_num(0, false, 32, 64), 0);
        assert_eq!(query_max_num(-5, false, 32, 64), 0);
    }
}
