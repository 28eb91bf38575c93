//! Bounded exhaustive checks of the model core.
//!
//! Where the property tests of `model/` sample large random inputs, these enumerate *every* small
//! configuration up to a size (small-scope hypothesis: most logic bugs show up in small cases) and
//! evaluate the predicates of `sextant_model::invariants` on each.

use std::collections::{BTreeMap, BTreeSet};

use sextant_model::Millis;
use sextant_model::consumer::{
    AllocateStrategy, Averagely, AveragelyByCircle, ByMachineRoom, ConsistentHash, GroupView,
    MachineRoomNearby,
};
use sextant_model::invariants::{expiry_bounded, queue_owned_once, route_integrity};
use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, SendAttempts, SendIndex, SendPolicy, SendStep, TopicPublishInfo,
};
use sextant_model::route::{MessageQueue, TopicRouteData};

use crate::{Check, Counter, Outcome};

/// The checks of this module.
pub fn checks() -> Vec<Check> {
    vec![
        Check::core(
            "allocation_partition",
            "queue_owned_once",
            "6 strategies x 1-3 brokers x 0-8 queues each x 0-7 consumers, 2 rooms",
            allocation_partition,
        ),
        Check::core(
            "allocation_balance",
            "sizes differ by <= 1",
            "averagely and by-circle over the same configurations",
            allocation_balance,
        ),
        Check::core(
            "consistent_hash_churn",
            "only the leaver's queues move",
            "1-64 queues x 2-8 consumers x every leaver",
            consistent_hash_churn,
        ),
        Check::core(
            "retry_avoids_failed_broker",
            "no_send_to_expired_broker",
            "1-4 brokers x 1-4 queues x every dead broker x every start index, fault tolerance off/on",
            retry_avoids_failed_broker,
        ),
        Check::core(
            "fault_tolerance_available_first",
            "no unavailable pick while one other than the failed is available; a retry avoids the failed broker",
            "2-4 brokers x 1-3 queues x every isolated subset x every start index x every last broker",
            fault_tolerance_available_first,
        ),
        Check::core(
            "broker_lock_paths",
            "ordered_lock_exclusive",
            "every sequence of 6 events (lock, unlock by 2 clients on 2 queues, 40 ms passing) on the broker's LockTable, 100 ms expiry",
            broker_lock_paths,
        ),
        Check::core(
            "pull_offsets_bounded",
            "a pull reads and moves only within the queue",
            "every requested offset x queue [min, max) within 0..12, master and slave, then send-back for 0-20 reconsumes x max 0-20 x level -1..20",
            pull_offsets_bounded,
        ),
        Check::core(
            "broker_tables_bounded",
            "client-keyed tables stay within their bounds",
            "every sequence of 5 group asks of 4 names (cap 2); every lock request of 2 groups (live/dead) x 3 topics (1 missing) x queues 0-3 x 2 brokers; every pull of queue -1..4 x 1-3 read queues x 8 flags x master/slave; every commit of queue -1..4 x offset -1..2 x known/unknown; every redelivery of 7 topics x qid -1..4",
            broker_tables_bounded,
        ),
        Check::core(
            "route_table_paths",
            "route_integrity + expiry_bounded",
            "every sequence of 6 events over 2 broker groups (master+slave), 120 s expiry, 5 s scans",
            route_table_paths,
        ),
    ]
}

const ROOMS: usize = 2;

/// Every (view, strategy) of the allocation checks, with the queues the strategy shares out.
fn allocation_cases(
    mut f: impl FnMut(&GroupView, &dyn AllocateStrategy, &str) -> Result<(), String>,
) -> Result<(), String> {
    let strategies: Vec<Box<dyn AllocateStrategy>> = vec![
        Box::new(Averagely),
        Box::new(AveragelyByCircle),
        Box::new(ConsistentHash::default()),
        Box::new(ByMachineRoom {
            consumer_idcs: ["room0".to_string()].into(),
        }),
        Box::new(MachineRoomNearby::new(Box::new(Averagely))),
        Box::new(MachineRoomNearby::new(Box::new(AveragelyByCircle))),
    ];
    for brokers in 1..=3usize {
        for per_broker in 0..=8u32 {
            for consumers in 0..=7usize {
                let queues = (0..brokers).flat_map(|b| {
                    (0..per_broker).map(move |q| {
                        MessageQueue::new("T", &format!("room{}@broker-{b}", b % ROOMS), q)
                    })
                });
                let view = GroupView::new(
                    queues,
                    (0..consumers).map(|c| format!("room{}@c{c}", c % ROOMS)),
                );
                for s in &strategies {
                    let desc = format!(
                        "{} with {brokers}x{per_broker} queues, {consumers} consumers",
                        s.name()
                    );
                    f(&view, s.as_ref(), &desc)?;
                }
            }
        }
    }
    Ok(())
}

