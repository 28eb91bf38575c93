//! Playing one [`Scenario`] on a real cluster in this process, and judging it.
//!
//! The cluster: each NameServer on 127.0.0.1; each broker node (master, and slave where the
//! scenario has one) on `SimFs` — the store and the config files in memory, so a power loss
//! can take what was not synced — behind fault proxies: one between the clients and it (its
//! advertised address is the proxy's, which stays put across restarts), one between it and
//! each NameServer. A producer sends throughout; push consumers of one group consume and
//! commit. Every node records into one trace.
//!
//! The steps run at their times; when the last has ended every broker is up and every proxy
//! forwards again, the sends stop, and the run waits for the cluster to settle. The verdict:
//! - the trace, judged by [`crate::trace::check`] (the model's invariants);
//! - the end state against `sextant-model` for the same inputs: every acknowledged message
//!   delivered (but those a power loss under ASYNC_FLUSH may take, counted apart), nothing
//!   delivered that was never sent; each live consumer's queues are the model strategy's
//!   allocation for the live members and the route's queues (`eventually_balanced`, within
//!   [`SETTLE`]); each NameServer's route for the topic is the model `RouteTable`'s route
//!   after the same registrations.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_broker::BrokerConfig;
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::consumer::strategy_by_name;
use sextant_client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer,
};
use sextant_model::consumer::GroupView;
use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};
use sextant_model::route::MessageQueue;
use sextant_store::sim::{Loss, SimFs};
use sextant_trace::{Event, Sink, Tracer};
use tokio::sync::Mutex as AsyncMutex;

use super::proxy::{FaultProxy, Mode};
use super::{Action, BrokerSpec, Scenario, Step};
use crate::trace::{DRAINED, LOSSY, Options, POWER_LOSS, Report, check};

/// The topic every scenario sends to.
pub const TOPIC: &str = "ScenarioTopic";
/// The consumer group.
pub const GROUP: &str = "scenario_cg";
/// The cluster.
const CLUSTER: &str = "DefaultCluster";
/// How long the cluster may take to settle after the last step (every acknowledged message
/// delivered, every consumer holding the model's allocation).
pub const SETTLE: Duration = Duration::from_secs(15);
/// The NameServers' broker expiry (ms) and scan period.
pub const EXPIRY_MS: u64 = 600;
const SCAN_MS: u64 = 100;
/// The pause between two sends.
const SEND_EVERY: Duration = Duration::from_millis(4);

/// Deliberately broken implementations (test-only switches), each of which a run must catch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Broken {
    /// The producer retries the broker that just failed.
    pub retry_same_broker: bool,
    /// Consumers go on pulling queues they dropped.
    pub keep_pulling_dropped: bool,
    /// SYNC_FLUSH masters acknowledge before the flush.
    pub ack_before_flush: bool,
    /// Consumers rebalance on an unsorted member list.
    pub unsorted_rebalance: bool,
}

/// What went wrong setting a run up (not a verdict: the cluster did not start).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A server or client would not start.
    #[error("setup: {0}")]
    Setup(String),
    /// The run did not finish in time (a hang: counted as a failure).
    #[error("the run did not finish within {0:?}")]
    Hung(Duration),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RunError + '_ {
    move |e| RunError::Setup(format!("{what}: {e}"))
}

/// A run's verdict.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario played.
    pub scenario: Scenario,
    /// The trace's verdicts and measurements.
    pub report: Report,
    /// End-state comparisons with the model that failed.
    pub end_state: Vec<String>,
    /// End-state comparisons made.
    pub end_state_judged: u64,
    /// Faults injected.
    pub faults: usize,
    /// Messages the producer tried to send.
    pub sent: u64,
    /// How long the cluster took to settle after the last step (ms).
    pub settle_ms: u64,
    /// The trace, JSON lines.
    pub trace: Vec<u8>,
}

impl Outcome {
    /// Whether every invariant held and the end state matched the model.
    pub fn ok(&self) -> bool {
        self.report.ok() && self.end_state.is_empty()
    }

