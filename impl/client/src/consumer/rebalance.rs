//! The share of a topic's queues this member takes (`RebalanceImpl.rebalanceByTopic`), shared
//! by the push and the lite pull consumer: the route's readable queues and the group's members,
//! handed to the model's [`GroupView`] and allocation strategy.

use sextant_model::consumer::{AllocateStrategy, GroupView};
use sextant_model::route::MessageQueue;
use sextant_trace::Event;

use crate::consumer::MessageModel;
use crate::instance::ClientInstance;

/// This member's share of `topic`, or `None` to leave the topic as it is this round (no route
/// yet, no member list, or the strategy refused). `unsorted` breaks it on purpose (tests only):
/// the member list is not sorted first.
pub(crate) async fn share(
    instance: &ClientInstance,
    group: &str,
    model: MessageModel,
    strategy: &dyn AllocateStrategy,
    topic: &str,
    unsorted: bool,
) -> Option<Vec<MessageQueue>> {
    let route = match instance.route(topic) {
        Some(r) => r,
        None => match instance.update_route(topic).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::debug!(topic, "no route to rebalance");
                return None;
            }
            Err(e) => {
                tracing::debug!(topic, error = %e, "no route to rebalance");
                return None;
            }
        },
    };
    let queues = route.subscribe_queues(topic);
    if model == MessageModel::Broadcasting {
        return Some(queues);
    }
    let timeout = instance.config().mq_client_api_timeout;
    // Any broker of the topic knows the group (every member heartbeats every broker); ask them
    // in turn until one answers.
    let mut members = None;
    let n = route.broker_datas.len();
    let start = (instance.now() as usize) % n.max(1);
    for i in 0..n {
        let b = &route.broker_datas[(start + i) % n];
        let Some(addr) = b.select_broker_addr(instance.now() as u32) else {
            continue;
        };
        match instance.peer(addr).await {
            Ok(p) => match p.consumer_list(group, timeout).await {
                Ok(list) => {
                    members = Some(list);
                    break;
                }
                Err(e) => tracing::debug!(%addr, group, error = %e, "no member list"),
            },
            Err(e) => tracing::debug!(%addr, error = %e, "broker unreachable"),
        }
    }
    let members = members.filter(|m| !m.is_empty())?;
    let view = if unsorted {
        // The test-only broken client: the member list as the broker gave it, itself first.
        let me = instance.client_id();
        let mut ms: Vec<String> = members.into_iter().filter(|m| m != me).collect();
        ms.insert(0, me.to_owned());
        GroupView::in_given_order(queues, ms)
    } else {
        GroupView::new(queues, members)
    };
    match strategy.allocate(&view, instance.client_id()) {
        Ok(share) => {
            instance.inner.tracer.emit(|| Event::Rebalance {
                group: group.to_owned(),
                topic: topic.to_owned(),
                strategy: strategy.name(),
                members: view.consumers().to_vec(),
                queues: sextant_trace::queues(view.queues()),
                allocated: sextant_trace::queues(&share),
            });
            Some(share)
        }
        Err(e) => {
            tracing::debug!(topic, group, error = %e, "allocation refused");
            None
        }
    }
}