fn allocation_partition(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let result = allocation_cases(|view, s, desc| {
        c.case();
        if view.queues().is_empty() || view.consumers().is_empty() {
            // RocketMQ refuses to allocate here; every member must get the error.
            return match view
                .consumers()
                .iter()
                .find(|cid| s.allocate(view, cid).is_ok())
            {
                Some(cid) => Err(format!("{desc}: {cid} allocated from an empty view")),
                None => Ok(()),
            };
        }
        let shares = view.allocate_all(s).map_err(|e| format!("{desc}: {e}"))?;
        let expected: BTreeSet<MessageQueue> = match s.name().as_str() {
            "MACHINE_ROOM" => ByMachineRoom {
                consumer_idcs: ["room0".to_string()].into(),
            }
            .eligible(view)
            .into_iter()
            .cloned()
            .collect(),
            _ => view.queues().iter().cloned().collect(),
        };
        queue_owned_once(view, &shares, &expected).map_err(|v| format!("{desc}: {v}"))
    });
    c.finish(result)
}

fn allocation_balance(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let result = allocation_cases(|view, s, desc| {
        let name = s.name();
        if !(name == "AVG" || name == "AVG_BY_CIRCLE")
            || view.queues().is_empty()
            || view.consumers().is_empty()
        {
            return Ok(());
        }
        c.case();
        let sizes: Vec<usize> = view
            .allocate_all(s)
            .map_err(|e| e.to_string())?
            .values()
            .map(Vec::len)
            .collect();
        let (min, max) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        if max - min > 1 {
            return Err(format!("{desc}: share sizes {sizes:?}"));
        }
        Ok(())
    });
    c.finish(result)
}

