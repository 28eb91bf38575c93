//! The trace checker: a recorded run of the real NameServer, broker and client, judged by the
//! invariants of `sextant_model::invariants` — the functions the stateright models use.
//!
//! [`check`] walks the merged records in order and keeps what the nodes observed: per
//! NameServer, the brokers it has live and when each last called; per client, the routes it held
//! (by version) and the attempts of each send; per group, each member's last rebalance and the
//! queues each member owns; what was acknowledged, stored, consumed and committed. At each event
//! it evaluates the predicates that event can decide:
//!
//! | event | predicates |
//! | --- | --- |
//! | `route_served` | `route_integrity` (every address listed is live at that NameServer, every queue entry has its broker), `expiry_bounded` (none silent longer than expiry + scan) |
//! | `send_attempt` | `no_send_to_expired_broker` (the target is in the route the send chose from; a retry avoids the broker that just failed while another is writable), `slave_read_only` (an acknowledged send went to a master address) |
//! | `rebalance` | `queue_owned_once` once every member of the view has rebalanced on the same member and queue lists |
//! | `pull` | `queue_owned_once` on what the consumers do: a member pulls only queues it owns (`queue_added` … `queue_dropped`) |
//! | `offset_committed` | `offsets_monotonic` within one ownership of a queue |
//! | `lock_granted`, `consumed` (orderly) | `ordered_lock_exclusive`: the broker grants a live lock to nobody else, and a message of a locked topic goes to the live holder of its queue's lock (or while nobody holds it live) |
//! | `mark` `drained` | `acked_not_lost`: everything acknowledged before it was consumed by then |
//! | `put_answered` | `ack_after_durable`: a SUCCESS only with what the flush and replication modes require (`store::put_verdict` on what the store had) |
//! | end of trace | `offset_not_past_unconsumed`: no commit passed an acknowledged message not yet consumed |
//!
//! It also measures what the model only discovers: how long sends kept failing against one
//! dead broker address, how long queues had two owners at once, how many deliveries were
//! duplicates, and commits that moved a queue's offset back across owners.
//!
//! A trace that starts mid-run is judged from what it holds: a NameServer is judged only after
//! its `namesrv_started`, a send only when its route's `route_refreshed` is in the trace.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::path::Path;

use sextant_model::consumer::GroupView;
use sextant_model::invariants::{
    Violation, ack_after_durable, acked_not_lost, no_send_to_expired_broker,
    offset_not_past_unconsumed, offsets_monotonic, ordered_lock_exclusive, queue_owned_once,
    route_expiry_bounded, route_integrity_with,
};
use sextant_model::producer::TopicPublishInfo;
use sextant_model::route::{MASTER_ID, MAX_QUEUE_NUMS, MessageQueue, TopicRouteData};
use sextant_model::store::{BrokerRole, FlushDiskType, PutProgress};
use sextant_trace::{Event, Queue, Record, SendOutcome, TraceError};

/// The invariants the checker judges, in the order the report lists them.
pub const INVARIANTS: [&str; 10] = [
    "route_integrity",
    "expiry_bounded",
    "no_send_to_expired_broker",
    "slave_read_only",
    "queue_owned_once",
    "ordered_lock_exclusive",
    "acked_not_lost",
    "ack_after_durable",
    "offsets_monotonic",
    "offset_not_past_unconsumed",
];

/// The label of the mark that asks for `acked_not_lost`.
pub const DRAINED: &str = "drained";

/// The prefix of a mark `lossy ADDR`: the broker at ADDR lost what it had not flushed under
/// ASYNC_FLUSH, which promises nothing more, so the messages it acknowledged so far are excused
/// from `acked_not_lost` — and counted as lost if they are never delivered.
pub const LOSSY: &str = "lossy ";

/// The prefix of a mark `power_loss ADDR`: the broker at ADDR lost power, so its queues may end
/// below where consumers had read (under either flush mode: a message is readable before it is
/// flushed). Its consumers' offsets may then move back to the recovered end (a new baseline
/// for `offsets_monotonic`), and the messages it acknowledges later at offsets below where its
/// queues had reached (the lost tail refilled) are excused: a consumer already past them skips
/// them — a hazard of RocketMQ's protocol no client can see (no log epoch), measured as
/// [`Measured::refilled_after_loss`].
pub const POWER_LOSS: &str = "power_loss ";

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many records before and after a violation its report shows.
    pub context: usize,
    /// Judge `acked_not_lost` at the end of the trace too, as if it ended with a `drained` mark.
    pub drained_at_end: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            context: 6,
            drained_at_end: false,
        }
    }
}

/// A violation and where it happened.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What broke.
    pub violation: Violation,
    /// The index of the record that showed it (in the merged stream).
    pub at: usize,
    /// The records around it.
    pub around: Vec<Record>,
}

/// One invariant's verdict over the trace.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The invariant.
    pub name: &'static str,
    /// How many times it was evaluated.
    pub judged: u64,
    /// How many evaluations failed.
    pub violations: u64,
    /// The first failure.
    pub first: Option<Finding>,
}

/// What the checker measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// Sends (a send and its retries count once).
    pub sends: u64,
    /// Send attempts.
    pub attempts: u64,
    /// Messages acknowledged (SEND_OK).
    pub acked: u64,
    /// Attempts that failed on the network or timed out.
    pub failed_attempts: u64,
    /// The longest time between the first and the last failed attempt against one address
    /// (ms): how long producers went on trying a dead broker.
    pub dead_broker_window_ms: u64,
    /// Deliveries to a handler.
    pub deliveries: u64,
    /// Distinct messages delivered.
    pub consumed: u64,
    /// Deliveries of a message already delivered (to the same group).
    pub duplicates: u64,
    /// Times a queue had two owners in one group at once.
    pub double_owners: u64,
    /// The longest such overlap (ms).
    pub double_owner_ms: u64,
    /// Commits that set a queue's offset below the last one committed by another member.
    pub commits_back_across_owners: u64,
    /// Acknowledged messages never delivered by the end of the trace (not counting the excused).
    pub undelivered_at_end: u64,
    /// Acknowledged messages lost where the broker promised no more (see [`LOSSY`]).
    pub lost_excused: u64,
    /// Messages acknowledged after a power loss at offsets the lost tail had held (see
    /// [`POWER_LOSS`]); a consumer that had read that far skips them.
    pub refilled_after_loss: u64,
    /// Orderly deliveries to a consumer whose lock a broker restart dropped, while the
    /// restarted broker had granted the queue to another: RocketMQ's orderly hazard (two
    /// consumers of one queue until the old holder's local lock expires).
    pub orderly_overlap_after_restart: u64,
    /// Rebalances recorded.
    pub rebalances: u64,
}

