//! The lite pull consumer (RocketMQ's `DefaultLitePullConsumer`): the application polls.
//!
//! Queues are assigned by hand ([`PullConsumerBuilder::assign`]) or taken by rebalance
//! ([`PullConsumerBuilder::subscribe`], the model's allocation, every `rebalanceInterval`).
//! Background tasks long-poll each queue into a bounded buffer (`pullThresholdForAll`); `poll`
//! takes from it, and what it returns counts as consumed: the model's process queue then says
//! which offset may be committed — automatically every `autoCommitIntervalMillis`, or by
//! [`PullConsumer::commit`]. `seek` moves a queue, `pause`/`resume` stop and restart its pulls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::client::{
    CommittedOffset, ConsumeFromWhere, FlowControl, PULL_DELAY_FLOW_CONTROL, PullAnswer, PullNext,
    StartOffset, Subscription, after_pull, pull_answer, pull_sys_flag, start_offset,
};
use sextant_model::consumer::{AllocateStrategy, Averagely, RebalancePlan};
use sextant_model::route::{MASTER_ID, MessageQueue};
use sextant_remoting::body::ConsumerData;
use sextant_remoting::header::PullMessageRequestHeader;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ClientConfig;
use crate::consumer::offset::{Backend, OffsetStore};
use crate::consumer::process_queue::ProcessQueue;
use crate::consumer::{MessageModel, consumer_data, rebalance};
use crate::error::{Error, Result};
use crate::instance::{ClientInstance, ConsumerHook, lock};
use crate::message::{MessageExt, decode_pulled};
use crate::producer::setter;

/// A lite pull consumer's settings (`DefaultLitePullConsumer`).
#[derive(Clone, Debug)]
pub struct LiteConfig {
    /// `consumerGroup`.
    pub consumer_group: String,
    /// `consumeFromWhere`.
    pub consume_from_where: ConsumeFromWhere,
    /// `autoCommit` (true).
    pub auto_commit: bool,
    /// `autoCommitIntervalMillis` (5 s).
    pub auto_commit_interval: Duration,
    /// `pullBatchSize` (10).
    pub pull_batch_size: u32,
    /// `pullThresholdForAll` (10000): messages buffered over all queues before pulls wait.
    pub pull_threshold_for_all: usize,
    /// Per-queue thresholds (`pullThresholdForQueue` 1000, `pullThresholdSizeForQueue` 100 MiB,
    /// `consumeMaxSpan` 2000).
    pub flow_control: FlowControl,
    /// `brokerSuspendMaxTimeMillis` (20 s).
    pub broker_suspend_max_time: Duration,
    /// `consumerTimeoutMillisWhenSuspend` (30 s).
    pub consumer_timeout_when_suspend: Duration,
    /// `rebalanceInterval` for subscriptions (20 s).
    pub rebalance_interval: Duration,
}

impl Default for LiteConfig {
    fn default() -> Self {
        LiteConfig {
            consumer_group: String::new(),
            consume_from_where: ConsumeFromWhere::LastOffset,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            pull_batch_size: 10,
            pull_threshold_for_all: 10_000,
            flow_control: FlowControl::default(),
            broker_suspend_max_time: Duration::from_secs(20),
            consumer_timeout_when_suspend: Duration::from_secs(30),
            rebalance_interval: Duration::from_secs(20),
        }
    }
}

/// Builds a [`PullConsumer`].
#[derive(Debug)]
pub struct PullConsumerBuilder {
    client: ClientConfig,
    config: LiteConfig,
    subscriptions: BTreeMap<String, String>,
    assigned: Vec<MessageQueue>,
    strategy: Box<dyn AllocateStrategy>,
    instance: Option<ClientInstance>,
}

impl Default for PullConsumerBuilder {
    fn default() -> Self {
        PullConsumerBuilder {
            client: ClientConfig::default(),
            config: LiteConfig::default(),
            subscriptions: BTreeMap::new(),
            assigned: Vec::new(),
            strategy: Box::new(Averagely),
            instance: None,
        }
    }
}