fn consistent_hash_churn(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let s = ConsistentHash::default();
    let owners = |view: &GroupView| -> Result<BTreeMap<MessageQueue, String>, String> {
        Ok(view
            .allocate_all(&s)
            .map_err(|e| e.to_string())?
            .into_iter()
            .flat_map(|(cid, qs)| qs.into_iter().map(move |q| (q, cid.clone())))
            .collect())
    };
    let mut run = || -> Result<(), String> {
        for n in 1..=64u32 {
            let queues: Vec<_> = (0..n)
                .map(|q| MessageQueue::new("T", &format!("broker-{}", q % 3), q))
                .collect();
            for members in 2..=8usize {
                let ids: Vec<String> = (0..members)
                    .map(|m| format!("10.0.0.{m}@{}", 1000 + m))
                    .collect();
                let before = owners(&GroupView::new(queues.clone(), ids.clone()))?;
                for leaver in &ids {
                    c.case();
                    let after = owners(&GroupView::new(
                        queues.clone(),
                        ids.iter().filter(|i| *i != leaver).cloned(),
                    ))?;
                    for (q, owner) in &before {
                        let moved = after[q] != *owner;
                        if moved != (owner == leaver) {
                            return Err(format!(
                                "{n} queues, {members} members, {leaver} leaves: {q:?} moved={moved}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let result = run();
    c.finish(result)
}

fn route_of(brokers: usize, queues: u32) -> TopicRouteData {
    let names: Vec<(String, String)> = (0..brokers)
        .map(|b| (format!("broker-{b}"), format!("broker-{b}:10911")))
        .collect();
    TopicRouteData::of_masters(
        "C",
        names.iter().map(|(n, a)| (n.as_str(), a.as_str())),
        queues,
    )
}

fn retry_avoids_failed_broker(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let mut run = || -> Result<(), String> {
        for brokers in 1..=4usize {
            for queues in 1..=4u32 {
                let info = TopicPublishInfo::from_route("T", &route_of(brokers, queues));
                for dead in 0..brokers {
                    let dead = format!("broker-{dead}");
                    for start in 0..info.message_queues.len() as u32 {
                        for enabled in [false, true] {
                            c.case();
                            let mut strategy = FaultStrategy::new(enabled);
                            let mut index = SendIndex::starting_at(start);
                            let mut now: Millis = 0;
                            // A few sends in a row, so fault items from earlier sends are in play.
                            for _ in 0..3 {
                                let mut send = SendAttempts::new(SendPolicy::default(), now);
                                let mut failed: Option<String> = None;
                                loop {
                                    let mq = send
                                        .next_target(&info, &mut strategy, &mut index, now)
                                        .map_err(|e| e.to_string())?;
                                    if brokers > 1 && failed.as_deref() == Some(&*mq.broker_name) {
                                        return Err(format!(
                                            "{brokers}x{queues}, dead {dead}, start {start}, ft {enabled}: retry went back to {}",
                                            mq.broker_name
                                        ));
                                    }
                                    now += 5;
                                    let fails = *mq.broker_name == *dead;
                                    let outcome = if fails {
                                        AttemptOutcome::Remoting
                                    } else {
                                        AttemptOutcome::Ok
                                    };
                                    match send.on_outcome(&mq, outcome, 5, &mut strategy, now) {
                                        SendStep::Retry => {
                                            failed = Some(mq.broker_name.to_string())
                                        }
                                        SendStep::Done => break,
                                        SendStep::Failed(e) if brokers == 1 => {
                                            let _ = e;
                                            break;
                                        }
                                        SendStep::Failed(e) => {
                                            return Err(format!(
                                                "{brokers}x{queues}, dead {dead}: send failed: {e}"
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let result = run();
    c.finish(result)
}

fn fault_tolerance_available_first(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let mut run = || -> Result<(), String> {
        for brokers in 2..=4usize {
            for queues in 1..=3u32 {
                let info = TopicPublishInfo::from_route("T", &route_of(brokers, queues));
                for isolated in 0u32..(1 << brokers) {
                    let mut strategy = FaultStrategy::new(true);
                    for b in (0..brokers).filter(|b| isolated & (1 << b) != 0) {
                        strategy.update(&format!("broker-{b}"), 100, true, true, 0);
                    }
                    for last in std::iter::once(None).chain((0..brokers).map(Some)) {
                        let last = last.map(|l| format!("broker-{l}"));
                        for start in 0..info.message_queues.len() as u32 {
                            c.case();
                            let mut index = SendIndex::starting_at(start);
                            let mq = strategy
                                .select(&info, last.as_deref(), &mut index, 1)
                                .ok_or("no queue selected")?;
                            let available = |b: &str| strategy.tolerance.is_available(b, 1);
                            let any_available = info.brokers().any(available);
                            let other_available = info
                                .brokers()
                                .any(|b| available(b) && Some(b) != last.as_deref());
                            // RocketMQ 5.1.4+'s order (5.x tables, the default): when the
                            // only available broker is the one that just failed, a reachable
                            // other broker wins over it.
                            let avoid_last = last.is_some()
                                && !other_available
                                && info.brokers().any(|b| Some(b) != last.as_deref());
                            if avoid_last && Some(&*mq.broker_name) == last.as_deref() {
                                return Err(format!(
                                    "isolated {isolated:b}: retried the last broker {mq:?}"
                                ));
                            }
                            if any_available && !avoid_last && !available(&mq.broker_name) {
                                return Err(format!(
                                    "isolated {isolated:b}: picked unavailable {mq:?}"
                                ));
                            }
                            if other_available && Some(&*mq.broker_name) == last.as_deref() {
                                return Err(format!(
                                    "isolated {isolated:b}: picked last broker {mq:?}"
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let result = run();
    c.finish(result)
}

/// The events of the route-table exploration.
#[derive(Clone, Copy, Debug)]
enum Event {
    RegisterMaster(usize),
    RegisterSlave(usize),
    Heartbeat(usize, u64),
    Close(usize, u64),
    UnregisterSlave(usize),
    Advance,
}

const EVENTS: [Event; 8] = [
    Event::RegisterMaster(0),
    Event::RegisterSlave(0),
    Event::RegisterMaster(1),
    Event::Heartbeat(0, 0),
    Event::Heartbeat(0, 1),
    Event::Close(0, 0),
    Event::UnregisterSlave(0),
    Event::Advance,
];
const DEPTH: usize = 6;
const ADVANCE: Millis = 61_000;

fn addr(group: usize, id: u64) -> String {
    format!("10.0.{group}.{id}:10911")
}

struct Explorer<'a, 'b> {
    counter: &'a mut Counter<'b>,
    path: Vec<Event>,
}

impl Explorer<'_, '_> {
    fn explore(
        &mut self,
        table: &RouteTable,
        seen: &BTreeMap<String, Millis>,
        now: Millis,
    ) -> Result<(), String> {
        if self.path.len() == DEPTH {
            return Ok(());
        }
        for ev in EVENTS {
            self.counter.case();
            let (mut t, mut seen, mut now) = (table.clone(), seen.clone(), now);
            match ev {
                Event::RegisterMaster(g) | Event::RegisterSlave(g) => {
                    let id = u64::from(matches!(ev, Event::RegisterSlave(_)));
                    let reg =
                        BrokerRegistration::new("C", &format!("broker-{g}"), id, &addr(g, id))
                            .with_topics([
                                TopicConfig::new("T", 2),
                                TopicConfig::new(&format!("only-{g}"), 1),
                            ]);
                    if t.register(&reg, now).is_ok() {
                        seen.insert(addr(g, id), now);
                    }
                }
                Event::Heartbeat(g, id) => {
                    if t.heartbeat("C", &addr(g, id), now) {
                        seen.insert(addr(g, id), now);
                    }
                }
                Event::Close(g, id) => {
                    t.channel_closed("C", &addr(g, id));
                }
                Event::UnregisterSlave(g) => {
                    t.unregister("C", &addr(g, 1), &format!("broker-{g}"));
                }
                Event::Advance => {
                    let scan = t.config().scan_interval;
                    let mut s = (now / scan + 1) * scan;
                    now += ADVANCE;
                    while s <= now {
                        t.scan_expired(s);
                        s += scan;
                    }
                }
            }
            self.path.push(ev);
            let bound = t.config().broker_expiry + t.config().scan_interval;
            let check = || -> Result<(), String> {
                for topic in t.topics() {
                    if let Some(route) = t.route(&topic) {
                        route_integrity(&t, &route).map_err(|v| v.to_string())?;
                    }
                }
                expiry_bounded(&t, &seen, bound, now).map_err(|v| v.to_string())
            };
            if let Err(e) = check() {
                return Err(format!("after {:?}: {e}", self.path));
            }
            self.explore(&t, &seen, now)?;
            self.path.pop();
        }
        Ok(())
    }
}

fn route_table_paths(tick: &mut dyn FnMut()) -> Outcome {
    let mut c = Counter::new(tick);
    let table = RouteTable::new(NamesrvConfig::default());
    let result = Explorer {
        counter: &mut c,
        path: Vec::new(),
    }
    .explore(&table, &BTreeMap::new(), 0);
    c.finish(result)
}

const LOCK_DEPTH: usize = 6;
const LOCK_EXPIRE: Millis = 100;

/// Every path of lock events over the broker's real `LockTable`: a queue held by a live client is
/// never granted to another, its holder always renews it, an unlock by a non-holder changes
/// nothing, and a lock not renewed for longer than the expiry is free.
fn broker_lock_paths(tick: &mut dyn FnMut()) -> Outcome {
    use sextant_model::broker::LockTable;
    fn walk(
        c: &mut Counter<'_>,
        table: &LockTable,
        now: Millis,
        path: &mut Vec<String>,
    ) -> Result<(), String> {
        if path.len() == LOCK_DEPTH {
            return Ok(());
        }
        let mqs = [
            MessageQueue::new("T", "broker-a", 0),
            MessageQueue::new("T", "broker-a", 1),
        ];
        // 0..8: (client, queue, lock/unlock); 8: time passes.
        for event in 0..9 {
            c.case();
            let mut t = table.clone();
            let mut at = now;
            let step = if event == 8 {
                at += 40;
                "+40ms".to_string()
            } else {
                let client = format!("c{}", event / 4);
                let mq = &mqs[(event / 2) % 2];
                let before = t.holder("G", mq, at).map(str::to_owned);
                if event % 2 == 0 {
                    let granted = t
                        .try_lock_batch("G", std::slice::from_ref(mq), &client, at)
                        .contains(mq);
                    let want = before.as_deref().is_none_or(|h| h == client);
                    if granted != want {
                        return Err(format!(
                            "{}: lock q{} by {client} granted={granted} while held by {before:?}",
                            path.join(" "),
                            mq.queue_id
                        ));
                    }
                } else {
                    t.unlock_batch("G", std::slice::from_ref(mq), &client);
                    let after = t.holder("G", mq, at).map(str::to_owned);
                    let want = if before.as_deref() == Some(client.as_str()) {
                        None
                    } else {
                        before.clone()
                    };
                    if after != want {
                        return Err(format!(
                            "{}: unlock q{} by {client} left {after:?}, expected {want:?}",
                            path.join(" "),
                            mq.queue_id
                        ));
                    }
                }
                format!(
                    "{}({client},q{})",
                    if event % 2 == 0 { "lock" } else { "unlock" },
                    mq.queue_id
                )
            };
            // A lock older than the expiry is free at `at`.
            for mq in &mqs {
                if let Some(h) = t.holder("G", mq, at)
                    && t.holder("G", mq, at + LOCK_EXPIRE + 1).is_some()
                {
                    return Err(format!(
                        "{}: q{} held by {h} never expires",
                        path.join(" "),
                        mq.queue_id
                    ));
                }
            }
            path.push(step);
            walk(c, &t, at, path)?;
            path.pop();
        }
        Ok(())
    }
    let mut c = Counter::new(tick);
    let result = walk(&mut c, &LockTable::new(LOCK_EXPIRE), 0, &mut Vec::new());
    c.finish(result)
}

/// Every pull position in a small queue, and every send-back decision in range.
fn pull_offsets_bounded(tick: &mut dyn FnMut()) -> Outcome {
    use sextant_model::broker::{
        GetStatus, PullCode, SendBackTarget, locate, pull_code, send_back_target, suspend,
    };
    let mut c = Counter::new(tick);
    let mut check = || -> Result<(), String> {
        for correct in [true, false] {
            for min in 0..12u64 {
                for max in min..12u64 {
                    let (min, max) = if max == 0 { (0, 0) } else { (min, max) };
                    for offset in 0..14u64 {
                        c.case();
                        let case = format!("offset {offset} in [{min}, {max}) correct={correct}");
                        match locate(offset, min, max, correct) {
                            Ok(()) if !(min <= offset && offset < max) => {
                                return Err(format!("{case}: reads outside the queue"));
                            }
                            Ok(()) => {}
                            Err((status, next)) => {
                                if min <= offset && offset < max {
                                    return Err(format!("{case}: {status:?} for a stored offset"));
                                }
                                if correct && !(min <= next && next <= max) {
                                    return Err(format!("{case}: moved to {next}"));
                                }
                                if !correct && next != offset {
                                    return Err(format!("{case}: a slave moved it to {next}"));
                                }
                                let code = pull_code(status, offset);
                                if suspend(code, true, true) != (code == PullCode::NoNewMessage) {
                                    return Err(format!("{case}: held a {code:?}"));
                                }
                                if status == GetStatus::OffsetOverflowOne && next != offset {
                                    return Err(format!("{case}: moved a caught-up consumer"));
                                }
                            }
                        }
                    }
                }
            }
        }
        for times in 0..=20 {
            for max in 0..=20 {
                for level in -1..=20 {
                    c.case();
                    let t = send_back_target(times, max, level);
                    let dlq = times >= max || level < 0;
                    match t {
                        SendBackTarget::DeadLetter if dlq => {}
                        SendBackTarget::Retry { delay_level } if !dlq && delay_level > 0 => {}
                        other => {
                            return Err(format!(
                                "send-back after {times} of {max} at level {level}: {other:?}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let result = check();
    c.finish(result)
}

/// What clients can make the broker keep, over every small request: the subscription group
/// table never passes its cap and always finds a known group; locks are granted only on queues
/// that exist on this broker, for groups with a live member; a pull plan reads only queues the
/// topic has; offsets are kept only for known groups and queues below the read queue count; a
/// redelivery never targets a topic closed to sends or a queue the topic lacks.
fn broker_tables_bounded(tick: &mut dyn FnMut()) -> Outcome {
    use sextant_model::broker::admit::{NOT_ALLOWED_SEND_TOPICS, redelivery_target};
    use sextant_model::broker::pull::{PullBroker, PullRequest, plan_pull};
    use sextant_model::broker::tables::{SubscriptionGroups, admit_commit, lockable};
    use sextant_model::route::Perm;
    let mut c = Counter::new(tick);
    let mut check = || -> Result<(), String> {
        // Every sequence of 5 asks over 4 names, cap 2.
        let names = ["a", "b", "c", "d"];
        for seq in 0..4usize.pow(5) {
            c.case();
            let mut t = SubscriptionGroups::new(2, true);
            let mut x = seq;
            for _ in 0..5 {
                let g = names[x % 4];
                x /= 4;
                let known = t.contains(g);
                let found = t.find_or_create(g).is_ok();
                if t.len() > 2 {
                    return Err(format!(
                        "sequence {seq}: {} groups over a cap of 2",
                        t.len()
                    ));
                }
                if known && !found {
                    return Err(format!("sequence {seq}: known group {g} not found"));
                }
            }
        }
        // Locks.
        let topics = [TopicConfig::new("T", 2), TopicConfig::new("U", 1)];
        let find = |n: &str| topics.iter().find(|t| t.topic_name == n);
        for live in [true, false] {
            for topic in ["T", "U", "Missing"] {
                for broker in ["b", "other"] {
                    for q in 0..4u32 {
                        c.case();
                        let mq = MessageQueue::new(topic, broker, q);
                        let got = lockable(std::slice::from_ref(&mq), "b", live, find);
                        let exists =
                            broker == "b" && find(topic).is_some_and(|t| q < t.read_queue_nums);
                        if got.is_empty() == (live && exists) {
                            return Err(format!("lock of {mq:?} live={live}: granted {got:?}"));
                        }
                    }
                }
            }
        }
        // Pulls.
        for read in 1..=3u32 {
            let t = TopicConfig::new("T", read);
            for queue_id in -1..=4i32 {
                for sys_flag in 0..8i32 {
                    for master in [true, false] {
                        c.case();
                        let req = PullRequest {
                            topic: "T",
                            queue_id,
                            queue_offset: 0,
                            sys_flag,
                            commit_offset: 1,
                            max_msg_nums: 32,
                            max_msg_bytes: None,
                            suspend_timeout_ms: 1000,
                        };
                        let broker = PullBroker {
                            permission: Perm::READ_WRITE,
                            master,
                            offset_check_in_slave: false,
                            long_polling: true,
                            short_polling_ms: 1000,
                        };
                        let ok = plan_pull(&req, Some(&t), &broker, "c");
                        let valid = queue_id >= 0 && (queue_id as u32) < read;
                        if ok.is_ok() != valid {
                            return Err(format!("pull of queue {queue_id} of {read}: {ok:?}"));
                        }
                        if let Ok(p) = ok
                            && p.commit.is_some()
                            && !(master && sys_flag & 1 != 0)
                        {
                            return Err(format!("pull {sys_flag:#x} master={master} committed"));
                        }
                    }
                }
            }
        }
        // Commits.
        let t = TopicConfig::new("T", 3);
        for known in [true, false] {
            for queue_id in -1..=4i32 {
                for offset in -1..=2i64 {
                    c.case();
                    let r = admit_commit("g", known, "T", Some(&t), queue_id, offset);
                    let valid = known && (0..3).contains(&queue_id) && offset >= 0;
                    if r.is_ok() != valid {
                        return Err(format!("commit {queue_id}/{offset} known={known}: {r:?}"));
                    }
                }
            }
        }
        // Redeliveries.
        for real in NOT_ALLOWED_SEND_TOPICS.iter().copied().chain(["T"]) {
            let topic = TopicConfig::new(real, 3);
            for qid in -1..=4i32 {
                c.case();
                let q = qid.to_string();
                let r = redelivery_target(Some(real), Some(&q), Some(&topic));
                let valid = real == "T" && (0..3).contains(&qid);
                if r.is_ok() != valid {
                    return Err(format!("redelivery to {real}/{qid}: {r:?}"));
                }
            }
        }
        Ok(())
    };
    let result = check();
    c.finish(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Run;

    #[test]
    fn every_core_check_passes_and_examines_cases() {
        for check in checks() {
            let mut ticks = 0u64;
            let outcome = (check.run)(&mut Run::quiet(&mut |_| ticks += 1));
            assert_eq!(outcome.result, Ok(()), "{}", check.name);
            assert!(outcome.cases > 0, "{} examined nothing", check.name);
            assert_eq!(outcome.cases, ticks, "{}", check.name);
        }
    }

    #[test]
    fn route_table_paths_covers_every_sequence() {
        let outcome = route_table_paths(&mut || {});
        let expected: u64 = (1..=DEPTH as u32).map(|d| 8u64.pow(d)).sum();
        assert_eq!(outcome.cases, expected);
    }
}
