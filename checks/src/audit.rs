//! The audit of a live cluster: what `sextant audit` gathered from every NameServer, broker and
//! consumer ([`Snapshot`]), judged by the model's rules ([`judge`]).
//!
//! Gathering (network I/O, read-only requests) is the binary's; this module only decides what a
//! snapshot shows:
//!
//! | finding | what it means |
//! | --- | --- |
//! | `namesrv_unreachable` | a NameServer did not answer |
//! | `namesrv_split_view` | two NameServers answer a topic's route differently (brokers, addresses or queue counts) |
//! | `split_view_double_owner` | members of a group that learned the topic from different NameServers would own a queue twice (the model's allocation on each view, with the group's members) |
//! | `broker_unreachable` | a broker a NameServer lists did not answer |
//! | `queue_no_owner` / `queue_two_owners` | a queue of a topic a group consumes is held by no member, or by two (`invariants::queue_owned_once` on what the members report holding) |
//! | `queue_not_in_route` | a member holds a queue the (first answering) NameServer's route does not list |
//! | `consumer_unreachable` | a member did not say which queues it holds |
//! | `consumer_views_differ` | the masters list different members for a group: members that ask different brokers rebalance on different views, so a queue can get two owners or none (typically a member that heartbeats only some brokers, e.g. subscriptions that differ within the group) |
//! | `queue_locked_twice` | two members each report holding a queue's orderly lock (`invariants::ordered_lock_exclusive` on their running info): both consume it, out of order |
//! | `offset_beyond_max` | a committed offset is past the queue's end |
//! | `offset_below_min` | a committed offset is below the queue's first message (messages were deleted before the group consumed them) |
//! | `slave_lag` | a slave's queue is behind its master's by more than the allowed messages |
//! | `slave_queue_counts` | a topic's queue counts differ between a master and its slave |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sextant_model::consumer::{AllocateStrategy, Averagely, GroupView};
use sextant_model::invariants::{ordered_lock_exclusive, queue_owned_once};
use sextant_model::route::{MASTER_ID, MessageQueue, TopicRouteData};

/// What one NameServer said.
#[derive(Clone, Debug, Default)]
pub struct NamesrvSnapshot {
    /// Its address.
    pub addr: String,
    /// Why it did not answer, if it did not.
    pub error: Option<String>,
    /// Every broker process it lists: (group name, id, address).
    pub brokers: BTreeSet<(String, u64, String)>,
    /// Topic → the route it answered.
    pub routes: BTreeMap<String, TopicRouteData>,
}

/// What one broker said.
#[derive(Clone, Debug, Default)]
pub struct BrokerSnapshot {
    /// Its group (`brokerName`).
    pub name: String,
    /// Its id (0: master).
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Why it did not answer, if it did not.
    pub error: Option<String>,
    /// Topic → (read, write) queue counts.
    pub topics: BTreeMap<String, (u32, u32)>,
    /// (topic, queue id) → (min, max) offsets.
    pub queues: BTreeMap<(String, u32), (u64, u64)>,
    /// (topic, group) → queue id → committed offset.
    pub offsets: BTreeMap<(String, String), BTreeMap<u32, i64>>,
}

/// What one consumer group's members said.
#[derive(Clone, Debug, Default)]
pub struct GroupSnapshot {
    /// The group.
    pub group: String,
    /// The topics it consumes (those it has committed offsets for).
    pub topics: BTreeSet<String>,
    /// Its members (client ids), as a broker lists them.
    pub members: Vec<String>,
    /// Each master's member list (by broker name): members that ask different brokers
    /// rebalance on these.
    pub member_views: BTreeMap<String, Vec<String>>,
    /// Member → the queues it reports holding, or why it did not answer.
    pub held: BTreeMap<String, Result<Vec<MessageQueue>, String>>,
    /// Member → the queues it reports holding under an orderly lock (`ProcessQueueInfo.locked`).
    pub locked: BTreeMap<String, BTreeSet<MessageQueue>>,
}