impl PullConsumerBuilder {
    setter!(/// `consumerGroup`.
        consumer_group: impl Into<String> => config.consumer_group);
    setter!(/// `namesrvAddr`.
        namesrv_addr: impl Into<String> => client.namesrv_addr);
    setter!(/// Where the client records trace events (off by default).
        trace: sextant_trace::Tracer => client.trace);
    setter!(/// `instanceName`.
        instance_name: impl Into<String> => client.instance_name);
    setter!(/// `consumeFromWhere`.
        consume_from_where: ConsumeFromWhere => config.consume_from_where);
    setter!(/// `autoCommit`.
        auto_commit: bool => config.auto_commit);
    setter!(/// `autoCommitIntervalMillis`.
        auto_commit_interval: Duration => config.auto_commit_interval);
    setter!(/// `pullBatchSize`.
        pull_batch_size: u32 => config.pull_batch_size);
    setter!(/// `pullThresholdForAll`.
        pull_threshold_for_all: usize => config.pull_threshold_for_all);
    setter!(/// `brokerSuspendMaxTimeMillis`.
        broker_suspend_max_time: Duration => config.broker_suspend_max_time);
    setter!(/// `rebalanceInterval`.
        rebalance_interval: Duration => config.rebalance_interval);

    /// Subscribe to `topic` (queues come from rebalance). Exclusive with [`Self::assign`].
    pub fn subscribe(mut self, topic: impl Into<String>, expression: impl Into<String>) -> Self {
        self.subscriptions.insert(topic.into(), expression.into());
        self
    }

    /// Consume exactly these queues. Exclusive with [`Self::subscribe`].
    pub fn assign(mut self, queues: impl IntoIterator<Item = MessageQueue>) -> Self {
        self.assigned.extend(queues);
        self
    }

    /// The allocation strategy for subscriptions.
    pub fn allocate_strategy(mut self, s: Box<dyn AllocateStrategy>) -> Self {
        self.strategy = s;
        self
    }

    /// The whole client configuration.
    pub fn client_config(mut self, c: ClientConfig) -> Self {
        self.client = c;
        self
    }

    /// Run on an existing client instance.
    pub fn instance(mut self, i: ClientInstance) -> Self {
        self.instance = Some(i);
        self
    }

    /// Start pulling.
    pub async fn start(self) -> Result<PullConsumer> {
        let c = self.config;
        if c.consumer_group.is_empty() {
            return Err(Error::Config("consumerGroup is empty".into()));
        }
        if self.subscriptions.is_empty() == self.assigned.is_empty() {
            return Err(Error::Config(
                "subscribe and assign are mutually exclusive; give exactly one".into(),
            ));
        }
        let instance = match self.instance {
            Some(i) => i,
            None => ClientInstance::start(self.client).await?,
        };
        let subscriptions: BTreeMap<String, Subscription> = self
            .subscriptions
            .iter()
            .map(|(t, e)| (t.clone(), Subscription::parse(e)))
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            offsets: OffsetStore::new(&c.consumer_group, Backend::Remote),
            buffer: Arc::new(Semaphore::new(c.pull_threshold_for_all.max(1))),
            buffer_capacity: c.pull_threshold_for_all.max(1),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            strategy: self.strategy,
            subscribed: !subscriptions.is_empty(),
            subscriptions,
            instance: instance.clone(),
            queues: Mutex::default(),
            consumed: Mutex::default(),
            paused: Mutex::default(),
            wake: Notify::new(),
            stop,
            tasks: Mutex::default(),
            sub_version: crate::producer::wall_ms(),
            config: c,
        });
        instance.acquire();
        if inner.subscribed {
            if let Err(e) = instance.register_consumer(
                &inner.config.consumer_group,
                Arc::new(Hook(Arc::downgrade(&inner))),
            ) {
                instance.release().await;
                return Err(e);
            }
            for t in inner.subscriptions.keys() {
                let _ = instance.update_route(t).await;
            }
            instance.heartbeat_all().await;
        } else {
            for mq in &self.assigned {
                let _ = instance.update_route(&mq.topic).await;
            }
            for mq in self.assigned {
                inner.take(&mq).await;
            }
        }
        let task = tokio::spawn(run(Arc::clone(&inner)));
        lock(&inner.tasks).push(task);
        Ok(PullConsumer { inner })
    }
}