/// What a check found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Records read.
    pub records: usize,
    /// Nodes seen.
    pub nodes: usize,
    /// Records taken in seq order although their time was earlier (clock steps).
    pub reordered: usize,
    /// Gaps in a node's sequence numbers (lost records).
    pub gaps: usize,
    /// Nodes restarted into the same file (their sequence began again).
    pub restarts: usize,
    /// One verdict per invariant, as [`INVARIANTS`] orders them.
    pub verdicts: Vec<Verdict>,
    /// The measured windows and counts.
    pub measured: Measured,
}

impl Report {
    /// Whether no invariant was violated.
    pub fn ok(&self) -> bool {
        self.verdicts.iter().all(|v| v.violations == 0)
    }

    /// The verdict of `name`.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.name == name)
    }

    /// The earliest violation of any invariant.
    pub fn first_violation(&self) -> Option<&Finding> {
        self.verdicts
            .iter()
            .filter_map(|v| v.first.as_ref())
            .min_by_key(|f| f.at)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records from {} nodes ({} out of clock order, {} gaps, {} restarts)",
            self.records, self.nodes, self.reordered, self.gaps, self.restarts
        )?;
        for v in &self.verdicts {
            let verdict = match (v.judged, v.violations) {
                (0, _) => "not judged".to_string(),
                (n, 0) => format!("held ({n} checks)"),
                (n, k) => format!("VIOLATED {k} of {n}"),
            };
            writeln!(f, "  {:<28} {verdict}", v.name)?;
        }
        let m = &self.measured;
        writeln!(
            f,
            "  sends {} ({} attempts, {} failed), acknowledged {}; dead-broker window {} ms",
            m.sends, m.attempts, m.failed_attempts, m.acked, m.dead_broker_window_ms
        )?;
        writeln!(
            f,
            "  delivered {} ({} distinct, {} duplicates); double owners {} (longest {} ms); \
             commits back across owners {}; undelivered at end {}; lost where excused {} \
             (acknowledged into a lost tail's offsets {}); orderly deliveries overlapping after \
             a broker restart {}",
            m.deliveries,
            m.consumed,
            m.duplicates,
            m.double_owners,
            m.double_owner_ms,
            m.commits_back_across_owners,
            m.undelivered_at_end,
            m.lost_excused,
            m.refilled_after_loss,
            m.orderly_overlap_after_restart
        )?;
        if let Some(first) = self.first_violation() {
            writeln!(
                f,
                "first violation, at record {}: {}",
                first.at, first.violation
            )?;
            for r in &first.around {
                writeln!(
                    f,
                    "    {}",
                    serde_json::to_string(r).unwrap_or_else(|e| e.to_string())
                )?;
            }
        }
        Ok(())
    }
}

/// Read, merge and check the traces at `paths`.
pub fn check_files(paths: &[impl AsRef<Path>], opts: &Options) -> Result<Report, TraceError> {
    let mut traces = Vec::new();
    for p in paths {
        traces.push(sextant_trace::read_file(p.as_ref())?);
    }
    let merged = sextant_trace::merge(traces);
    let mut report = check(&merged.records, opts);
    report.reordered = merged.reordered;
    report.gaps = merged.gaps;
    report.restarts = merged.restarts;
    Ok(report)
}

#[derive(Default)]
struct Namesrv {
    started: bool,
    /// Its expiry and scan interval (ms).
    expiry: u64,
    scan: u64,
    /// (cluster, addr) → (last contact on the NameServer's clock, the broker's own timeout).
    live: BTreeMap<(String, String), (u64, Option<u64>)>,
}

/// How many route versions per client and topic the checker keeps: a send names the version it
/// chose from, at most a few refreshes old.
const ROUTE_VERSIONS_KEPT: usize = 16;

struct HeldRoute {
    route: TopicRouteData,
    publish: TopicPublishInfo,
}

/// A message's place: group-independent (queue, offset).
type At = (Queue, u64);

/// A member's last rebalance of a topic: (members, queues, its share).
type View = (Vec<String>, Vec<Queue>, Vec<Queue>);

