//! The invariants of `shared/docs/design.md` §3, as plain predicates over observable state.
//!
//! The stateright models and the trace checker of `checks/` evaluate these same functions, so a
//! property means one thing everywhere. Each returns `Ok(())` or a [`Violation`] that says what
//! broke. This module starts with the predicates over the model core (routes, selection,
//! allocation); the cluster models add theirs beside them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::consumer::GroupView;
use crate::namesrv::RouteTable;
use crate::producer::TopicPublishInfo;
use crate::route::{MessageQueue, TopicRouteData};

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

/// `route_integrity`: every broker address a route lists is registered and live in `table`, and
/// every queue entry has its broker entry. (That a group has at most one master, id
/// [`crate::route::MASTER_ID`], holds by construction: addresses are keyed by id.)
pub fn route_integrity(table: &RouteTable, route: &TopicRouteData) -> Result<(), Violation> {
    route_integrity_with(route, |cluster, addr| table.is_live(cluster, addr))
}

/// [`route_integrity`] against any view of liveness: `is_live(cluster, addr)` says whether the
/// NameServer has that broker registered and unexpired (the trace checker's view, rebuilt from
/// what the NameServer recorded).
pub fn route_integrity_with(
    route: &TopicRouteData,
    is_live: impl Fn(&str, &str) -> bool,
) -> Result<(), Violation> {
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
            if !is_live(&b.cluster, addr) {
                return violation(
                    NAME,
                    format!(
                        "{}[{id}] at {addr} is listed but not registered",
                        b.broker_name
                    ),
                );
            }
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
        route_expiry_bounded(&topic, &route, last_seen, bound, now)?;
    }
    Ok(())
}

/// [`expiry_bounded`] for one route `topic`'s NameServer answered at `now`.
pub fn route_expiry_bounded(
    topic: &str,
    route: &TopicRouteData,
    last_seen: &BTreeMap<String, u64>,
    bound: u64,
    now: u64,
) -> Result<(), Violation> {
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
    Ok(())
}