struct Owned {
    pq: Arc<ProcessQueue>,
    pull: JoinHandle<()>,
}

/// Messages of one pull waiting for `poll`, and the buffer permits they hold.
type Buffered = (Arc<ProcessQueue>, Vec<MessageExt>, usize);

struct Inner {
    config: LiteConfig,
    instance: ClientInstance,
    subscribed: bool,
    subscriptions: BTreeMap<String, Subscription>,
    strategy: Box<dyn AllocateStrategy>,
    offsets: OffsetStore,
    /// One permit per buffered message: pulls wait when the buffer is full.
    buffer: Arc<Semaphore>,
    buffer_capacity: usize,
    tx: mpsc::UnboundedSender<Buffered>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Buffered>>,
    queues: Mutex<BTreeMap<MessageQueue, Owned>>,
    /// Per queue, the offset after what `poll` returned (what a commit writes).
    consumed: Mutex<BTreeMap<MessageQueue, u64>>,
    paused: Mutex<BTreeSet<MessageQueue>>,
    wake: Notify,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sub_version: i64,
}

/// A lite pull consumer.
pub struct PullConsumer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PullConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullConsumer")
            .field("group", &self.inner.config.consumer_group)
            .finish_non_exhaustive()
    }
}

struct Hook(std::sync::Weak<Inner>);

impl ConsumerHook for Hook {
    fn consumer_data(&self) -> ConsumerData {
        let Some(i) = self.0.upgrade() else {
            return ConsumerData::default();
        };
        consumer_data(
            &i.config.consumer_group,
            "CONSUME_ACTIVELY",
            MessageModel::Clustering,
            i.config.consume_from_where,
            &i.subscriptions,
            i.sub_version,
        )
    }
    fn topics(&self) -> Vec<String> {
        self.0
            .upgrade()
            .map(|i| i.subscriptions.keys().cloned().collect())
            .unwrap_or_default()
    }
    fn rebalance_now(&self) {
        if let Some(i) = self.0.upgrade() {
            i.wake.notify_one();
        }
    }
    fn running_info(&self) -> Vec<u8> {
        b"{}".to_vec()
    }
}

async fn run(inner: Arc<Inner>) {
    let mut stopped = inner.stop.subscribe();
    let mut commit = tokio::time::interval(inner.config.auto_commit_interval);
    commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    commit.tick().await;
    let mut every = tokio::time::interval(inner.config.rebalance_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    if inner.subscribed {
        inner.rebalance().await;
    }
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = every.tick(), if inner.subscribed => inner.rebalance().await,
            _ = inner.wake.notified(), if inner.subscribed => inner.rebalance().await,
            _ = commit.tick(), if inner.config.auto_commit => {
                let _ = inner.commit().await;
            }
        }
    }
}

impl PullConsumer {
    /// A builder with RocketMQ's defaults.
    pub fn builder() -> PullConsumerBuilder {
        PullConsumerBuilder::default()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        self.inner.instance.client_id()
    }

    /// The queues consumed now.
    pub fn assignment(&self) -> BTreeSet<MessageQueue> {
        lock(&self.inner.queues).keys().cloned().collect()
    }