    /// The name of the first check that failed: an invariant, or `end_state`.
    pub fn first_failure(&self) -> Option<String> {
        if let Some(f) = self.report.first_violation() {
            return Some(f.violation.name.to_string());
        }
        self.end_state.first().map(|_| "end_state".to_string())
    }
}

/// One broker process and what stands around it.
struct Node {
    config: BrokerConfig,
    disk: SimFs,
    running: Option<sextant_broker::Running>,
    /// Between the clients and the broker (the address it advertises).
    clients: FaultProxy,
    /// Between the broker and each NameServer.
    namesrvs: Vec<FaultProxy>,
}

impl Node {
    async fn new(config: BrokerConfig, namesrvs: &[SocketAddr]) -> Result<Node, RunError> {
        let clients = FaultProxy::start().await.map_err(setup("proxy"))?;
        let mut ns = Vec::new();
        for addr in namesrvs {
            let p = FaultProxy::start().await.map_err(setup("proxy"))?;
            p.set_target(*addr);
            ns.push(p);
        }
        let mut config = config;
        config.namesrv_addr = ns
            .iter()
            .map(|p| p.addr().to_string())
            .collect::<Vec<_>>()
            .join(";");
        config.advertised_addr = Some(clients.addr());
        Ok(Node {
            config,
            disk: SimFs::new(),
            running: None,
            clients,
            namesrvs: ns,
        })
    }

    fn addr(&self) -> String {
        self.clients.addr().to_string()
    }

    async fn start(&mut self, tracer: &Tracer) -> Result<(), RunError> {
        let r = sextant_broker::start_on_traced(
            self.config.clone(),
            self.disk.shared(),
            tracer.clone(),
        )
        .await
        .map_err(setup("broker"))?;
        self.clients.set_target(r.local_addr);
        r.register_now().await;
        self.running = Some(r);
        Ok(())
    }

    /// Die at once; `power` takes what was not synced.
    async fn crash(&mut self, power: bool) {
        let loss = if power { Loss::Unsynced } else { Loss::Nothing };
        // The old disk is dead from here: nothing more the dying broker writes survives.
        let disk = self.disk.power_loss(loss);
        if let Some(r) = self.running.take() {
            r.crash().await;
        }
        self.clients.cut();
        self.disk = disk;
    }

    fn set_mode(&self, mode: Mode) {
        self.clients.set_mode(mode);
        for p in &self.namesrvs {
            p.set_mode(mode);
        }
    }

    async fn stop(mut self) {
        self.set_mode(Mode::Forward);
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.clients.stop().await;
        for p in self.namesrvs {
            p.stop().await;
        }
    }
}

struct Group {
    name: String,
    spec: BrokerSpec,
    master: AsyncMutex<Node>,
    slave: Option<Node>,
    master_addr: String,
}

fn broker_config(name: &str, id: i64, spec: &BrokerSpec, broken: Broken) -> BrokerConfig {
    BrokerConfig {
        broker_cluster_name: CLUSTER.into(),
        broker_name: name.into(),
        broker_id: id,
        listen_port: 0,
        store_path_root_dir: format!("/sim/{name}-{id}").into(),
        flush_disk_type: if spec.sync_flush {
            "SYNC_FLUSH"
        } else {
            "ASYNC_FLUSH"
        }
        .into(),
        broker_role: match (id, spec.slave) {
            (0, Some(true)) => "SYNC_MASTER",
            (0, _) => "ASYNC_MASTER",
            _ => "SLAVE",
        }
        .into(),
        mapped_file_size_commit_log: 1 << 20,
        // 4 096 entries a ConsumeQueue file: a scenario stores a few thousand messages.
        mapped_file_size_consume_queue: 20 * 4096,
        // An index file sized for that too (RocketMQ's default is ~420 MB, in memory here).
        max_hash_slot_num: 4096,
        max_index_num: 16 * 1024,
        flush_interval_commit_log: 200,
        flush_consumer_offset_interval: 50,
        register_name_server_period: 100,
        register_broker_timeout_mills: 300,
        channel_expired_timeout: 1_000,
        ha_send_heartbeat_interval: 100,
        ha_housekeeping_interval: 1_000,
        slave_synchronize_interval: 200,
        // Orderly locks live 1 s at the broker, 500 ms at the client (RocketMQ: 60 s and 30 s).
        lock_max_live_time: 1_000,
        broken_ack_before_flush: broken.ack_before_flush && id == 0 && spec.sync_flush,
        ..Default::default()
    }
}