#[derive(Default)]
struct State {
    namesrvs: HashMap<String, Namesrv>,
    /// (node, topic) → its last route versions.
    routes: HashMap<(String, String), VecDeque<(u64, HeldRoute)>>,
    /// (node, send) → the broker group of its last attempt.
    last_attempt: HashMap<(String, u64), String>,
    /// Failed attempts per address: (first ts, last ts).
    failing: HashMap<String, (u64, u64)>,
    acked: BTreeSet<String>,
    /// Acknowledged messages by the address that acknowledged them (until a `lossy` mark).
    acked_via: HashMap<String, Vec<String>>,
    /// Acknowledged messages a `lossy` mark excused.
    excused: BTreeSet<String>,
    /// Where each queue had reached (acknowledged or pulled), for the `lossy` marks.
    reached: HashMap<Queue, u64>,
    /// Which broker group each address served.
    group_of: HashMap<String, String>,
    /// After a `lossy` mark: the queues' reach before it; acknowledgements below are excused.
    refill_below: HashMap<Queue, u64>,
    /// Orderly locks: (group, queue) → (holder, granted at ts, expiry ms).
    locks: HashMap<(String, Queue), (String, u64, u64)>,
    /// Locks a broker restart dropped (their holders' local locks may outlive them).
    stale_locks: HashMap<(String, Queue), (String, u64, u64)>,
    /// (group, topic) consumed orderly: some queue of it was locked.
    orderly: BTreeSet<(String, String)>,
    /// After a `power_loss` mark: each queue of the broker and its recovered end (the first
    /// offset the broker stores there after), down to which a commit may move back.
    recovered: HashMap<Queue, Option<u64>>,
    /// Acknowledged messages by place.
    acked_at: BTreeMap<Queue, BTreeMap<u64, String>>,
    /// (group, topic) → member → (members, queues, share).
    views: HashMap<(String, String), BTreeMap<String, View>>,
    /// (group, queue) → owner → since (ts).
    owners: HashMap<(String, Queue), BTreeMap<String, u64>>,
    /// (group, queue) → when a second owner came.
    overlap_since: HashMap<(String, Queue), u64>,
    /// (group, queue) → the lowest start offset any owner took.
    starts: HashMap<(String, Queue), u64>,
    delivered: BTreeSet<String>,
    /// (group, msg id) delivered.
    delivered_in: BTreeSet<(String, String)>,
    /// (group, place) → index of the first delivery.
    delivered_at: HashMap<(String, At), usize>,
    /// (node, group, queue) → last commit within the node's current ownership.
    commits: HashMap<(String, String, Queue), u64>,
    /// (group, queue) → (last committer, offset).
    last_commit: HashMap<(String, Queue), (String, u64)>,
    /// Every commit: (index, group, queue, offset).
    commit_log: Vec<(usize, String, Queue, u64)>,
}

/// The body of the `trace_check` fuzz target (and of its corpus replay in `cargo test`): any
/// bytes go through the reader and, if they parse, through the checker — neither may panic,
/// whatever the trace claims.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    if let Ok(records) = sextant_trace::parse(data) {
        let report = check(&records, &Options::default());
        let _ = report.to_string();
    }
}

fn flush_of(name: &str) -> Option<FlushDiskType> {
    [FlushDiskType::SyncFlush, FlushDiskType::AsyncFlush]
        .into_iter()
        .find(|f| f.name() == name)
}

fn role_of(name: &str) -> Option<BrokerRole> {
    [
        BrokerRole::AsyncMaster,
        BrokerRole::SyncMaster,
        BrokerRole::Slave,
    ]
    .into_iter()
    .find(|r| r.name() == name)
}

/// Who holds `queue`'s lock in `group` live at `ts` (µs).
fn live_holder(
    locks: &HashMap<(String, Queue), (String, u64, u64)>,
    group: &str,
    queue: &Queue,
    ts: u64,
) -> Option<String> {
    let (holder, at, expire_ms) = locks.get(&(group.to_owned(), queue.clone()))?;
    (ts.saturating_sub(*at) <= expire_ms.saturating_mul(1000)).then(|| holder.clone())
}

fn queue_name(q: &Queue) -> String {
    format!("{}:{}:{}", q.topic, q.broker, q.id)
}

struct Judge<'a> {
    records: &'a [Record],
    opts: &'a Options,
    verdicts: Vec<Verdict>,
}

impl Judge<'_> {
    fn judge(&mut self, name: &'static str, at: usize, result: Result<(), Violation>) {
        let v = self
            .verdicts
            .iter_mut()
            .find(|v| v.name == name)
            .expect("a listed invariant");
        v.judged += 1;
        if let Err(violation) = result {
            v.violations += 1;
            if v.first.is_none() {
                let lo = at.saturating_sub(self.opts.context);
                let hi = (at + self.opts.context + 1).min(self.records.len());
                v.first = Some(Finding {
                    violation,
                    at,
                    around: self.records[lo..hi].to_vec(),
                });
            }
        }
    }
}

fn fail(name: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { name, detail })
}

