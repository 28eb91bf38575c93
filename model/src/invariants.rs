//! The invariants of `shared/docs/design.md` §3, as plain predicates over observable state.
//!
//! The stateright models and the trace checker of `checks/` evaluate these same functions, so a
//! property means one thing everywhere. Each returns `Ok(())` or a [`Violation`] that says what
//! broke. This module starts with the predicates over the model core (routes, selection,
//! allocation); the cluster models add theirs beside them.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer::GroupView;
use crate::namesrv::RouteTable;
use crate::route::{MASTER_ID, MessageQueue, TopicRouteData};

/// A broken invariant: its name (as in design.md) and what was observed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {detail}")]
pub struct Violation {
    /// The invariant's name, e.g. `route_integrity`.
    pub name: &'static str,
    /// What was observed.
    pub detail: String,
}

fn violation(name: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { name, detail })
}

/// `route_integrity`: every broker address a route lists is registered and live in `table`, every
/// queue entry has its broker entry, and id 0 appears only as a key (one master per group).
pub fn route_integrity(table: &RouteTable, route: &TopicRouteData) -> Result<(), Violation> {
    const NAME: &str = "route_integrity";
    for qd in &route.queue_datas {
        if route.broker(&qd.broker_name).is_none() {
            return violation(
                NAME,
                format!("queue data of {} has no broker data", qd.broker_name),
            );
        }
    }
    for b in &route.broker_datas {
        for (id, addr) in &b.broker_addrs {
            if !table.is_live(&b.cluster, addr) {
                return violation(
                    NAME,
                    format!(
                        "{}[{id}] at {addr} is listed but not registered",
                        b.broker_name
                    ),
                );
            }
        }
        let masters = b.broker_addrs.keys().filter(|id| **id == MASTER_ID).count();
        if masters > 1 {
            return violation(NAME, format!("{} lists {masters} masters", b.broker_name));
        }
    }
    Ok(())
}

/// `expiry_bounded`: no route of `table` lists an address whose last contact (`last_seen`) is more
/// than `bound` before `now`.
pub fn expiry_bounded(
    table: &RouteTable,
    last_seen: &BTreeMap<String, u64>,
    bound: u64,
    now: u64,
) -> Result<(), Violation> {
    for topic in table.topics() {
        let Some(route) = table.route(&topic) else {
            continue;
        };
        for b in &route.broker_datas {
            for addr in b.broker_addrs.values() {
                if let Some(seen) = last_seen.get(addr)
                    && now.saturating_sub(*seen) > bound
                {
                    return violation(
                        "expiry_bounded",
                        format!("{addr} silent since {seen} still routed for {topic} at {now}"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// `queue_owned_once` for one view: the members' shares cover each queue of `expected` exactly
/// once and nothing else.
pub fn queue_owned_once(
    view: &GroupView,
    shares: &BTreeMap<String, Vec<MessageQueue>>,
    expected: &BTreeSet<MessageQueue>,
) -> Result<(), Violation> {
    const NAME: &str = "queue_owned_once";
    let mut owner: BTreeMap<&MessageQueue, &str> = BTreeMap::new();
    for (cid, share) in shares {
        if view.index_of(cid).is_none() && !share.is_empty() {
            return violation(NAME, format!("{cid} is not a member but owns {share:?}"));
        }
        for mq in share {
            if let Some(other) = owner.insert(mq, cid) {
                return violation(NAME, format!("{mq:?} owned by {other} and {cid}"));
            }
            if !expected.contains(mq) {
                return violation(
                    NAME,
                    format!("{cid} owns {mq:?}, which is not to be shared"),
                );
            }
        }
    }
    if let Some(orphan) = expected.iter().find(|mq| !owner.contains_key(mq)) {
        return violation(NAME, format!("{orphan:?} has no owner"));
    }
    Ok(())
}