/// A client configuration with loopback-test timings (100 ms polls, heartbeats and commits;
/// 500 ms API timeout) tracing to `tracer`.
pub fn client_config(namesrvs: &str, instance: &str, tracer: &Tracer) -> ClientConfig {
    ClientConfig {
        namesrv_addr: namesrvs.into(),
        instance_name: instance.into(),
        poll_name_server_interval: Duration::from_millis(100),
        heartbeat_broker_interval: Duration::from_millis(100),
        persist_consumer_offset_interval: Duration::from_millis(100),
        mq_client_api_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(300),
        pull_time_delay_when_exception: Duration::from_millis(50),
        trace: tracer.clone(),
        ..Default::default()
    }
}

/// A queue: broker group and id.
type QueueKey = (String, u32);

/// What the consumers were handed.
#[derive(Default)]
struct Delivered {
    /// id → body.
    bodies: BTreeMap<String, String>,
    /// Each queue's highest offset delivered, plus one.
    reached: BTreeMap<QueueKey, u64>,
}

type Seen = Arc<Mutex<Delivered>>;

struct Consumer {
    inner: PushConsumer,
    slow_ms: Arc<AtomicU64>,
}

struct Clients {
    namesrvs: String,
    tracer: Tracer,
    strategy: &'static str,
    orderly: bool,
    broken: Broken,
    seen: Seen,
    next: usize,
    live: Vec<Consumer>,
}

impl Clients {
    async fn join(&mut self) -> Result<(), RunError> {
        let name = format!("c{}", self.next);
        self.next += 1;
        let slow_ms = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&self.seen);
        let slow = Arc::clone(&slow_ms);
        let strategy = strategy_by_name(self.strategy)
            .ok_or_else(|| RunError::Setup(format!("no strategy {}", self.strategy)))?;
        let inner = PushConsumer::builder()
            .consumer_group(GROUP)
            .client_config(client_config(&self.namesrvs, &name, &self.tracer))
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .allocate_strategy(strategy)
            .orderly(self.orderly)
            .lock_interval(Duration::from_millis(200))
            .lock_max_live(Duration::from_millis(500))
            .rebalance_interval(Duration::from_millis(200))
            .broker_suspend_max_time(Duration::from_millis(200))
            .consumer_timeout_when_suspend(Duration::from_millis(600))
            .broken_keep_pulling_dropped(self.broken.keep_pulling_dropped)
            .broken_unsorted_rebalance(self.broken.unsorted_rebalance)
            .subscribe(TOPIC, "*")
            .start(move |msgs| {
                let seen = Arc::clone(&seen);
                let slow = slow.load(Ordering::Relaxed);
                async move {
                    if slow > 0 {
                        tokio::time::sleep(Duration::from_millis(slow * msgs.len() as u64)).await;
                    }
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for m in &msgs {
                        s.bodies.insert(
                            m.msg_id.clone(),
                            String::from_utf8_lossy(&m.body).into_owned(),
                        );
                        let key = (m.queue.broker_name.to_string(), m.queue.queue_id);
                        let r = s.reached.entry(key).or_default();
                        *r = (*r).max(m.queue_offset + 1);
                    }
                    ConsumeResult::Success
                }
            })
            .await
            .map_err(setup("consumer"))?;
        self.live.push(Consumer { inner, slow_ms });
        Ok(())
    }
}

/// What the producer did.
#[derive(Default)]
struct Sends {
    /// Bodies of every message tried.
    tried: BTreeSet<String>,
    /// Acknowledged: id → (queue, offset, when).
    acked: BTreeMap<String, (QueueKey, u64, Instant)>,
}