    /// Up to one pull's worth of messages, waiting at most `timeout`; empty if none came.
    /// What it returns counts as consumed.
    pub async fn poll(&self, timeout: Duration) -> Vec<MessageExt> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.inner.rx.lock().await;
        loop {
            let next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(x)) => x,
                _ => return Vec::new(),
            };
            let (pq, msgs, permits) = next;
            self.inner.buffer.add_permits(permits);
            if pq.is_dropped() {
                continue;
            }
            let offset = pq.consumed(&msgs, self.inner.instance.now());
            self.inner.mark_consumed(&pq.mq, offset, true);
            return msgs;
        }
    }

    /// Commit the consumed offsets of every queue now (`commitSync`): what `poll` returned so
    /// far counts as consumed. With `autoCommit` off nothing else commits.
    pub async fn commit(&self) -> Result<()> {
        self.inner.commit().await
    }

    /// Commit these offsets (each the offset of the next message to consume) now, whatever
    /// `poll` returned (`commit(Map<MessageQueue, Long>, true)`).
    pub async fn commit_offsets(&self, offsets: &BTreeMap<MessageQueue, u64>) -> Result<()> {
        for (mq, o) in offsets {
            self.inner.offsets.update(mq, *o, false);
        }
        let mqs: BTreeSet<MessageQueue> = offsets.keys().cloned().collect();
        for mq in &mqs {
            self.inner.offsets.persist(&self.inner.instance, mq).await?;
        }
        Ok(())
    }

    /// The offset committed for `mq` as the broker holds it.
    pub async fn committed(&self, mq: &MessageQueue) -> Option<u64> {
        match self
            .inner
            .offsets
            .read_store(&self.inner.instance, mq)
            .await
        {
            CommittedOffset::At(o) => Some(o),
            _ => None,
        }
    }

    /// Continue `mq` at `offset`: what is buffered for it is dropped, its pulls restart there.
    pub async fn seek(&self, mq: &MessageQueue, offset: u64) -> Result<()> {
        if !lock(&self.inner.queues).contains_key(mq) {
            return Err(Error::Config(format!(
                "{mq:?} is not assigned to this consumer"
            )));
        }
        self.inner.release(mq);
        self.inner.mark_consumed(mq, offset, false);
        self.inner.start_at(mq, offset);
        Ok(())
    }

    /// Stop pulling these queues (what is buffered stays).
    pub fn pause(&self, mqs: impl IntoIterator<Item = MessageQueue>) {
        lock(&self.inner.paused).extend(mqs);
    }

    /// Pull these queues again.
    pub fn resume(&self, mqs: impl IntoIterator<Item = MessageQueue>) {
        let mut p = lock(&self.inner.paused);
        for mq in mqs {
            p.remove(&mq);
        }
    }

    /// Stop: commit, leave the group, release the client instance.
    pub async fn shutdown(self) {
        let inner = self.inner;
        let _ = inner.stop.send(true);
        let tasks: Vec<_> = lock(&inner.tasks).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        if inner.config.auto_commit {
            let _ = inner.commit().await;
        }
        let owned: Vec<MessageQueue> = lock(&inner.queues).keys().cloned().collect();
        for mq in &owned {
            inner.release(mq);
        }
        if inner.subscribed {
            inner
                .instance
                .leave_group(&inner.config.consumer_group)
                .await;
        }
        inner.instance.release().await;
    }
}

impl Inner {
    async fn commit(&self) -> Result<()> {
        let held: BTreeSet<MessageQueue> = lock(&self.queues).keys().cloned().collect();
        {
            let consumed = lock(&self.consumed);
            for mq in &held {
                if let Some(o) = consumed.get(mq) {
                    self.offsets.update(mq, *o, false);
                }
            }
        }
        self.offsets.persist_all(&self.instance, &held).await
    }

    /// `poll` (or a pull that found nothing, or a seek) moved `mq` to `offset`.
    fn mark_consumed(&self, mq: &MessageQueue, offset: u64, increase_only: bool) {
        let mut c = lock(&self.consumed);
        let e = c.entry(mq.clone()).or_insert(offset);
        if !increase_only || offset > *e {
            *e = offset;
        }
    }