/// Everything gathered.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each NameServer asked.
    pub namesrvs: Vec<NamesrvSnapshot>,
    /// Each broker any NameServer listed.
    pub brokers: Vec<BrokerSnapshot>,
    /// Each consumer group found.
    pub groups: Vec<GroupSnapshot>,
}

/// One thing wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Its kind (see the module's table).
    pub kind: &'static str,
    /// What was seen.
    pub detail: String,
}

/// What the audit covered and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    /// NameServers asked / answered.
    pub namesrvs: (usize, usize),
    /// Brokers listed / answered.
    pub brokers: (usize, usize),
    /// Topics with a route.
    pub topics: usize,
    /// Consumer groups examined.
    pub groups: usize,
    /// Queues whose ownership was judged.
    pub queues_judged: usize,
    /// Committed offsets judged.
    pub offsets_judged: usize,
    /// Orderly locks members reported holding, judged.
    pub locks_judged: usize,
    /// The largest slave lag seen, in messages of one queue.
    pub max_slave_lag: u64,
    /// What is wrong (empty: the cluster is clean).
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Whether nothing was found.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "NameServers {}/{} answered, brokers {}/{} answered, {} topics, {} groups; \
             {} queue ownerships, {} orderly locks and {} committed offsets judged; \
             largest slave lag {} messages",
            self.namesrvs.1,
            self.namesrvs.0,
            self.brokers.1,
            self.brokers.0,
            self.topics,
            self.groups,
            self.queues_judged,
            self.locks_judged,
            self.offsets_judged,
            self.max_slave_lag
        )?;
        if self.findings.is_empty() {
            return writeln!(f, "clean: nothing found");
        }
        writeln!(f, "{} findings:", self.findings.len())?;
        for x in &self.findings {
            writeln!(f, "  {:<24} {}", x.kind, x.detail)?;
        }
        Ok(())
    }
}

/// How strict to be.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// A slave queue this many messages (or fewer) behind its master's is not a finding.
    pub max_slave_lag: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            max_slave_lag: 1_000,
        }
    }
}

fn q(mq: &MessageQueue) -> String {
    format!("{}:{}:{}", mq.topic, mq.broker_name, mq.queue_id)
}

/// A route with its lists in a canonical order, for comparison.
fn canonical(r: &TopicRouteData) -> TopicRouteData {
    let mut r = r.clone();
    r.broker_datas.sort();
    r.queue_datas.sort();
    r
}