/// Play `scenario` with `broken` switches and judge it.
pub async fn run(scenario: &Scenario, broken: Broken) -> Result<Outcome, RunError> {
    let sink = Sink::memory();
    let tracer = sink.tracer("scenario");
    let ns_config = NamesrvConfig {
        broker_expiry: EXPIRY_MS,
        scan_interval: SCAN_MS,
        ..Default::default()
    };
    let mut namesrvs = Vec::new();
    for _ in 0..scenario.namesrvs.max(1) {
        namesrvs.push(
            sextant_namesrv::start_traced(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                ns_config.clone(),
                tracer.clone(),
            )
            .await
            .map_err(setup("namesrv"))?,
        );
    }
    let ns_addrs: Vec<SocketAddr> = namesrvs.iter().map(|n| n.local_addr).collect();
    let ns_list = ns_addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(";");

    // The brokers, the topic on each master.
    let mut groups = Vec::new();
    for (i, spec) in scenario.brokers.iter().enumerate() {
        let name = format!("broker-{}", (b'a' + i as u8) as char);
        let mut master = Node::new(broker_config(&name, 0, spec, broken), &ns_addrs).await?;
        master.start(&tracer).await?;
        let slave = match spec.slave {
            Some(_) => {
                let mut s = Node::new(broker_config(&name, 1, spec, broken), &ns_addrs).await?;
                s.start(&tracer).await?;
                Some(s)
            }
            None => None,
        };
        let master_addr = master.addr();
        groups.push(Group {
            name,
            spec: spec.clone(),
            master: AsyncMutex::new(master),
            slave,
            master_addr,
        });
    }
    let admin = Admin::start(client_config(&ns_list, "admin", &Tracer::off()))
        .await
        .map_err(setup("admin"))?;
    for g in &groups {
        let direct = g.master.lock().await.running.as_ref().map(|r| r.local_addr);
        let direct = direct.ok_or_else(|| RunError::Setup("master not running".into()))?;
        admin
            .create_topic(
                &TopicSpec {
                    topic: TOPIC.into(),
                    queues: g.spec.queues,
                    ..Default::default()
                },
                &TopicTarget::Broker(direct.to_string()),
            )
            .await
            .map_err(setup("topic"))?;
    }
    admin.shutdown().await;
    // Every NameServer lists every group before the clients start.
    let listed = wait_until(Duration::from_secs(5), || {
        namesrvs.iter().all(|n| {
            n.server
                .table()
                .route(TOPIC)
                .is_some_and(|r| r.queue_datas.len() == groups.len())
        })
    })
    .await;
    if !listed {
        return Err(RunError::Setup(
            "the topic's route never listed every broker".into(),
        ));
    }

    let producer = Producer::builder()
        .producer_group("scenario_pg")
        .client_config(client_config(&ns_list, "producer", &tracer))
        .send_msg_timeout(Duration::from_millis(400))
        .send_latency_fault_enable(scenario.fault_tolerance)
        .broken_retry_same_broker(broken.retry_same_broker)
        .start()
        .await
        .map_err(setup("producer"))?;
    let clients = AsyncMutex::new(Clients {
        namesrvs: ns_list.clone(),
        tracer: tracer.clone(),
        strategy: scenario.strategy,
        orderly: scenario.orderly,
        broken,
        seen: Arc::default(),
        next: 0,
        live: Vec::new(),
    });
    for _ in 0..scenario.consumers {
        clients.lock().await.join().await?;
    }

    // Sends throughout.
    let sends = Arc::new(Mutex::new(Sends::default()));
    let sending = Arc::new(AtomicBool::new(true));
    let producer = Arc::new(producer);
    let sender = tokio::spawn({
        let (sends, sending, producer) = (
            Arc::clone(&sends),
            Arc::clone(&sending),
            Arc::clone(&producer),
        );
        async move {
            let mut i = 0u64;
            while sending.load(Ordering::Relaxed) {
                let body = format!("m{i}");
                i += 1;
                lock(&sends).tried.insert(body.clone());
                if let Ok(r) = producer.send(Message::new(TOPIC, body)).await {
                    let key = (r.queue.broker_name.to_string(), r.queue.queue_id);
                    lock(&sends)
                        .acked
                        .insert(r.msg_id, (key, r.queue_offset, Instant::now()));
                }
                tokio::time::sleep(SEND_EVERY).await;
            }
        }
    });

    // The steps, each at its time; faults on one broker wait for the one before to end.
    let start = tokio::time::Instant::now();
    let lossy: Mutex<Vec<Lossy>> = Mutex::new(Vec::new());
    let mut setup_error = None;
    {
        let steps = scenario.steps.iter().map(|step| {
            play(
                step,
                start,
                &groups,
                &namesrvs,
                &clients,
                &tracer,
                &lossy,
                (&sends, &clients),
            )
        });
        for r in futures_util::future::join_all(steps).await {
            if let Err(e) = r {
                setup_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = setup_error {
        return Err(e);
    }
    // Everything heals: every proxy forwards, every broker is up.
    for g in &groups {
        let mut m = g.master.lock().await;
        m.set_mode(Mode::Forward);
        if m.running.is_none() {
            m.start(&tracer).await?;
        }
    }
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sending.store(false, Ordering::Relaxed);
    let _ = sender.await;

    // Settle, then compare with the model.
    let mut end_state = Vec::new();
    let mut judged = 0u64;
    let lossy = lossy.into_inner().unwrap_or_else(|e| e.into_inner());
    // Owed: every acknowledged message but what a power loss under ASYNC_FLUSH excuses (as
    // the trace checker's `lossy` rule: acknowledged before it, or after it into offsets the
    // lost tail had reached).
    let (owed, tried) = {
        let s = lock(&sends);
        let owed: BTreeSet<String> = s
            .acked
            .iter()
            .filter(|(_, (q, offset, at))| {
                !lossy.iter().any(|l| {
                    l.group == q.0
                        && (l.at.is_some_and(|t| *at <= t)
                            || l.reached.get(q).is_some_and(|r| offset < r))
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        (owed, s.tried.clone())
    };
    let seen = Arc::clone(&clients.lock().await.seen);
    // After a power loss the trace checker's `lossy` and `power_loss` rules are the judge (it
    // sees the pulls, which this count cannot): wait less, and leave the verdict to it.
    let had_loss = !lossy.is_empty();
    let wait = if had_loss {
        Duration::from_secs(3)
    } else {
        SETTLE
    };
    let delivered = wait_until(wait, || {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        owed.iter().all(|id| s.bodies.contains_key(id))
    })
    .await;
    if !had_loss {
        judged += 1;
    }
    if !delivered && !had_loss {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<&String> = owed
            .iter()
            .filter(|id| !s.bodies.contains_key(*id))
            .collect();
        end_state.push(format!(
            "{} of {} acknowledged messages not delivered within {:?}, e.g. {:?}",
            missing.len(),
            owed.len(),
            SETTLE,
            missing.iter().take(3).collect::<Vec<_>>()
        ));
    }
    {
        judged += 1;
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        let phantoms: Vec<&String> = s.bodies.values().filter(|b| !tried.contains(*b)).collect();
        if !phantoms.is_empty() {
            end_state.push(format!("delivered but never sent: {phantoms:?}"));
        }
    }
    let queues: Vec<MessageQueue> = groups
        .iter()
        .flat_map(|g| (0..g.spec.queues).map(|q| MessageQueue::new(TOPIC, g.name.as_str(), q)))
        .collect();
    let balanced = {
        let c = clients.lock().await;
        let mut last = String::new();
        let ok = wait_until(SETTLE, || {
            match unbalanced(&c, scenario.strategy, &queues) {
                None => true,
                Some(why) => {
                    last = why;
                    false
                }
            }
        })
        .await;
        (ok, last)
    };
    judged += 1;
    if !balanced.0 {
        end_state.push(format!(
            "eventually_balanced: not within {SETTLE:?}: {}",
            balanced.1
        ));
    }
    let settle_ms = healed.elapsed().as_millis() as u64;
    // The routes: each NameServer's against the model's after the same registrations.
    let mut model = RouteTable::new(ns_config.clone());
    for g in &groups {
        let topic = TopicConfig::new(TOPIC, g.spec.queues);
        // A broker registers its whole table (a lone topic is refused as a first
        // registration, as RocketMQ's registerSingleTopicAll guard does): TBW102 stands in.
        let reg = |id: u64, addr: String| {
            BrokerRegistration::new(CLUSTER, &g.name, id, &addr)
                .with_topics([topic.clone(), TopicConfig::new("TBW102", 8)])
        };
        let _ = model.register(&reg(0, g.master_addr.clone()), 0);
        if let Some(s) = &g.slave {
            let _ = model.register(&reg(1, s.addr()), 0);
        }
    }
    let expected = model.route(TOPIC).map(|r| route_shape(&r));
    for (i, n) in namesrvs.iter().enumerate() {
        judged += 1;
        let served = n.server.table().route(TOPIC).map(|r| route_shape(&r));
        if served != expected {
            end_state.push(format!(
                "namesrv {i} serves the route {served:?}; the model's is {expected:?}"
            ));
        }
    }

    // Drained: the consumers commit what they consumed; then everything stops.
    tracer.emit(|| Event::Mark {
        label: DRAINED.into(),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let consumers = std::mem::take(&mut clients.lock().await.live);
    for c in consumers {
        c.inner.shutdown().await;
    }
    if let Ok(p) = Arc::try_unwrap(producer) {
        p.shutdown().await;
    }
    for g in groups {
        if let Some(s) = g.slave {
            s.stop().await;
        }
        g.master.into_inner().stop().await;
    }
    for n in namesrvs {
        n.shutdown().await;
    }
    let trace = sink.take();
    let records = sextant_trace::parse(&trace[..]).map_err(setup("trace"))?;
    let report = check(&records, &Options::default());
    Ok(Outcome {
        scenario: scenario.clone(),
        report,
        end_state,
        end_state_judged: judged,
        faults: scenario.faults(),
        sent: tried.len() as u64,
        settle_ms,
        trace,
    })
}

/// A route as the comparison sees it: each group's addresses and queue counts.
type RouteShape = (Vec<(String, Vec<(u64, String)>)>, Vec<(String, u32, u32)>);

fn route_shape(r: &sextant_model::route::TopicRouteData) -> RouteShape {
    let mut brokers: Vec<(String, Vec<(u64, String)>)> = r
        .broker_datas
        .iter()
        .map(|b| {
            (
                b.broker_name.clone(),
                b.broker_addrs
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
            )
        })
        .collect();
    brokers.sort();
    let mut queues: Vec<(String, u32, u32)> = r
        .queue_datas
        .iter()
        .map(|q| (q.broker_name.clone(), q.read_queue_nums, q.write_queue_nums))
        .collect();
    queues.sort();
    (brokers, queues)
}

/// `None` when every live consumer holds what the model's strategy allocates it for the live
/// members and `queues`; else why not.
fn unbalanced(c: &Clients, strategy: &str, queues: &[MessageQueue]) -> Option<String> {
    let strategy = strategy_by_name(strategy)?;
    let members: Vec<String> = c
        .live
        .iter()
        .map(|m| m.inner.client_id().to_owned())
        .collect();
    let view = GroupView::new(queues.iter().cloned(), members.iter().cloned());
    for m in &c.live {
        let want: BTreeSet<MessageQueue> = match strategy.allocate(&view, m.inner.client_id()) {
            Ok(share) => share.into_iter().collect(),
            Err(e) => return Some(format!("the model refuses: {e}")),
        };
        let held: BTreeSet<MessageQueue> = m
            .inner
            .owned()
            .into_iter()
            .filter(|q| &*q.topic == TOPIC)
            .collect();
        if held != want {
            return Some(format!(
                "{} holds {:?}, the model allocates {:?}",
                m.inner.client_id(),
                ids(&held),
                ids(&want)
            ));
        }
    }
    None
}

fn ids(qs: &BTreeSet<MessageQueue>) -> Vec<String> {
    qs.iter()
        .map(|q| format!("{}:{}", q.broker_name, q.queue_id))
        .collect()
}

/// A power loss: which group, when its acknowledgements stopped counting (ASYNC_FLUSH), and
/// where its queues had reached.
struct Lossy {
    group: String,
    at: Option<Instant>,
    reached: BTreeMap<QueueKey, u64>,
}

/// Run one step at its time.
#[allow(clippy::too_many_arguments)]
async fn play(
    step: &Step,
    start: tokio::time::Instant,
    groups: &[Group],
    namesrvs: &[sextant_namesrv::Running],
    clients: &AsyncMutex<Clients>,
    tracer: &Tracer,
    lossy: &Mutex<Vec<Lossy>>,
    (sends, consumers): (&Mutex<Sends>, &AsyncMutex<Clients>),
) -> Result<(), RunError> {
    tokio::time::sleep_until(start + Duration::from_millis(step.at_ms)).await;
    let group = |i: usize| &groups[i % groups.len()];
    match &step.action {
        Action::Kill { broker, down_ms } | Action::PowerLoss { broker, down_ms } => {
            let g = group(*broker);
            let power = matches!(step.action, Action::PowerLoss { .. }) && g.slave.is_none();
            let mut m = g.master.lock().await;
            m.crash(power).await;
            if power {
                // Its queues may now end below where consumers read; under ASYNC_FLUSH what
                // it acknowledged so far may be gone too (counted, not a violation).
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut reached: BTreeMap<QueueKey, u64> = BTreeMap::new();
                for (q, o, _) in lock(sends).acked.values() {
                    let r = reached.entry(q.clone()).or_default();
                    *r = (*r).max(o + 1);
                }
                let seen = Arc::clone(&consumers.lock().await.seen);
                for (q, o) in &lock(&seen).reached {
                    let r = reached.entry(q.clone()).or_default();
                    *r = (*r).max(*o);
                }
                reached.retain(|q, _| q.0 == g.name);
                lock(lossy).push(Lossy {
                    group: g.name.clone(),
                    at: if g.spec.sync_flush {
                        None
                    } else {
                        Some(Instant::now())
                    },
                    reached,
                });
                if !g.spec.sync_flush {
                    tracer.emit(|| Event::Mark {
                        label: format!("{LOSSY}{}", g.master_addr),
                    });
                }
                tracer.emit(|| Event::Mark {
                    label: format!("{POWER_LOSS}{}", g.master_addr),
                });
            }
            tokio::time::sleep(Duration::from_millis(*down_ms)).await;
            m.start(tracer).await?;
        }
        Action::Pause { broker, ms } => {
            let m = group(*broker).master.lock().await;
            m.set_mode(Mode::Hold);
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            m.set_mode(Mode::Forward);
        }
        Action::Cut { broker } => {
            group(*broker).master.lock().await.clients.cut();
        }
        Action::Slow {
            broker,
            delay_ms,
            ms,
        } => {
            let m = group(*broker).master.lock().await;
            m.set_mode(Mode::Delay(Duration::from_millis(*delay_ms)));
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            m.set_mode(Mode::Forward);
        }
        Action::ClockStep { namesrv, ms } => {
            namesrvs[namesrv % namesrvs.len()].server.step_clock(*ms);
        }
        Action::Join => clients.lock().await.join().await?,
        Action::Leave { consumer } | Action::Crash { consumer } => {
            let mut c = clients.lock().await;
            if c.live.len() > 1 {
                let n = c.live.len();
                let gone = c.live.remove(consumer % n);
                if matches!(step.action, Action::Crash { .. }) {
                    gone.inner.crash().await;
                } else {
                    gone.inner.shutdown().await;
                }
            }
        }
        Action::SlowConsumer {
            consumer,
            per_msg_ms,
            ms,
        } => {
            let slow = {
                let c = clients.lock().await;
                match c.live.len() {
                    0 => return Ok(()),
                    n => Arc::clone(&c.live[consumer % n].slow_ms),
                }
            };
            slow.store(*per_msg_ms, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            slow.store(0, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