    async fn rebalance(self: &Arc<Self>) {
        for topic in self.subscriptions.keys() {
            let Some(share) = rebalance::share(
                &self.instance,
                &self.config.consumer_group,
                MessageModel::Clustering,
                self.strategy.as_ref(),
                topic,
                false,
            )
            .await
            else {
                continue;
            };
            let held: BTreeSet<MessageQueue> = lock(&self.queues)
                .keys()
                .filter(|mq| &*mq.topic == topic)
                .cloned()
                .collect();
            let plan = RebalancePlan::compute(&held, &share, &BTreeSet::new());
            for mq in &plan.drop {
                // Stop pulling first, then commit what was consumed, then forget it.
                self.release(mq);
                if self.config.auto_commit
                    && let Some(o) = lock(&self.consumed).get(mq).copied()
                {
                    self.offsets.update(mq, o, false);
                }
                let _ = self.offsets.persist(&self.instance, mq).await;
                self.offsets.remove(mq);
                lock(&self.consumed).remove(mq);
            }
            for mq in &plan.add {
                self.take(mq).await;
            }
        }
    }

    /// Stop pulling `mq` and forget what is buffered for it.
    fn release(&self, mq: &MessageQueue) {
        if let Some(o) = lock(&self.queues).remove(mq) {
            o.pq.drop_queue();
            o.pull.abort();
        }
    }

    /// Take `mq` where the group left it (or by `consumeFromWhere`).
    async fn take(self: &Arc<Self>, mq: &MessageQueue) {
        let committed = self.offsets.read_store(&self.instance, mq).await;
        let retry = mq.topic.starts_with(sextant_model::broker::RETRY_PREFIX);
        let timeout = self.instance.config().mq_client_api_timeout;
        let ask = |time: Option<i64>| async move {
            let (addr, _) = self
                .instance
                .subscribe_addr(&mq.broker_name, MASTER_ID, false)?;
            let p = self.instance.peer(&addr).await.ok()?;
            match time {
                None => p.max_offset(mq, timeout).await.ok(),
                Some(t) => p.search_offset(mq, t, timeout).await.ok(),
            }
        };
        let start = match start_offset(committed, self.config.consume_from_where, retry) {
            StartOffset::At(o) => Some(o),
            StartOffset::Max => ask(None).await,
            StartOffset::ByTime(t) => ask(Some(t)).await,
            StartOffset::Retry => None,
        };
        if let Some(o) = start {
            self.start_at(mq, o);
        }
    }

    fn start_at(self: &Arc<Self>, mq: &MessageQueue, offset: u64) {
        let pq = Arc::new(ProcessQueue::new(mq.clone(), offset, self.instance.now()));
        let pull = tokio::spawn(pull_loop(Arc::downgrade(self), Arc::clone(&pq)));
        lock(&self.queues).insert(mq.clone(), Owned { pq, pull });
    }
}