/// Judge `snap`.
pub fn judge(snap: &Snapshot, opts: &AuditOptions) -> AuditReport {
    let mut rep = AuditReport::default();
    let mut find = |kind: &'static str, detail: String| {
        rep.findings.push(Finding { kind, detail });
    };
    let answered: Vec<&NamesrvSnapshot> =
        snap.namesrvs.iter().filter(|n| n.error.is_none()).collect();
    for n in snap.namesrvs.iter().filter(|n| n.error.is_some()) {
        find(
            "namesrv_unreachable",
            format!("{}: {}", n.addr, n.error.as_deref().unwrap_or_default()),
        );
    }
    // Split views: every topic any NameServer routes, compared across them.
    let topics: BTreeSet<&String> = answered.iter().flat_map(|n| n.routes.keys()).collect();
    let mut split_topics = BTreeSet::new();
    for topic in &topics {
        let views: Vec<(&str, Option<TopicRouteData>)> = answered
            .iter()
            .map(|n| (n.addr.as_str(), n.routes.get(*topic).map(canonical)))
            .collect();
        let (first_addr, first) = &views[0];
        for (addr, view) in &views[1..] {
            if view != first {
                split_topics.insert((*topic).clone());
                let show = |v: &Option<TopicRouteData>| match v {
                    None => "no route".to_string(),
                    Some(r) => r
                        .broker_datas
                        .iter()
                        .map(|b| format!("{}{:?}", b.broker_name, b.broker_addrs))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                find(
                    "namesrv_split_view",
                    format!(
                        "{topic}: {first_addr} lists {}, {addr} lists {}",
                        show(first),
                        show(view)
                    ),
                );
            }
        }
    }
    // Which queues a split view would give two owners, for each group consuming such a topic:
    // the model's allocation (AllocateMessageQueueAveragely, RocketMQ's default) of each
    // NameServer's queues among the group's members; a queue whose owner differs between two
    // views is owned twice while members hold different views.
    for g in &snap.groups {
        let mut members: Vec<String> = g.members.clone();
        members.sort();
        members.dedup();
        if members.len() < 2 {
            continue;
        }
        for topic in g.topics.iter().filter(|t| split_topics.contains(*t)) {
            let mut owners: BTreeMap<MessageQueue, BTreeSet<String>> = BTreeMap::new();
            for n in &answered {
                let Some(route) = n.routes.get(topic) else {
                    continue;
                };
                let view = GroupView::new(route.subscribe_queues(topic), members.iter().cloned());
                for m in &members {
                    if let Ok(share) = Averagely.allocate(&view, m) {
                        for mq in share {
                            owners.entry(mq).or_default().insert(m.clone());
                        }
                    }
                }
            }
            for (mq, who) in owners.iter().filter(|(_, w)| w.len() > 1) {
                find(
                    "split_view_double_owner",
                    format!(
                        "group {}: {} would be owned by {} (members on different NameServers' views)",
                        g.group,
                        q(mq),
                        who.iter().cloned().collect::<Vec<_>>().join(" and ")
                    ),
                );
            }
        }
    }
    rep.topics = topics.len();
    rep.namesrvs = (snap.namesrvs.len(), answered.len());
    rep.brokers = (
        snap.brokers.len(),
        snap.brokers.iter().filter(|b| b.error.is_none()).count(),
    );
    for b in snap.brokers.iter().filter(|b| b.error.is_some()) {
        find(
            "broker_unreachable",
            format!(
                "{}[{}] at {}: {}",
                b.name,
                b.id,
                b.addr,
                b.error.as_deref().unwrap_or_default()
            ),
        );
    }
    // Ownership, from what the members hold.
    let route_of = |topic: &str| answered.iter().find_map(|n| n.routes.get(topic));
    for g in &snap.groups {
        rep.groups += 1;
        let mut views: BTreeMap<Vec<&String>, Vec<&str>> = BTreeMap::new();
        for (broker, members) in &g.member_views {
            let mut v: Vec<&String> = members.iter().collect();
            v.sort();
            v.dedup();
            views.entry(v).or_default().push(broker);
        }
        if views.len() > 1 {
            find(
                "consumer_views_differ",
                format!(
                    "group {}: the masters list different members: {}",
                    g.group,
                    views
                        .iter()
                        .map(|(v, bs)| format!("{} {v:?}", bs.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
        }
        for (m, held) in &g.held {
            if let Err(e) = held {
                find(
                    "consumer_unreachable",
                    format!("group {}: {m} did not report its queues: {e}", g.group),
                );
            }
        }
        // Two members that each believe they hold a queue's orderly lock consume it side by
        // side (e.g. after a broker restart emptied its lock table while the old holder's local
        // lock still runs).
        let mut lockers: BTreeMap<&MessageQueue, Vec<&str>> = BTreeMap::new();
        for (m, qs) in &g.locked {
            for mq in qs {
                lockers.entry(mq).or_default().push(m);
            }
        }
        for (mq, who) in &lockers {
            rep.locks_judged += who.len();
            for other in &who[1..] {
                if let Err(v) = ordered_lock_exclusive(other, &q(mq), Some(who[0])) {
                    find(
                        "queue_locked_twice",
                        format!("group {}: {}", g.group, v.detail),
                    );
                }
            }
        }
        if g.held.values().any(Result::is_err) || g.members.is_empty() {
            // An unknown share makes every queue look unowned or owned once too few.
            continue;
        }
        for topic in &g.topics {
            let Some(route) = route_of(topic) else {
                continue;
            };
            let expected: BTreeSet<MessageQueue> =
                route.subscribe_queues(topic).into_iter().collect();
            let shares: BTreeMap<String, Vec<MessageQueue>> = g
                .held
                .iter()
                .map(|(m, h)| {
                    let mine = h
                        .as_ref()
                        .map(|qs| {
                            qs.iter()
                                .filter(|mq| &*mq.topic == topic)
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    (m.clone(), mine)
                })
                .collect();
            rep.queues_judged += expected.len();
            let view = GroupView::new(expected.iter().cloned(), g.members.iter().cloned());
            if queue_owned_once(&view, &shares, &expected).is_ok() {
                continue;
            }
            let mut owners: BTreeMap<&MessageQueue, Vec<&str>> = BTreeMap::new();
            for (m, share) in &shares {
                for mq in share {
                    owners.entry(mq).or_default().push(m);
                }
            }
            for mq in &expected {
                match owners.get(mq).map_or(0, Vec::len) {
                    0 => find(
                        "queue_no_owner",
                        format!("group {}: {} is held by no member", g.group, q(mq)),
                    ),
                    1 => {}
                    _ => find(
                        "queue_two_owners",
                        format!(
                            "group {}: {} is held by {}",
                            g.group,
                            q(mq),
                            owners[mq].join(" and ")
                        ),
                    ),
                }
            }
            for (mq, who) in owners.iter().filter(|(mq, _)| !expected.contains(*mq)) {
                find(
                    "queue_not_in_route",
                    format!(
                        "group {}: {} held by {} is not a queue of the route",
                        g.group,
                        q(mq),
                        who.join(" and ")
                    ),
                );
            }
        }
    }
    // Committed offsets against the queues' bounds, on masters.
    for b in snap
        .brokers
        .iter()
        .filter(|b| b.error.is_none() && b.id == MASTER_ID)
    {
        for ((topic, group), table) in &b.offsets {
            for (qid, off) in table {
                let Some((min, max)) = b.queues.get(&(topic.clone(), *qid)) else {
                    continue;
                };
                rep.offsets_judged += 1;
                let off = *off;
                if off < 0 {
                    continue;
                }
                let off = off as u64;
                if off > *max {
                    find(
                        "offset_beyond_max",
                        format!(
                            "group {group} committed {off} on {topic}:{}:{qid}, whose end is {max}",
                            b.name
                        ),
                    );
                } else if off < *min {
                    find(
                        "offset_below_min",
                        format!(
                            "group {group} committed {off} on {topic}:{}:{qid}, whose first message is {min}: {} messages deleted unconsumed",
                            b.name,
                            min - off
                        ),
                    );
                }
            }
        }
    }
    // Masters against their slaves.
    for m in snap
        .brokers
        .iter()
        .filter(|b| b.error.is_none() && b.id == MASTER_ID)
    {
        for s in snap
            .brokers
            .iter()
            .filter(|s| s.error.is_none() && s.name == m.name && s.id != MASTER_ID)
        {
            for (topic, counts) in &m.topics {
                if let Some(sc) = s.topics.get(topic)
                    && sc != counts
                {
                    find(
                        "slave_queue_counts",
                        format!(
                            "{topic} on {}: master {}/{} read/write queues, slave {} {}/{}",
                            m.name, counts.0, counts.1, s.id, sc.0, sc.1
                        ),
                    );
                }
            }
            for (key, (_, max)) in &m.queues {
                let slave_max = s.queues.get(key).map_or(0, |(_, x)| *x);
                let lag = max.saturating_sub(slave_max);
                rep.max_slave_lag = rep.max_slave_lag.max(lag);
                if lag > opts.max_slave_lag {
                    find(
                        "slave_lag",
                        format!(
                            "{}:{}:{} — slave {} is {lag} messages behind its master",
                            key.0, m.name, key.1, s.id
                        ),
                    );
                }
            }
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::route::{BrokerData, Perm, QueueData};

    fn route(topic_brokers: &[(&str, &str)]) -> TopicRouteData {
        TopicRouteData {
            broker_datas: topic_brokers
                .iter()
                .map(|(n, a)| BrokerData {
                    cluster: "C".into(),
                    broker_name: (*n).into(),
                    broker_addrs: [(0, (*a).to_string())].into(),
                    ..Default::default()
                })
                .collect(),
            queue_datas: topic_brokers
                .iter()
                .map(|(n, _)| QueueData {
                    broker_name: (*n).into(),
                    read_queue_nums: 2,
                    write_queue_nums: 2,
                    perm: Perm::READ_WRITE,
                    topic_sys_flag: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn ns(addr: &str, brokers: &[(&str, &str)]) -> NamesrvSnapshot {
        NamesrvSnapshot {
            addr: addr.into(),
            routes: [("T".to_string(), route(brokers))].into(),
            ..Default::default()
        }
    }

    fn mq(b: &str, id: u32) -> MessageQueue {
        MessageQueue::new("T", b, id)
    }

    fn group(held: Vec<(&str, Vec<MessageQueue>)>) -> GroupSnapshot {
        GroupSnapshot {
            group: "g".into(),
            topics: ["T".to_string()].into(),
            members: held.iter().map(|(m, _)| m.to_string()).collect(),
            member_views: BTreeMap::new(),
            held: held
                .into_iter()
                .map(|(m, qs)| (m.to_string(), Ok(qs)))
                .collect(),
            locked: BTreeMap::new(),
        }
    }

    fn kinds(r: &AuditReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn masters_listing_different_members_are_found() {
        let mut g = group(vec![("c1", vec![]), ("c2", vec![])]);
        g.member_views = [
            ("a".to_string(), vec!["c2".to_string(), "c1".to_string()]),
            ("b".to_string(), vec!["c1".to_string(), "c2".to_string()]),
        ]
        .into();
        let same = Snapshot {
            groups: vec![g.clone()],
            ..Default::default()
        };
        let r = judge(&same, &AuditOptions::default());
        assert!(!kinds(&r).contains(&"consumer_views_differ"), "{r}");
        g.member_views.insert("c".into(), vec!["c1".into()]);
        let split = Snapshot {
            groups: vec![g],
            ..Default::default()
        };
        let r = judge(&split, &AuditOptions::default());
        assert!(kinds(&r).contains(&"consumer_views_differ"), "{r}");
        assert!(
            r.findings.iter().any(|f| f.detail.contains("c [\"c1\"]")),
            "{r}"
        );
    }

    #[test]
    fn a_clean_snapshot_has_no_findings() {
        let snap = Snapshot {
            namesrvs: vec![ns("n1", &[("a", "a:1")]), ns("n2", &[("a", "a:1")])],
            groups: vec![group(vec![
                ("c1", vec![mq("a", 0)]),
                ("c2", vec![mq("a", 1)]),
            ])],
            ..Default::default()
        };
        let r = judge(&snap, &AuditOptions::default());
        assert!(r.clean(), "{r}");
        assert_eq!(r.queues_judged, 2);
    }

    #[test]
    fn split_views_and_the_queues_they_would_give_two_owners() {
        let snap = Snapshot {
            namesrvs: vec![
                ns("n1", &[("a", "a:1")]),
                ns("n2", &[("a", "a:1"), ("b", "b:1")]),
            ],
            groups: vec![group(vec![
                ("c1", vec![mq("a", 0)]),
                ("c2", vec![mq("a", 1)]),
            ])],
            ..Default::default()
        };
        let r = judge(&snap, &AuditOptions::default());
        let k = kinds(&r);
        assert!(k.contains(&"namesrv_split_view"), "{r}");
        // n1: c1 {a0}, c2 {a1}; n2: c1 {a0, a1}, c2 {b0, b1} — a1 has two owners.
        assert!(
            r.findings
                .iter()
                .any(|f| f.kind == "split_view_double_owner" && f.detail.contains("T:a:1")),
            "{r}"
        );
        // The members' real holdings are judged against the first view and are fine there.
        assert!(!k.contains(&"queue_two_owners"), "{r}");
    }

    #[test]
    fn held_queues_with_two_owners_or_none() {
        let snap = Snapshot {
            namesrvs: vec![ns("n1", &[("a", "a:1")])],
            groups: vec![group(vec![
                ("c1", vec![mq("a", 0), mq("a", 1)]),
                ("c2", vec![mq("a", 1)]),
            ])],
            ..Default::default()
        };
        let r = judge(&snap, &AuditOptions::default());
        assert_eq!(kinds(&r), ["queue_two_owners"], "{r}");
        let snap = Snapshot {
            groups: vec![group(vec![("c1", vec![mq("a", 0)]), ("c2", vec![])])],
            ..snap
        };
        let r = judge(&snap, &AuditOptions::default());
        assert_eq!(kinds(&r), ["queue_no_owner"], "{r}");
        assert!(r.findings[0].detail.contains("T:a:1"));
    }

    #[test]
    fn an_orderly_queue_locked_by_two_members() {
        let mut g = group(vec![("c1", vec![mq("a", 0)]), ("c2", vec![mq("a", 1)])]);
        g.locked.insert("c1".into(), [mq("a", 0)].into());
        g.locked.insert("c2".into(), [mq("a", 1)].into());
        let snap = Snapshot {
            namesrvs: vec![ns("n1", &[("a", "a:1")])],
            groups: vec![g.clone()],
            ..Default::default()
        };
        let r = judge(&snap, &AuditOptions::default());
        assert!(r.clean(), "{r}");
        assert_eq!(r.locks_judged, 2);
        // c2 still believes it holds a:0's lock (its local lock outlived a broker restart) while
        // c1 was granted it.
        g.locked.get_mut("c2").unwrap().insert(mq("a", 0));
        let r = judge(
            &Snapshot {
                groups: vec![g],
                ..snap
            },
            &AuditOptions::default(),
        );
        assert_eq!(kinds(&r), ["queue_locked_twice"], "{r}");
        assert!(
            r.findings[0]
                .detail
                .contains("c2 consumes T:a:0 while c1 holds its lock"),
            "{r}"
        );
    }

    #[test]
    fn unreachable_parts_offsets_and_slaves() {
        let master = BrokerSnapshot {
            name: "a".into(),
            id: 0,
            addr: "a:1".into(),
            topics: [("T".to_string(), (2, 2))].into(),
            queues: [
                (("T".to_string(), 0), (0, 10)),
                (("T".to_string(), 1), (5, 3_000)),
            ]
            .into(),
            offsets: [(("T".to_string(), "g".to_string()), [(0, 11), (1, 2)].into())].into(),
            ..Default::default()
        };
        let slave = BrokerSnapshot {
            id: 1,
            addr: "a:2".into(),
            topics: [("T".to_string(), (4, 4))].into(),
            queues: [
                (("T".to_string(), 0), (0, 10)),
                (("T".to_string(), 1), (5, 1_000)),
            ]
            .into(),
            offsets: BTreeMap::new(),
            ..master.clone()
        };
        let gone = BrokerSnapshot {
            name: "b".into(),
            addr: "b:1".into(),
            error: Some("connection refused".into()),
            ..Default::default()
        };
        let snap = Snapshot {
            namesrvs: vec![
                ns("n1", &[("a", "a:1")]),
                NamesrvSnapshot {
                    addr: "n2".into(),
                    error: Some("timeout".into()),
                    ..Default::default()
                },
            ],
            brokers: vec![master, slave, gone],
            groups: vec![GroupSnapshot {
                held: [("c1".to_string(), Err("timeout".to_string()))].into(),
                members: vec!["c1".into()],
                ..group(vec![])
            }],
        };
        let r = judge(&snap, &AuditOptions::default());
        let k: BTreeSet<_> = kinds(&r).into_iter().collect();
        let want: BTreeSet<_> = [
            "namesrv_unreachable",
            "broker_unreachable",
            "consumer_unreachable",
            "offset_beyond_max",
            "offset_below_min",
            "slave_queue_counts",
            "slave_lag",
        ]
        .into();
        assert_eq!(k, want, "{r}");
        assert_eq!(r.max_slave_lag, 2_000);
        assert_eq!(r.namesrvs, (2, 1));
        assert_eq!(r.brokers, (3, 2));
        // Lag within the allowance is not a finding.
        let r = judge(
            &snap,
            &AuditOptions {
                max_slave_lag: 2_000,
            },
        );
        assert!(!kinds(&r).contains(&"slave_lag"), "{r}");
    }
}
