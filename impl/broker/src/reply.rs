//! Answer helpers shared by the handlers: the error answer, header decoding, the lock policy.

use std::sync::{Mutex, MutexGuard};

use sextant_model::broker::Refusal;
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::{ExtFields, RemotingCommand};

/// Lock `m`; a panic that poisoned it does not take the broker down (the data under a broker
/// lock is consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error answer: a response code and its remark.
pub(crate) struct Reply(pub(crate) i32, pub(crate) String);

pub(crate) type Answer = Result<RemotingCommand, Reply>;

pub(crate) fn reply(code: i32, remark: impl Into<String>) -> Reply {
    Reply(code, remark.into())
}

pub(crate) fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, Reply> {
    let empty = ExtFields::new();
    H::from_ext(req.ext_fields.as_ref().unwrap_or(&empty))
        .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))
}

pub(crate) fn queue_id(q: i32) -> Result<u32, Reply> {
    u32::try_from(q).map_err(|_| reply(response::SYSTEM_ERROR, format!("queueId[{q}] is illegal")))
}

pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

/// A model refusal answered with RocketMQ's response code for it.
impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Reply {
        let code = match &r {
            Refusal::InvalidParameter(_) => response::INVALID_PARAMETER,
            Refusal::NoPermission(_) => response::NO_PERMISSION,
            Refusal::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
            Refusal::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
            Refusal::SubscriptionGroupNotExist(_) => response::SUBSCRIPTION_GROUP_NOT_EXIST,
            Refusal::ServiceNotAvailable(_) => response::SERVICE_NOT_AVAILABLE,
            Refusal::SystemError(_) => response::SYSTEM_ERROR,
        };
        Reply(code, r.to_string())
    }
}