async fn pull_loop(me: std::sync::Weak<Inner>, pq: Arc<ProcessQueue>) {
    loop {
        let Some(inner) = me.upgrade() else { return };
        if pq.is_dropped() {
            return;
        }
        if lock(&inner.paused).contains(&pq.mq) {
            drop(inner);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if pq.pause(&inner.config.flow_control, false).is_some() {
            drop(inner);
            tokio::time::sleep(Duration::from_millis(PULL_DELAY_FLOW_CONTROL)).await;
            continue;
        }
        let mq = pq.mq.clone();
        let offset = pq.state().offsets.next_pull();
        let result = async {
            let (addr, _) =
                inner
                    .instance
                    .subscribe_addr(&mq.broker_name, pq.state().pull_from, false)?;
            let peer = inner.instance.peer(&addr).await.ok()?;
            let sub = inner.subscriptions.get(&*mq.topic);
            let header = PullMessageRequestHeader {
                // Lite pulls never commit on the way (commits are the application's).
                sys_flag: pull_sys_flag(None, true, false, true),
                suspend_timeout_millis: inner.config.broker_suspend_max_time.as_millis() as i64,
                sub_version: inner.sub_version,
                subscription: Some(sub.map_or_else(|| "*".to_owned(), |s| s.expression.clone())),
                expression_type: Some("TAG".into()),
                ..PullMessageRequestHeader::new(
                    &inner.config.consumer_group,
                    &mq.topic,
                    mq.queue_id as i32,
                    offset as i64,
                    inner.config.pull_batch_size as i32,
                )
            };
            Some(
                peer.pull(&header, inner.config.consumer_timeout_when_suspend)
                    .await,
            )
        }
        .await;
        let on_error = inner
            .instance
            .config()
            .pull_time_delay_when_exception
            .as_millis() as u64;
        let (answer, body) = match result {
            Some(Ok((code, h, body))) => {
                pq.state().pull_from =
                    u64::try_from(h.suggest_which_broker_id).unwrap_or(MASTER_ID);
                (
                    pull_answer(Some(code), h.next_begin_offset.max(0) as u64),
                    body,
                )
            }
            Some(Err(e)) => (pull_answer(e.code(), offset), bytes::Bytes::new()),
            None => (pull_answer(None, offset), bytes::Bytes::new()),
        };
        let next = match after_pull(answer, offset, on_error) {
            // An error: the same offset again after the model's delay.
            PullNext::Pull { delay, .. } if delay > 0 => {
                drop(inner);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                continue;
            }
            PullNext::Pull { offset: next, .. } | PullNext::DropAndRebalance { offset: next } => {
                next
            }
        };
        match answer {
            PullAnswer::Found { .. } => {
                let Ok(msgs) = decode_pulled(&body, &mq) else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let sub = inner.subscriptions.get(&*mq.topic);
                let msgs: Vec<MessageExt> = match sub {
                    Some(s) => msgs.into_iter().filter(|m| s.matches(m.tags())).collect(),
                    None => msgs,
                };
                pq.pulled(&msgs, next, inner.instance.now());
                if msgs.is_empty() {
                    continue;
                }
                let n = msgs.len().min(inner.buffer_capacity);
                let buffer = Arc::clone(&inner.buffer);
                let tx = inner.tx.clone();
                // A pull that was under way when the queue was paused keeps its messages until
                // the queue is resumed: `poll` never returns messages of a paused queue.
                while lock(&inner.paused).contains(&mq) {
                    if pq.is_dropped() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                drop(inner);
                // Wait for room in the buffer (the application polls to make it).
                let Ok(permits) = buffer.acquire_many_owned(n as u32).await else {
                    return;
                };
                permits.forget();
                if tx.send((Arc::clone(&pq), msgs, n)).is_err() {
                    return;
                }
            }
            PullAnswer::Nothing { .. } => {
                pq.pulled(&[], next, inner.instance.now());
                if pq.state().offsets.is_empty() {
                    let c = pq.state().offsets.commit_offset();
                    inner.mark_consumed(&mq, c, true);
                }
            }
            PullAnswer::Error { .. } => {}
            PullAnswer::OffsetIllegal { .. } => {
                // OFFSET_MOVED: continue where the broker says, remembered as consumed up to there.
                tracing::warn!(queue = ?mq, from = offset, to = next, "offset illegal, the queue moves");
                // Only if the queue is still this task's: a rebalance may have released it.
                let mine = lock(&inner.queues)
                    .get(&mq)
                    .is_some_and(|o| Arc::ptr_eq(&o.pq, &pq));
                if mine {
                    inner.mark_consumed(&mq, next, false);
                    inner.release(&mq);
                    inner.start_at(&mq, next);
                }
                return;
            }
        }
    }
}
