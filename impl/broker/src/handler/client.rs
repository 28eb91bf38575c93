//! Clients: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, NOTIFY_CONSUMER_IDS_CHANGED, closed and expired channels (`ClientManageProcessor`, `ConsumerManager`).

use std::net::SocketAddr;

use sextant_model::broker::{self as decide};
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{self, ConsumerListBody, HeartbeatData};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{ConsumerGroupHeader, UnregisterClientRequestHeader};
use sextant_remoting::transport::Peer;

use crate::broker::{Answer, Broker, header, lock, ok, reply};

impl Broker {
    /// A client's heartbeat: each consumer group it names joins the subscription group table
    /// (as `findSubscriptionGroupConfig` creates it, up to the cap), gets its retry topic, and
    /// the connection becomes a member. A group the table refuses is not joined, and the answer
    /// says which (SUBSCRIPTION_GROUP_NOT_EXIST) after the others are registered.
    pub(crate) async fn heartbeat(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let mut hb: HeartbeatData = body::decode("heartbeat", &req.body)
            .map_err(|e| reply(response::SYSTEM_ERROR, e.to_string()))?;
        let mut refused = Vec::new();
        hb.consumer_data_set.retain(|c| {
            if c.group_name.is_empty() {
                return false;
            }
            match self.ensure_group(&c.group_name) {
                Ok(_) => true,
                Err(r) => {
                    refused.push(r);
                    false
                }
            }
        });
        lock(&self.peers).insert(peer.addr, peer.clone());
        lock(&self.clients).heartbeat(peer.addr, req.language, req.version, &hb);
        let now = self.now();
        let addr = peer.addr.to_string();
        let mut changed = Vec::new();
        for c in &hb.consumer_data_set {
            let retry = decide::retry_topic(&c.group_name);
            if let Err(crate::broker::Reply(_, why)) = self.topic_for_send(&retry, 1) {
                tracing::warn!(group = %c.group_name, %why, "retry topic not created");
            }
            let subs = c
                .subscription_data_set
                .iter()
                .map(|s| (s.topic.clone(), s.sub_string.clone()))
                .collect();
            if lock(&self.groups).register(&c.group_name, &addr, &hb.client_id, subs, now) {
                tracing::info!(group = %c.group_name, client = %hb.client_id, %addr, "consumer joined");
                changed.push(c.group_name.clone());
            }
        }
        for g in changed {
            self.notify_group(&g).await;
        }
        match refused.into_iter().next() {
            Some(r) => Err(r),
            None => Ok(ok(req)),
        }
    }

    /// Tell every client of `group` that its membership changed (NOTIFY_CONSUMER_IDS_CHANGED).
    pub(crate) async fn notify_group(&self, group: &str) {
        let targets: Vec<Peer> = {
            let channels = lock(&self.groups).channels(group);
            let peers = lock(&self.peers);
            channels
                .iter()
                .filter_map(|a| a.parse::<SocketAddr>().ok())
                .filter_map(|a| peers.get(&a).cloned())
                .collect()
        };
        let ext = ConsumerGroupHeader {
            consumer_group: group.to_owned(),
        }
        .to_ext();
        for p in targets {
            let cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0)
                .with_ext(ext.clone());
            // Never waits for a client that is not reading: the notification is dropped.
            if let Err(e) = p.send_oneway(cmd) {
                tracing::debug!(client = %p.addr, error = %e, "notification not sent");
            }
        }
    }

    pub(crate) async fn unregister_client(&self, peer: &Peer, req: &RemotingCommand) -> Answer {
        let h: UnregisterClientRequestHeader = header(req)?;
        if let Some(g) = h.consumer_group.filter(|g| !g.is_empty())
            && lock(&self.groups).unregister(&g, &peer.addr.to_string())
        {
            tracing::info!(group = %g, client = %h.client_id, "consumer left");
            self.notify_group(&g).await;
        }
        Ok(ok(req))
    }

    pub(crate) fn consumer_list(&self, req: &RemotingCommand) -> Answer {
        let h: ConsumerGroupHeader = header(req)?;
        let ids = lock(&self.groups).client_ids(&h.consumer_group);
        if ids.is_empty() {
            return Err(reply(
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            ));
        }
        Ok(ok(req).with_body(body::encode(&ConsumerListBody {
            consumer_id_list: ids,
        })))
    }

    /// A connection closed: its consumers leave their groups.
    pub(crate) async fn closed(&self, peer: &Peer) {
        lock(&self.peers).remove(&peer.addr);
        lock(&self.clients).closed(&peer.addr);
        let groups = lock(&self.groups).channel_closed(&peer.addr.to_string());
        for g in groups {
            tracing::info!(group = %g, addr = %peer.addr, "consumer channel closed");
            self.notify_group(&g).await;
        }
    }

    /// Drop client channels silent past the expiry and tell their groups; drop expired queue
    /// locks.
    pub async fn scan_channels(&self) {
        let now = self.now();
        let pruned = lock(&self.locks).prune(now);
        if pruned > 0 {
            tracing::debug!(pruned, "expired queue locks dropped");
        }
        let gone = lock(&self.groups).scan_expired(now);
        let mut changed: Vec<String> = gone.into_iter().map(|(g, _)| g).collect();
        changed.dedup();
        for g in changed {
            tracing::info!(group = %g, "consumer channel expired");
            self.notify_group(&g).await;
        }
    }
}
