//! The subscription group table (`AdminBrokerProcessor`): UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG, DELETE_SUBSCRIPTIONGROUP. What the table holds and its cap
//! are `sextant_model::broker::tables::SubscriptionGroups`'s.

use std::sync::atomic::Ordering;

use sextant_remoting::RemotingCommand;
use sextant_remoting::code::response;
use sextant_remoting::header::DeleteSubscriptionGroupRequestHeader;

use crate::broker::{Answer, Broker, header, lock, ok, reply, wall_ms};
use crate::groups::decode_group;

impl Broker {
    /// Create or change a group from its `SubscriptionGroupConfig` body.
    pub(crate) fn update_group(&self, req: &RemotingCommand) -> Answer {
        let (name, config) =
            decode_group(&req.body).map_err(|e| reply(response::SYSTEM_ERROR, e))?;
        let mut file = lock(&self.subscriptions);
        file.table.put(&name, config)?;
        file.changed(wall_ms());
        tracing::info!(group = %name, "subscription group updated");
        Ok(ok(req))
    }

    /// The whole table (`SubscriptionGroupWrapper`).
    pub(crate) fn all_groups(&self, req: &RemotingCommand) -> Answer {
        Ok(ok(req).with_body(lock(&self.subscriptions).encode()))
    }

    /// Forget a group (and, with `cleanOffset`, its consumer offsets).
    pub(crate) fn delete_group(&self, req: &RemotingCommand) -> Answer {
        let h: DeleteSubscriptionGroupRequestHeader = header(req)?;
        {
            let mut file = lock(&self.subscriptions);
            if file.table.remove(&h.group_name) {
                file.changed(wall_ms());
            }
        }
        if h.clean_offset {
            // Keys are `topic@group`; neither name may hold '@'.
            lock(&self.offsets)
                .offset_table
                .retain(|k, _| k.split_once('@').map(|(_, g)| g) != Some(h.group_name.as_str()));
            self.offsets_dirty.store(true, Ordering::Release);
        }
        tracing::info!(group = %h.group_name, clean_offset = h.clean_offset, "subscription group deleted");
        Ok(ok(req))
    }
}