/// `no_send_to_expired_broker` for one attempt: it targets a broker group with write queues in
/// `held`, the publish info the producer chose from, and a retry (`retry_after`: the group
/// the previous attempt went to) does not target that group again while `held` has another.
pub fn no_send_to_expired_broker(
    held: &TopicPublishInfo,
    target: &str,
    retry_after: Option<&str>,
) -> Result<(), Violation> {
    const NAME: &str = "no_send_to_expired_broker";
    if held.write_queue_nums(target) == 0 {
        return violation(
            NAME,
            format!("sent to {target}, which the route held lacks"),
        );
    }
    if retry_after == Some(target) && held.brokers().any(|b| b != target) {
        return violation(
            NAME,
            format!("retried {target}, which just failed, while another broker was writable"),
        );
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
    queue_owned_once_by(
        |cid: &String| view.index_of(cid).is_some(),
        shares,
        expected,
    )
}

/// [`queue_owned_once`] over any ids of consumers and queues (the model checker's indices):
/// `is_member` says who is in the view.
pub fn queue_owned_once_by<C: Ord + fmt::Display, Q: Ord + fmt::Debug>(
    is_member: impl Fn(&C) -> bool,
    shares: &BTreeMap<C, Vec<Q>>,
    expected: &BTreeSet<Q>,
) -> Result<(), Violation> {
    const NAME: &str = "queue_owned_once";
    let mut owner: BTreeMap<&Q, &C> = BTreeMap::new();
    for (cid, share) in shares {
        if !is_member(cid) && !share.is_empty() {
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

/// `acked_not_lost`: every acknowledged message (`acked`, any ids) is in `readable`, the log
/// consumers read now (the master's, or its slave's while the master is down). `None` means no
/// copy is up: nothing can be read, and nothing is judged until one comes back.
pub fn acked_not_lost<T: Ord + fmt::Debug, L: Readable<T> + ?Sized>(
    acked: &BTreeSet<T>,
    readable: Option<&L>,
) -> Result<(), Violation> {
    let Some(log) = readable else {
        return Ok(());
    };
    match acked.iter().find(|m| !log.holds(m)) {
        Some(m) => violation(
            "acked_not_lost",
            format!(
                "{m:?} was acknowledged but the readable log is {}",
                log.summary()
            ),
        ),
        None => Ok(()),
    }
}

/// What [`acked_not_lost`] reads messages from: a log (the models' small slices) or a set (the
/// trace checker's thousands of consumed ids).
pub trait Readable<T> {
    /// Whether `m` can be read.
    fn holds(&self, m: &T) -> bool;
    /// What a violation shows of it.
    fn summary(&self) -> String;
}

impl<T: PartialEq + fmt::Debug> Readable<T> for [T] {
    fn holds(&self, m: &T) -> bool {
        self.contains(m)
    }
    fn summary(&self) -> String {
        format!("{self:?}")
    }
}

impl<T: PartialEq + fmt::Debug> Readable<T> for Vec<T> {
    fn holds(&self, m: &T) -> bool {
        self.contains(m)
    }
    fn summary(&self) -> String {
        format!("{self:?}")
    }
}

impl<T: Ord> Readable<T> for BTreeSet<T> {
    fn holds(&self, m: &T) -> bool {
        self.contains(m)
    }
    fn summary(&self) -> String {
        format!("{} messages", self.len())
    }
}

/// `offset_not_past_unconsumed`: a committed consumer offset never passes a message nobody has
/// consumed. `first_unconsumed` is the lowest such offset (or the queue's max offset when all were
/// consumed).
pub fn offset_not_past_unconsumed(committed: u64, first_unconsumed: u64) -> Result<(), Violation> {
    if committed > first_unconsumed {
        return violation(
            "offset_not_past_unconsumed",
            format!("offset {committed} committed while offset {first_unconsumed} is unconsumed"),
        );
    }
    Ok(())
}

/// `ack_after_durable` for one answered put: a SUCCESS only once the flush and replication
/// modes have what they require — `store::put_verdict` is `Ok` on the `progress` the broker had
/// when it answered (SYNC_FLUSH: flushed past the put; SYNC_MASTER: a slave in sync has it).
pub fn ack_after_durable(
    flush: crate::store::FlushDiskType,
    role: crate::store::BrokerRole,
    progress: crate::store::PutProgress,
    acknowledged: bool,
) -> Result<(), Violation> {
    let verdict = crate::store::put_verdict(flush, role, progress);
    if acknowledged && verdict != crate::store::PutVerdict::Ok {
        return violation(
            "ack_after_durable",
            format!(
                "a put ending at {} acknowledged with the log flushed to {} and a slave at {:?} \
                 ({} {}: {verdict:?})",
                progress.end,
                progress.flushed,
                progress.slave_acked,
                flush.name(),
                role.name()
            ),
        );
    }
    Ok(())
}

/// `ordered_lock_exclusive` for one step of orderly consumption: `actor` consumes (or is
/// granted) a queue whose broker lock is held, live, by `holder` (`None`: nobody holds it live).
/// No other consumer may hold it: two consumers of one queue at once break its order.
pub fn ordered_lock_exclusive(
    actor: &str,
    queue: &str,
    holder: Option<&str>,
) -> Result<(), Violation> {
    match holder {
        Some(h) if h != actor => violation(
            "ordered_lock_exclusive",
            format!("{actor} consumes {queue} while {h} holds its lock"),
        ),
        _ => Ok(()),
    }
}

/// `offsets_monotonic`: a commit never moves a queue's committed offset backward.
pub fn offsets_monotonic(before: Option<u64>, after: Option<u64>) -> Result<(), Violation> {
    match (before, after) {
        (Some(b), Some(a)) if a < b => violation(
            "offsets_monotonic",
            format!("committed offset moved back from {b} to {a}"),
        ),
        (Some(b), None) => violation(
            "offsets_monotonic",
            format!("committed offset {b} was forgotten"),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::{Averagely, GroupView};
    use crate::namesrv::{BrokerRegistration, TopicConfig};
    use crate::route::QueueData;

    fn table() -> RouteTable {
        let mut t = RouteTable::default();
        let reg = BrokerRegistration::new("C", "a", 0, "m:1")
            .with_topics([TopicConfig::new("T", 2), TopicConfig::new("U", 1)]);
        t.register(&reg, 0).unwrap();
        t
    }

    #[test]
    fn route_integrity_flags_unregistered_and_orphan_entries() {
        let t = table();
        let mut route = t.route("T").unwrap();
        assert_eq!(route_integrity(&t, &route), Ok(()));
        route.broker_datas[0]
            .broker_addrs
            .insert(1, "ghost:1".into());
        assert_eq!(
            route_integrity(&t, &route).unwrap_err().name,
            "route_integrity"
        );
        let mut orphan = t.route("T").unwrap();
        orphan.queue_datas.push(QueueData {
            broker_name: "nowhere".into(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: Default::default(),
            topic_sys_flag: 0,
        });
        assert!(route_integrity(&t, &orphan).is_err());
    }

    #[test]
    fn expiry_bounded_flags_a_silent_broker() {
        let t = table();
        let seen = BTreeMap::from([("m:1".to_string(), 0)]);
        assert_eq!(expiry_bounded(&t, &seen, 125_000, 125_000), Ok(()));
        assert_eq!(
            expiry_bounded(&t, &seen, 125_000, 125_001)
                .unwrap_err()
                .name,
            "expiry_bounded"
        );
    }

    #[test]
    fn queue_owned_once_flags_double_owner_orphan_and_outsider() {
        let qs: Vec<_> = (0..4).map(|i| MessageQueue::new("T", "a", i)).collect();
        let view = GroupView::new(qs.clone(), ["c0", "c1"]);
        let all: BTreeSet<_> = qs.iter().cloned().collect();
        let mut shares = view.allocate_all(&Averagely).unwrap();
        assert_eq!(queue_owned_once(&view, &shares, &all), Ok(()));
        shares.get_mut("c1").unwrap().push(qs[0].clone());
        assert!(
            queue_owned_once(&view, &shares, &all)
                .unwrap_err()
                .detail
                .contains("owned by")
        );
        let mut partial = view.allocate_all(&Averagely).unwrap();
        partial.get_mut("c1").unwrap().pop();
        assert!(
            queue_owned_once(&view, &partial, &all)
                .unwrap_err()
                .detail
                .contains("no owner")
        );
        let mut outsider = view.allocate_all(&Averagely).unwrap();
        outsider.insert("zz".into(), vec![qs[0].clone()]);
        assert!(
            queue_owned_once(&view, &outsider, &all)
                .unwrap_err()
                .detail
                .contains("not a member")
        );
    }

    #[test]
    fn acked_not_lost_flags_a_missing_ack() {
        let acked = BTreeSet::from([1, 2]);
        assert_eq!(acked_not_lost(&acked, Some(&[1, 2, 3][..])), Ok(()));
        assert_eq!(acked_not_lost(&acked, None::<&[i32]>), Ok(()));
        let err = acked_not_lost(&acked, Some(&[1][..])).unwrap_err();
        assert_eq!(err.name, "acked_not_lost");
        assert!(err.detail.contains('2'), "{err}");
    }

    #[test]
    fn no_send_to_expired_broker_needs_the_target_in_the_route_held_and_a_retry_elsewhere() {
        let mut t = table();
        let b = BrokerRegistration::new("C", "b", 0, "n:1")
            .with_topics([TopicConfig::new("T", 2), TopicConfig::new("V", 1)]);
        t.register(&b, 0).unwrap();
        let both = TopicPublishInfo::from_route("T", &t.route("T").unwrap());
        let alone = TopicPublishInfo::from_route("U", &t.route("U").unwrap());
        assert_eq!(no_send_to_expired_broker(&both, "a", None), Ok(()));
        assert_eq!(no_send_to_expired_broker(&both, "b", Some("a")), Ok(()));
        // The only writable broker may be retried: there is nowhere else to go.
        assert_eq!(no_send_to_expired_broker(&alone, "a", Some("a")), Ok(()));
        let gone = no_send_to_expired_broker(&alone, "b", None).unwrap_err();
        assert_eq!(gone.name, "no_send_to_expired_broker");
        assert!(gone.detail.contains("lacks"), "{gone}");
        let again = no_send_to_expired_broker(&both, "a", Some("a")).unwrap_err();
        assert_eq!(again.name, "no_send_to_expired_broker");
        assert!(again.detail.contains("just failed"), "{again}");
    }

    #[test]
    fn ack_after_durable_flags_a_success_before_the_modes_allow_it() {
        use crate::store::{BrokerRole, FlushDiskType, PutProgress};
        let at = |flushed, slave_acked| PutProgress {
            end: 10,
            flushed,
            slave_acked,
            timed_out: false,
        };
        let (sync, not) = (FlushDiskType::SyncFlush, FlushDiskType::AsyncFlush);
        let (sm, am) = (BrokerRole::SyncMaster, BrokerRole::AsyncMaster);
        assert_eq!(ack_after_durable(sync, am, at(10, None), true), Ok(()));
        assert_eq!(ack_after_durable(not, sm, at(0, Some(10)), true), Ok(()));
        // A put not acknowledged (still waiting, or answered with an error) promises nothing.
        assert_eq!(ack_after_durable(sync, am, at(9, None), false), Ok(()));
        let early = ack_after_durable(sync, am, at(9, None), true).unwrap_err();
        assert_eq!(early.name, "ack_after_durable");
        assert!(early.detail.contains("flushed to 9"), "{early}");
        assert!(ack_after_durable(not, sm, at(10, Some(9)), true).is_err());
        assert!(ack_after_durable(not, sm, at(10, None), true).is_err());
    }

    #[test]
    fn ordered_lock_exclusive_flags_only_another_holder() {
        assert_eq!(ordered_lock_exclusive("c1", "q", None), Ok(()));
        assert_eq!(ordered_lock_exclusive("c1", "q", Some("c1")), Ok(()));
        let twice = ordered_lock_exclusive("c1", "q", Some("c2")).unwrap_err();
        assert_eq!(twice.name, "ordered_lock_exclusive");
        assert_eq!(twice.detail, "c1 consumes q while c2 holds its lock");
    }

    #[test]
    fn readable_logs_and_sets_hold_what_they_contain_and_say_so() {
        let v = vec![1, 2];
        let set = BTreeSet::from([1, 2]);
        assert!(Readable::holds(&v[..], &2) && !Readable::holds(&v[..], &3));
        assert!(v.holds(&2) && !v.holds(&3));
        assert!(set.holds(&2) && !set.holds(&3));
        assert_eq!(Readable::<i32>::summary(&v[..]), "[1, 2]");
        assert_eq!(Readable::<i32>::summary(&v), "[1, 2]");
        assert_eq!(set.summary(), "2 messages");
        // What a violation shows: the log as it is, or a set's size (thousands of ids in a trace).
        let acked = BTreeSet::from([3]);
        let err = acked_not_lost(&acked, Some(&set)).unwrap_err();
        assert_eq!(
            err.detail,
            "3 was acknowledged but the readable log is 2 messages"
        );
        assert_eq!(acked_not_lost(&set, Some(&v)), Ok(()));
        let err = acked_not_lost(&acked, Some(&v)).unwrap_err();
        assert_eq!(
            err.detail,
            "3 was acknowledged but the readable log is [1, 2]"
        );
    }

    #[test]
    fn offsets_move_forward_and_never_past_unconsumed() {
        assert_eq!(offset_not_past_unconsumed(3, 3), Ok(()));
        assert!(offset_not_past_unconsumed(4, 3).is_err());
        assert_eq!(offsets_monotonic(None, Some(0)), Ok(()));
        assert_eq!(offsets_monotonic(Some(2), Some(2)), Ok(()));
        assert!(offsets_monotonic(Some(2), Some(1)).is_err());
        assert!(offsets_monotonic(Some(2), None).is_err());
    }
}