/// Check `records` (one merged stream, in order).
pub fn check(records: &[Record], opts: &Options) -> Report {
    let mut j = Judge {
        records,
        opts,
        verdicts: INVARIANTS
            .iter()
            .map(|name| Verdict {
                name,
                judged: 0,
                violations: 0,
                first: None,
            })
            .collect(),
    };
    let mut s = State::default();
    let mut m = Measured::default();
    let nodes: BTreeSet<&str> = records.iter().map(|r| r.node.as_str()).collect();
    for (i, r) in records.iter().enumerate() {
        let node = r.node.as_str();
        match &r.event {
            Event::NamesrvStarted { expiry, scan, .. } => {
                let ns = s.namesrvs.entry(node.to_owned()).or_default();
                ns.started = true;
                ns.expiry = *expiry;
                ns.scan = *scan;
                ns.live.clear();
            }
            Event::BrokerRegistered {
                cluster,
                addr,
                timeout,
                now,
                ..
            } => {
                let ns = s.namesrvs.entry(node.to_owned()).or_default();
                ns.live
                    .insert((cluster.clone(), addr.clone()), (*now, *timeout));
            }
            Event::BrokerHeartbeat {
                cluster,
                addr,
                known,
                now,
            } => {
                let ns = s.namesrvs.entry(node.to_owned()).or_default();
                if *known && let Some(l) = ns.live.get_mut(&(cluster.clone(), addr.clone())) {
                    l.0 = *now;
                }
            }
            Event::BrokerExpired { cluster, addr, .. }
            | Event::BrokerUnregistered { cluster, addr, .. } => {
                let ns = s.namesrvs.entry(node.to_owned()).or_default();
                ns.live.remove(&(cluster.clone(), addr.clone()));
            }
            Event::RouteServed { topic, route, now } => {
                let Some(ns) = s.namesrvs.get(node).filter(|ns| ns.started) else {
                    continue;
                };
                let Some(route) = route else { continue };
                let route = TopicRouteData::from(route);
                j.judge(
                    "route_integrity",
                    i,
                    route_integrity_with(&route, |c, a| {
                        ns.live.contains_key(&(c.to_owned(), a.to_owned()))
                    }),
                );
                // A broker with its own heartbeat timeout expires after that instead of the
                // NameServer's: its last contact is shifted by the difference, so one bound
                // (expiry + scan) judges every broker.
                let last_seen: BTreeMap<String, u64> = ns
                    .live
                    .iter()
                    .map(|((_, a), (t, own))| {
                        let own = own.unwrap_or(ns.expiry);
                        let seen = if own >= ns.expiry {
                            t.saturating_add(own - ns.expiry)
                        } else {
                            t.saturating_sub(ns.expiry - own)
                        };
                        (a.clone(), seen)
                    })
                    .collect();
                j.judge(
                    "expiry_bounded",
                    i,
                    route_expiry_bounded(
                        topic,
                        &route,
                        &last_seen,
                        ns.expiry.saturating_add(ns.scan),
                        *now,
                    ),
                );
            }
            Event::RouteRefreshed {
                topic,
                route,
                version,
                ..
            } => {
                if route
                    .queues
                    .iter()
                    .any(|q| q.read > MAX_QUEUE_NUMS || q.write > MAX_QUEUE_NUMS)
                {
                    // No real client holds such a route (the wire decoder refuses it).
                    continue;
                }
                let route = TopicRouteData::from(route);
                let publish = TopicPublishInfo::from_route(topic, &route);
                let held = s
                    .routes
                    .entry((node.to_owned(), topic.clone()))
                    .or_default();
                if held.len() == ROUTE_VERSIONS_KEPT {
                    held.pop_front();
                }
                held.push_back((*version, HeldRoute { route, publish }));
            }
            Event::SendAttempt {
                send,
                attempt,
                msg_id,
                queue,
                addr,
                route_version,
                outcome,
                offset,
                ..
            } => {
                m.attempts += 1;
                if *attempt == 1 {
                    m.sends += 1;
                }
                let key = (node.to_owned(), *send);
                let retry_after = if *attempt > 1 {
                    s.last_attempt.get(&key).cloned()
                } else {
                    None
                };
                s.last_attempt.insert(key, queue.broker.clone());
                let routes = s.routes.get(&(node.to_owned(), queue.topic.clone()));
                let held = routes
                    .and_then(|v| v.iter().rev().find(|(n, _)| n == route_version))
                    .map(|(_, h)| h);
                if let Some(held) = held {
                    j.judge(
                        "no_send_to_expired_broker",
                        i,
                        no_send_to_expired_broker(
                            &held.publish,
                            &queue.broker,
                            retry_after.as_deref(),
                        ),
                    );
                }
                match outcome {
                    SendOutcome::Ok => {
                        // Any route the client held lists the address under its id.
                        let slave = routes
                            .into_iter()
                            .flatten()
                            .flat_map(|(_, h)| &h.route.broker_datas)
                            .filter(|b| b.broker_name == queue.broker)
                            .flat_map(|b| &b.broker_addrs)
                            .find(|(id, a)| **id != MASTER_ID && *a == addr);
                        if held.is_some() || slave.is_some() {
                            j.judge(
                                "slave_read_only",
                                i,
                                match slave {
                                    Some((id, a)) => fail(
                                        "slave_read_only",
                                        format!(
                                            "{msg_id} acknowledged by {a}, broker id {id} of {}",
                                            queue.broker
                                        ),
                                    ),
                                    None => Ok(()),
                                },
                            );
                        }
                        for (k, id) in msg_id.split(',').enumerate() {
                            m.acked += 1;
                            s.acked.insert(id.to_owned());
                            if let Some(o) = offset {
                                let o = o.saturating_add(k as u64);
                                let r = s.reached.entry(queue.clone()).or_default();
                                *r = (*r).max(o.saturating_add(1));
                                if s.refill_below.get(queue).is_some_and(|below| o < *below) {
                                    m.refilled_after_loss += 1;
                                    s.excused.insert(id.to_owned());
                                }
                            }
                            s.acked_via
                                .entry(addr.clone())
                                .or_default()
                                .push(id.to_owned());
                            if let Some(o) = offset {
                                s.acked_at
                                    .entry(queue.clone())
                                    .or_default()
                                    .insert(o.saturating_add(k as u64), id.to_owned());
                            }
                        }
                        s.group_of.insert(addr.clone(), queue.broker.clone());
                        // The address works again: a later outage is a new window.
                        s.failing.remove(addr);
                    }
                    SendOutcome::Network | SendOutcome::Timeout => {
                        m.failed_attempts += 1;
                        if !addr.is_empty() {
                            let w = s.failing.entry(addr.clone()).or_insert((r.ts, r.ts));
                            w.1 = w.1.max(r.ts);
                            m.dead_broker_window_ms =
                                m.dead_broker_window_ms.max(w.1.saturating_sub(w.0) / 1000);
                        }
                    }
                    SendOutcome::NotStoreOk | SendOutcome::Refused => {}
                }
            }
            Event::Rebalance {
                group,
                topic,
                members,
                queues,
                allocated,
                ..
            } => {
                m.rebalances += 1;
                // Views compared as sets: a member's list order is its own business (and a
                // client that allocates on an unsorted list must still be judged).
                let mut members = members.clone();
                members.sort();
                members.dedup();
                let members = &members;
                let mut queues = queues.clone();
                queues.sort();
                queues.dedup();
                let queues = &queues;
                let views = s.views.entry((group.clone(), topic.clone())).or_default();
                views.insert(
                    node.to_owned(),
                    (members.clone(), queues.clone(), allocated.clone()),
                );
                let stable = members.iter().all(|mem| {
                    views
                        .get(mem)
                        .is_some_and(|(ms, qs, _)| ms == members && qs == queues)
                });
                if stable {
                    let mqs: Vec<MessageQueue> = queues.iter().map(MessageQueue::from).collect();
                    let view = GroupView::new(mqs.iter().cloned(), members.iter().cloned());
                    let shares: BTreeMap<String, Vec<MessageQueue>> = members
                        .iter()
                        .map(|mem| {
                            let share = views[mem].2.iter().map(MessageQueue::from).collect();
                            (mem.clone(), share)
                        })
                        .collect();
                    j.judge(
                        "queue_owned_once",
                        i,
                        queue_owned_once(&view, &shares, &mqs.into_iter().collect()),
                    );
                }
            }
            Event::QueueAdded {
                group,
                queue,
                offset,
            } => {
                let key = (group.clone(), queue.clone());
                let owners = s.owners.entry(key.clone()).or_default();
                owners.insert(node.to_owned(), r.ts);
                if owners.len() == 2 {
                    s.overlap_since.insert(key.clone(), r.ts);
                }
                let start = s.starts.entry(key).or_insert(*offset);
                *start = (*start).min(*offset);
                s.commits
                    .remove(&(node.to_owned(), group.clone(), queue.clone()));
            }
            Event::QueueDropped { group, queue } => {
                let key = (group.clone(), queue.clone());
                if let Some(owners) = s.owners.get_mut(&key) {
                    owners.remove(node);
                    if owners.len() == 1
                        && let Some(since) = s.overlap_since.remove(&key)
                    {
                        m.double_owners += 1;
                        m.double_owner_ms =
                            m.double_owner_ms.max(r.ts.saturating_sub(since) / 1000);
                    }
                }
            }
            Event::Pull {
                group, queue, next, ..
            } => {
                let r = s.reached.entry(queue.clone()).or_default();
                *r = (*r).max(*next);
                let owned = s
                    .owners
                    .get(&(group.clone(), queue.clone()))
                    .is_some_and(|o| o.contains_key(node));
                j.judge(
                    "queue_owned_once",
                    i,
                    if owned {
                        Ok(())
                    } else {
                        fail(
                            "queue_owned_once",
                            format!(
                                "{node} pulled {}:{}:{} of {group}, which it does not own",
                                queue.topic, queue.broker, queue.id
                            ),
                        )
                    },
                );
            }
            Event::Consumed {
                group,
                queue,
                offset,
                msg_id,
            } => {
                m.deliveries += 1;
                if s.orderly.contains(&(group.clone(), queue.topic.clone())) {
                    let holder = live_holder(&s.locks, group, queue, r.ts);
                    let stale = live_holder(&s.stale_locks, group, queue, r.ts);
                    if holder.as_deref().is_some_and(|h| h != node)
                        && stale.as_deref() == Some(node)
                    {
                        // RocketMQ's restart hazard: the broker lost its locks and granted the
                        // queue to another while this consumer's lock, from before, lives on.
                        m.orderly_overlap_after_restart += 1;
                    } else {
                        j.judge(
                            "ordered_lock_exclusive",
                            i,
                            ordered_lock_exclusive(node, &queue_name(queue), holder.as_deref()),
                        );
                    }
                }
                if !s.delivered_in.insert((group.clone(), msg_id.clone())) {
                    m.duplicates += 1;
                }
                s.delivered.insert(msg_id.clone());
                s.delivered_at
                    .entry((group.clone(), (queue.clone(), *offset)))
                    .or_insert(i);
            }
            Event::OffsetCommitted {
                group,
                queue,
                offset,
            } => {
                let key = (node.to_owned(), group.clone(), queue.clone());
                let before = s.commits.insert(key, *offset);
                // A power loss cut the queue: the consumer's offset returns to the recovered
                // end (the client's OFFSET_ILLEGAL correction), and no further back.
                let cut = match s.recovered.get(queue) {
                    Some(None) => true,
                    Some(Some(end)) => *offset >= *end,
                    None => false,
                };
                if !(cut && before.is_some_and(|b| *offset < b)) {
                    j.judge(
                        "offsets_monotonic",
                        i,
                        offsets_monotonic(before, Some(*offset)),
                    );
                }
                let shared = (group.clone(), queue.clone());
                if let Some((who, last)) = s.last_commit.get(&shared)
                    && who != node
                    && *offset < *last
                {
                    m.commits_back_across_owners += 1;
                }
                s.last_commit.insert(shared, (node.to_owned(), *offset));
                s.commit_log
                    .push((i, group.clone(), queue.clone(), *offset));
            }
            Event::Mark { label } if label == DRAINED => {
                let owed: BTreeSet<String> = s.acked.difference(&s.excused).cloned().collect();
                j.judge(
                    "acked_not_lost",
                    i,
                    acked_not_lost(&owed, Some(&s.delivered)),
                );
            }
            Event::Mark { label } if label.starts_with(LOSSY) => {
                let addr = &label[LOSSY.len()..];
                s.excused
                    .extend(s.acked_via.remove(addr).unwrap_or_default());
            }
            Event::Mark { label } if label.starts_with(POWER_LOSS) => {
                let addr = &label[POWER_LOSS.len()..];
                if let Some(group) = s.group_of.get(addr) {
                    for q in s.reached.keys().filter(|q| &q.broker == group) {
                        s.recovered.insert(q.clone(), None);
                    }
                    for (q, r) in &s.reached {
                        if &q.broker == group {
                            let below = s.refill_below.entry(q.clone()).or_default();
                            *below = (*below).max(*r);
                        }
                    }
                }
            }
            Event::LockGranted {
                group,
                queue,
                client,
                expire_ms,
            } => {
                // The broker grants a live lock to nobody else.
                let holder = live_holder(&s.locks, group, queue, r.ts);
                j.judge(
                    "ordered_lock_exclusive",
                    i,
                    ordered_lock_exclusive(client, &queue_name(queue), holder.as_deref()),
                );
                s.orderly.insert((group.clone(), queue.topic.clone()));
                s.locks.insert(
                    (group.clone(), queue.clone()),
                    (client.clone(), r.ts, *expire_ms),
                );
            }
            Event::BrokerStarted { name, .. } => {
                // A (re)started broker's lock table is empty: its locks are gone — though their
                // holders may still consume under their local locks.
                let (gone, kept) = std::mem::take(&mut s.locks)
                    .into_iter()
                    .partition(|((_, q), _)| &q.broker == name);
                s.locks = kept;
                s.stale_locks.extend(gone);
            }
            Event::LockReleased {
                group,
                queue,
                client,
            } => {
                let key = (group.clone(), queue.clone());
                if s.locks.get(&key).is_some_and(|(h, _, _)| h == client) {
                    s.locks.remove(&key);
                }
            }
            Event::PutAnswered {
                log_end,
                flushed,
                slave_acked,
                flush,
                role,
                code,
            } => {
                if let (Some(flush), Some(role)) = (flush_of(flush), role_of(role)) {
                    let progress = PutProgress {
                        end: *log_end,
                        flushed: *flushed,
                        slave_acked: *slave_acked,
                        timed_out: false,
                    };
                    j.judge(
                        "ack_after_durable",
                        i,
                        ack_after_durable(flush, role, progress, *code == 0),
                    );
                }
            }
            Event::Stored { queue, offset, .. } => {
                if let Some(end @ None) = s.recovered.get_mut(queue) {
                    *end = Some(*offset);
                }
            }
            Event::Mark { .. } | Event::OffsetStored { .. } | Event::FaultUpdated { .. } => {}
        }
    }
    let end = records.len().saturating_sub(1);
    let owed: BTreeSet<String> = s.acked.difference(&s.excused).cloned().collect();
    if opts.drained_at_end && !records.is_empty() {
        j.judge(
            "acked_not_lost",
            end,
            acked_not_lost(&owed, Some(&s.delivered)),
        );
    }
    m.undelivered_at_end = owed.difference(&s.delivered).count() as u64;
    m.lost_excused = s.excused.difference(&s.delivered).count() as u64;
    m.consumed = s.delivered.len() as u64;
    // offset_not_past_unconsumed: at each commit, the acknowledged messages below it (from the
    // group's first start on) were delivered before it.
    for (i, group, queue, offset) in &s.commit_log {
        let Some(acked) = s.acked_at.get(queue) else {
            continue;
        };
        let start = s
            .starts
            .get(&(group.clone(), queue.clone()))
            .copied()
            .unwrap_or(0);
        let first_unconsumed = acked
            .range(start..(*offset).max(start))
            .filter(|(_, id)| !s.excused.contains(*id))
            .map(|(o, _)| *o)
            .find(|o| {
                s.delivered_at
                    .get(&(group.clone(), (queue.clone(), *o)))
                    .is_none_or(|at| at > i)
            })
            .unwrap_or(*offset);
        j.judge(
            "offset_not_past_unconsumed",
            *i,
            offset_not_past_unconsumed(*offset, first_unconsumed),
        );
    }
    Report {
        records: records.len(),
        nodes: nodes.len(),
        reordered: 0,
        gaps: 0,
        restarts: 0,
        verdicts: j.verdicts,
        measured: m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_trace::{BrokerAddr, Route, RouteBroker, RouteQueues, SCHEMA_VERSION};

    /// Records in order, numbered per node, a millisecond apart.
    fn trace(events: Vec<(&str, Event)>) -> Vec<Record> {
        let mut seqs: HashMap<String, u64> = HashMap::new();
        events
            .into_iter()
            .enumerate()
            .map(|(i, (node, event))| {
                let seq = seqs.entry(node.to_owned()).or_default();
                *seq += 1;
                Record {
                    v: SCHEMA_VERSION,
                    node: node.into(),
                    seq: *seq,
                    ts: 1_000 * i as u64,
                    event,
                }
            })
            .collect()
    }

    fn route(brokers: &[(&str, &str)]) -> Route {
        Route {
            brokers: brokers
                .iter()
                .map(|(name, addr)| RouteBroker {
                    cluster: "C".into(),
                    name: (*name).into(),
                    addrs: vec![BrokerAddr {
                        id: 0,
                        addr: (*addr).to_string(),
                    }],
                })
                .collect(),
            queues: brokers
                .iter()
                .map(|(name, _)| RouteQueues {
                    broker: (*name).into(),
                    read: 2,
                    write: 2,
                    perm: 6,
                })
                .collect(),
            order: None,
        }
    }

    fn q(broker: &str, id: u32) -> Queue {
        Queue {
            topic: "T".into(),
            broker: broker.into(),
            id,
        }
    }

    fn verdict(records: &[Record], name: &str) -> (u64, u64) {
        let r = check(records, &Options::default());
        let v = r.verdict(name).unwrap();
        (v.judged, v.violations)
    }

    const NS: &str = "namesrv@1";

    fn registered(addr: &str, name: &str, now: u64) -> (&'static str, Event) {
        (
            NS,
            Event::BrokerRegistered {
                cluster: "C".into(),
                broker: name.into(),
                id: 0,
                addr: addr.into(),
                topics: vec!["T".into()],
                timeout: None,
                now,
            },
        )
    }

    fn served(brokers: &[(&str, &str)], now: u64) -> (&'static str, Event) {
        (
            NS,
            Event::RouteServed {
                topic: "T".into(),
                route: Some(route(brokers)),
                now,
            },
        )
    }

    fn started() -> (&'static str, Event) {
        (
            NS,
            Event::NamesrvStarted {
                expiry: 100,
                scan: 25,
                now: 0,
            },
        )
    }

    #[test]
    fn route_integrity_and_expiry_from_what_the_namesrv_recorded() {
        let good = trace(vec![
            started(),
            registered("a:1", "a", 0),
            served(&[("a", "a:1")], 10),
        ]);
        assert_eq!(verdict(&good, "route_integrity"), (1, 0));
        assert_eq!(verdict(&good, "expiry_bounded"), (1, 0));
        // Listing a broker that left.
        let left = trace(vec![
            started(),
            registered("a:1", "a", 0),
            (
                NS,
                Event::BrokerUnregistered {
                    cluster: "C".into(),
                    addr: "a:1".into(),
                    why: "request".into(),
                    now: 5,
                },
            ),
            served(&[("a", "a:1")], 10),
        ]);
        assert_eq!(verdict(&left, "route_integrity"), (1, 1));
        // Listing a broker silent past expiry + scan.
        let silent = trace(vec![
            started(),
            registered("a:1", "a", 0),
            served(&[("a", "a:1")], 126),
        ]);
        assert_eq!(verdict(&silent, "expiry_bounded"), (1, 1));
        // A broker that asked for a longer heartbeat timeout is not silent too long yet.
        let own = trace(vec![
            started(),
            (
                NS,
                Event::BrokerRegistered {
                    cluster: "C".into(),
                    broker: "a".into(),
                    id: 0,
                    addr: "a:1".into(),
                    topics: vec!["T".into()],
                    timeout: Some(300),
                    now: 0,
                },
            ),
            served(&[("a", "a:1")], 200),
        ]);
        assert_eq!(verdict(&own, "expiry_bounded"), (1, 0));
        // Without the NameServer's start nothing is judged (its live set is unknown).
        let late = trace(vec![registered("a:1", "a", 0), served(&[("b", "b:1")], 10)]);
        assert_eq!(verdict(&late, "route_integrity"), (0, 0));
    }

    fn attempt(send: u64, n: u32, broker: &str, outcome: SendOutcome) -> (&'static str, Event) {
        (
            "client",
            Event::SendAttempt {
                group: "pg".into(),
                send,
                attempt: n,
                msg_id: format!("m{send}"),
                queue: q(broker, 0),
                addr: format!("{broker}:1"),
                route_version: 1,
                outcome,
                offset: Some(send),
                code: None,
                latency_us: 10,
            },
        )
    }

    fn refreshed(brokers: &[(&str, &str)]) -> (&'static str, Event) {
        (
            "client",
            Event::RouteRefreshed {
                topic: "T".into(),
                route: route(brokers),
                from_default: false,
                version: 1,
            },
        )
    }

    #[test]
    fn a_retry_of_the_broker_that_failed_is_caught() {
        let both = [("a", "a:1"), ("b", "b:1")];
        let good = trace(vec![
            refreshed(&both),
            attempt(1, 1, "a", SendOutcome::Network),
            attempt(1, 2, "b", SendOutcome::Ok),
        ]);
        assert_eq!(verdict(&good, "no_send_to_expired_broker"), (2, 0));
        assert_eq!(verdict(&good, "slave_read_only"), (1, 0));
        let same = trace(vec![
            refreshed(&both),
            attempt(1, 1, "a", SendOutcome::Network),
            attempt(1, 2, "a", SendOutcome::Ok),
        ]);
        assert_eq!(verdict(&same, "no_send_to_expired_broker"), (2, 1));
        // With one broker only, retrying it is all a producer can do.
        let alone = trace(vec![
            refreshed(&[("a", "a:1")]),
            attempt(1, 1, "a", SendOutcome::Network),
            attempt(1, 2, "a", SendOutcome::Ok),
        ]);
        assert_eq!(verdict(&alone, "no_send_to_expired_broker"), (2, 0));
        // A broker the route does not list.
        let outside = trace(vec![
            refreshed(&[("a", "a:1")]),
            attempt(1, 1, "b", SendOutcome::Ok),
        ]);
        assert_eq!(verdict(&outside, "no_send_to_expired_broker"), (1, 1));
        // A hostile route (4 billion queues) is not held, so nothing is built from it.
        let mut huge = route(&[("a", "a:1")]);
        huge.queues[0].write = u32::MAX;
        let hostile = trace(vec![
            (
                "client",
                Event::RouteRefreshed {
                    topic: "T".into(),
                    route: huge,
                    from_default: false,
                    version: 1,
                },
            ),
            attempt(1, 1, "a", SendOutcome::Ok),
        ]);
        assert_eq!(verdict(&hostile, "no_send_to_expired_broker"), (0, 0));
        let r = check(&same, &Options::default());
        assert_eq!(r.measured.failed_attempts, 1);
        assert!(!r.ok());
        assert!(r.to_string().contains("VIOLATED"), "{r}");
    }

    fn rebalance(node: &'static str, allocated: Vec<Queue>) -> (&'static str, Event) {
        (
            node,
            Event::Rebalance {
                group: "g".into(),
                topic: "T".into(),
                strategy: "AVG".into(),
                members: vec!["c1".into(), "c2".into()],
                queues: vec![q("a", 0), q("a", 1)],
                allocated,
            },
        )
    }

    #[test]
    fn queue_owned_once_on_allocations_and_on_pulls() {
        let good = trace(vec![
            rebalance("c1", vec![q("a", 0)]),
            rebalance("c2", vec![q("a", 1)]),
        ]);
        assert_eq!(
            verdict(&good, "queue_owned_once"),
            (1, 0),
            "judged once stable"
        );
        let both = trace(vec![
            rebalance("c1", vec![q("a", 0)]),
            rebalance("c2", vec![q("a", 0)]),
        ]);
        assert_eq!(verdict(&both, "queue_owned_once"), (1, 1));
        let added = |node| {
            (
                node,
                Event::QueueAdded {
                    group: "g".into(),
                    queue: q("a", 0),
                    offset: 0,
                },
            )
        };
        let pull = |node| {
            (
                node,
                Event::Pull {
                    group: "g".into(),
                    queue: q("a", 0),
                    offset: 0,
                    found: 1,
                    next: 1,
                },
            )
        };
        let dropped = (
            "c1",
            Event::QueueDropped {
                group: "g".into(),
                queue: q("a", 0),
            },
        );
        let owned = trace(vec![added("c1"), pull("c1")]);
        assert_eq!(verdict(&owned, "queue_owned_once"), (1, 0));
        let after_drop = trace(vec![added("c1"), pull("c1"), dropped, pull("c1")]);
        assert_eq!(verdict(&after_drop, "queue_owned_once"), (2, 1));
        let overlap = trace(vec![
            added("c1"),
            added("c2"),
            (
                "c1",
                Event::QueueDropped {
                    group: "g".into(),
                    queue: q("a", 0),
                },
            ),
        ]);
        let r = check(&overlap, &Options::default());
        assert_eq!(
            (r.measured.double_owners, r.measured.double_owner_ms),
            (1, 1)
        );
    }

    fn granted(to: &str) -> (&'static str, Event) {
        (
            "broker@a",
            Event::LockGranted {
                group: "g".into(),
                queue: q("a", 0),
                client: to.into(),
                expire_ms: 60_000,
            },
        )
    }

    fn consumed_by(node: &'static str, offset: u64) -> (&'static str, Event) {
        let (_, e) = consumed(offset);
        (node, e)
    }

    #[test]
    fn ordered_lock_exclusive_judges_grants_and_orderly_deliveries() {
        // c1 holds the lock and consumes; it releases; c2 takes it and consumes.
        let good = trace(vec![
            granted("c1"),
            consumed_by("c1", 0),
            (
                "broker@a",
                Event::LockReleased {
                    group: "g".into(),
                    queue: q("a", 0),
                    client: "c1".into(),
                },
            ),
            granted("c2"),
            consumed_by("c2", 1),
        ]);
        assert_eq!(verdict(&good, "ordered_lock_exclusive"), (4, 0));
        // A grant to c2 while c1's lock is live, and c1 consuming while c2 holds it.
        let two = trace(vec![granted("c1"), granted("c2"), consumed_by("c1", 0)]);
        assert_eq!(verdict(&two, "ordered_lock_exclusive"), (3, 2));
        // Without any lock on the topic the group is not orderly: nothing judged.
        let concurrent = trace(vec![consumed_by("c1", 0), consumed_by("c2", 1)]);
        assert_eq!(verdict(&concurrent, "ordered_lock_exclusive"), (0, 0));
    }

    fn consumed(offset: u64) -> (&'static str, Event) {
        (
            "c1",
            Event::Consumed {
                group: "g".into(),
                queue: q("a", 0),
                offset,
                msg_id: format!("m{offset}"),
            },
        )
    }

    fn committed(offset: u64) -> (&'static str, Event) {
        (
            "c1",
            Event::OffsetCommitted {
                group: "g".into(),
                queue: q("a", 0),
                offset,
            },
        )
    }

    fn drained() -> (&'static str, Event) {
        (
            "test",
            Event::Mark {
                label: DRAINED.into(),
            },
        )
    }

    #[test]
    fn acked_messages_must_be_consumed_and_commits_must_not_pass_them() {
        let sent = |n| attempt(n, 1, "a", SendOutcome::Ok);
        let refresh = refreshed(&[("a", "a:1")]);
        let good = trace(vec![
            refresh.clone(),
            sent(0),
            sent(1),
            consumed(0),
            consumed(1),
            committed(2),
            drained(),
        ]);
        assert_eq!(verdict(&good, "acked_not_lost"), (1, 0));
        assert_eq!(verdict(&good, "offset_not_past_unconsumed"), (1, 0));
        let lost = trace(vec![
            refresh.clone(),
            sent(0),
            sent(1),
            consumed(0),
            drained(),
        ]);
        assert_eq!(verdict(&lost, "acked_not_lost"), (1, 1));
        let passed = trace(vec![
            refresh.clone(),
            sent(0),
            sent(1),
            consumed(0),
            committed(2),
            consumed(1),
        ]);
        assert_eq!(verdict(&passed, "offset_not_past_unconsumed"), (1, 1));
        let back = trace(vec![committed(5), committed(3)]);
        assert_eq!(verdict(&back, "offsets_monotonic"), (2, 1));
        let dup = trace(vec![consumed(0), consumed(0)]);
        assert_eq!(check(&dup, &Options::default()).measured.duplicates, 1);
    }

    fn put(
        flush: &str,
        role: &str,
        flushed: u64,
        slave_acked: Option<u64>,
        code: i32,
    ) -> (&'static str, Event) {
        (
            "broker@a",
            Event::PutAnswered {
                log_end: 100,
                flushed,
                slave_acked,
                flush: flush.into(),
                role: role.into(),
                code,
            },
        )
    }

    #[test]
    fn ack_after_durable_judges_each_answered_put_by_its_modes() {
        let (sync, asy, master, smaster) =
            ("SYNC_FLUSH", "ASYNC_FLUSH", "ASYNC_MASTER", "SYNC_MASTER");
        // Acknowledged once the modes have what they require: flushed past the put for
        // SYNC_FLUSH, held by an in-sync slave for SYNC_MASTER, nothing more for the async modes.
        let good = trace(vec![
            put(sync, master, 100, None, 0),
            put(asy, master, 0, None, 0),
            put(asy, smaster, 0, Some(100), 0),
            put(sync, smaster, 100, Some(100), 0),
        ]);
        assert_eq!(verdict(&good, "ack_after_durable"), (4, 0));
        // Acknowledged too early: one short of the flush, one short at the slave, no slave.
        let early = trace(vec![
            put(sync, master, 99, None, 0),
            put(asy, smaster, 100, Some(99), 0),
            put(asy, smaster, 100, None, 0),
        ]);
        let r = check(&early, &Options::default());
        let v = r.verdict("ack_after_durable").unwrap();
        assert_eq!((v.judged, v.violations), (3, 3), "{r}");
        // The same puts answered with an error (FLUSH_DISK_TIMEOUT 10, SLAVE_NOT_AVAILABLE 12)
        // promised nothing; an unknown mode is not judged.
        let refused = trace(vec![
            put(sync, master, 99, None, 10),
            put(asy, smaster, 100, None, 12),
            put("NO_SUCH_FLUSH", master, 0, None, 0),
        ]);
        assert_eq!(verdict(&refused, "ack_after_durable"), (2, 0));
    }
}
