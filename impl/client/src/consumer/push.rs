//! The push consumer (RocketMQ's `DefaultMQPushConsumer`): it subscribes, takes its share of the
//! queues in every rebalance (every `rebalanceInterval` and at once when the group's membership
//! or a route changes), long-polls each owned queue, pauses its pulls under flow control, hands
//! the messages to the handler on a bounded pool — concurrently, or one queue at a time in order
//! under a broker lock — commits what the model's process queue says may be committed, and sends
//! failed messages back to the group's retry topic.
//!
//! Decisions are the model's: the share (`AllocateStrategy` over a `GroupView`), what a
//! rebalance drops and adds (`RebalancePlan`), where a new queue starts (`client::start_offset`),
//! when a pull waits (`client::FlowControl`), what a pull answer means (`client::after_pull`),
//! when a queue's pulls or its local lock expired (`client::expired`), what an orderly consumer
//! does with a failing message (`client::orderly_retry`), and the committable offset
//! (`consumer::ProcessQueue`). This file owns the tasks: one rebalance/commit/lock loop per
//! consumer, one pull task per owned queue, the handler tasks.
//!
//! Ordering of a dropped queue: it is marked dropped (no new pull, no new handler), its pull
//! task is stopped, the handlers running on it are waited for, then its offset is committed and,
//! orderly, its lock released — so the next owner starts after everything this member consumed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::broker::retry_topic;
use sextant_model::client::{
    ConsumeFromWhere, FlowControl, LOCAL_LOCK_MAX_LIVE_MS, OrderlyRetry, PULL_DELAY_FLOW_CONTROL,
    PULL_MAX_IDLE_MS, PullAnswer, PullNext, StartOffset, Subscription, after_pull, expired,
    max_reconsume_times, orderly_retry, pull_answer, pull_sys_flag, start_offset,
};
use sextant_model::consumer::{AllocateStrategy, Averagely, RebalancePlan};
use sextant_model::route::{MASTER_ID, MessageQueue};
use sextant_remoting::body::{ConsumerData, SubscriptionData};
use sextant_remoting::header::{ConsumerSendMsgBackRequestHeader, PullMessageRequestHeader};
use sextant_trace::Event;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::ClientConfig;
use crate::consumer::offset::{Backend, OffsetStore};
use crate::consumer::process_queue::ProcessQueue;
use crate::consumer::{
    ConsumeResult, Handler, MessageModel, consumer_data, handler, rebalance, subscription_data,
};
use crate::error::{Error, Result};
use crate::instance::{ClientInstance, ConsumerHook, lock};
use crate::message::{MessageExt, decode_pulled};
use crate::producer::setter;

/// A push consumer's settings, with RocketMQ's names and defaults.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// `consumerGroup`.
    pub consumer_group: String,
    /// `messageModel` (clustering).
    pub message_model: MessageModel,
    /// `consumeFromWhere` (last offset).
    pub consume_from_where: ConsumeFromWhere,
    /// Orderly consumption (`MessageListenerOrderly`): one queue at a time, in order, under a
    /// broker lock.
    pub orderly: bool,
    /// `rebalanceInterval` (20 s).
    pub rebalance_interval: Duration,
    /// `pullBatchSize` (32).
    pub pull_batch_size: u32,
    /// `pullThresholdForQueue` (1000), `pullThresholdSizeForQueue` (100 MiB),
    /// `consumeConcurrentlyMaxSpan` (2000).
    pub flow_control: FlowControl,
    /// `consumeThreadMin` (20).
    pub consume_thread_min: usize,
    /// `consumeThreadMax` (64): handlers running at once, over all queues.
    pub consume_thread_max: usize,
    /// `consumeMessageBatchMaxSize` (1).
    pub consume_message_batch_max_size: usize,
    /// `maxReconsumeTimes`: 16 concurrent, unbounded orderly when `None` (RocketMQ's -1).
    pub max_reconsume_times: Option<i32>,
    /// `suspendCurrentQueueTimeMillis` (1 s): an orderly queue's pause after a retry.
    pub suspend_current_queue_time: Duration,
    /// `brokerSuspendMaxTimeMillis` (15 s): how long the broker holds a pull with nothing new.
    pub broker_suspend_max_time: Duration,
    /// `consumerTimeoutMillisWhenSuspend` (30 s): the RPC timeout of a held pull.
    pub consumer_timeout_when_suspend: Duration,
    /// `postSubscriptionWhenPull`: send the subscription with every pull (Sextant's default:
    /// true, so a broker that lost the heartbeat still filters; RocketMQ's: false).
    pub post_subscription_when_pull: bool,
    /// Where a broadcasting group keeps its offsets (`rocketmq.client.localOffsetStoreDir`,
    /// default `~/.rocketmq_offsets`).
    pub local_offset_store_dir: PathBuf,
    /// The lock renewal period of orderly consumers (`rocketmq.client.rebalance.lockInterval`,
    /// 20 s).
    pub lock_interval: Duration,
    /// The local lock lifetime (`rocketmq.client.rebalance.lockMaxLiveTime`, 30 s).
    pub lock_max_live: Duration,
    /// How long a re-consume waits after its send-back failed (5 s).
    pub reconsume_later_delay: Duration,
    /// Test-only, deliberately broken: a dropped queue goes on being pulled and consumed. The
    /// conformance checks must catch it.
    #[doc(hidden)]
    pub broken_keep_pulling_dropped: bool,
    /// Test-only, deliberately broken: the rebalance allocates on the member list unsorted
    /// (itself first), so members disagree on who owns what. The conformance checks must
    /// catch it.
    #[doc(hidden)]
    pub broken_unsorted_rebalance: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        PushConfig {
            consumer_group: String::new(),
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::LastOffset,
            orderly: false,
            rebalance_interval: Duration::from_secs(20),
            pull_batch_size: 32,
            flow_control: FlowControl::default(),
            consume_thread_min: 20,
            consume_thread_max: 64,
            consume_message_batch_max_size: 1,
            max_reconsume_times: None,
            suspend_current_queue_time: Duration::from_secs(1),
            broker_suspend_max_time: Duration::from_secs(15),
            consumer_timeout_when_suspend: Duration::from_secs(30),
            post_subscription_when_pull: true,
            local_offset_store_dir: home.join(".rocketmq_offsets"),
            lock_interval: Duration::from_secs(20),
            lock_max_live: Duration::from_millis(LOCAL_LOCK_MAX_LIVE_MS),
            reconsume_later_delay: Duration::from_secs(5),
            broken_keep_pulling_dropped: false,
            broken_unsorted_rebalance: false,
        }
    }
}

/// Builds a [`PushConsumer`].
#[derive(Debug)]
pub struct PushConsumerBuilder {
    client: ClientConfig,
    config: PushConfig,
    subscriptions: BTreeMap<String, String>,
    strategy: Box<dyn AllocateStrategy>,
    instance: Option<ClientInstance>,
}

impl Default for PushConsumerBuilder {
    fn default() -> Self {
        PushConsumerBuilder {
            client: ClientConfig::default(),
            config: PushConfig::default(),
            subscriptions: BTreeMap::new(),
            strategy: Box::new(Averagely),
            instance: None,
        }
    }
}

impl PushConsumerBuilder {
    setter!(/// `consumerGroup`.
        consumer_group: impl Into<String> => config.consumer_group);
    setter!(/// `namesrvAddr`.
        namesrv_addr: impl Into<String> => client.namesrv_addr);
    setter!(/// Where the client records trace events (off by default).
        trace: sextant_trace::Tracer => client.trace);
    setter!(/// `instanceName`.
        instance_name: impl Into<String> => client.instance_name);
    setter!(/// `messageModel`.
        message_model: MessageModel => config.message_model);
    setter!(/// `consumeFromWhere`.
        consume_from_where: ConsumeFromWhere => config.consume_from_where);
    setter!(/// Orderly consumption.
        orderly: bool => config.orderly);
    setter!(/// `rebalanceInterval`.
        rebalance_interval: Duration => config.rebalance_interval);
    setter!(/// `pullBatchSize`.
        pull_batch_size: u32 => config.pull_batch_size);
    setter!(/// `pullThresholdForQueue`, `pullThresholdSizeForQueue`, `consumeConcurrentlyMaxSpan`.
        flow_control: FlowControl => config.flow_control);
    setter!(/// `consumeThreadMax`.
        consume_thread_max: usize => config.consume_thread_max);
    setter!(/// `consumeMessageBatchMaxSize`.
        consume_message_batch_max_size: usize => config.consume_message_batch_max_size);
    setter!(/// `maxReconsumeTimes`.
        max_reconsume_times: Option<i32> => config.max_reconsume_times);
    setter!(/// `suspendCurrentQueueTimeMillis`.
        suspend_current_queue_time: Duration => config.suspend_current_queue_time);
    setter!(/// `brokerSuspendMaxTimeMillis`.
        broker_suspend_max_time: Duration => config.broker_suspend_max_time);
    setter!(/// `postSubscriptionWhenPull`.
        post_subscription_when_pull: bool => config.post_subscription_when_pull);
    setter!(/// Where broadcasting offsets are kept.
        local_offset_store_dir: PathBuf => config.local_offset_store_dir);
    setter!(/// The orderly lock renewal period.
        lock_interval: Duration => config.lock_interval);
    setter!(/// The local lock lifetime of orderly consumers (`lockMaxLiveTime`).
        lock_max_live: Duration => config.lock_max_live);
    setter!(/// The delay before a message whose send-back failed is consumed again.
        reconsume_later_delay: Duration => config.reconsume_later_delay);
    setter!(/// How long a held pull may take before the client gives up on it
        /// (`consumerTimeoutMillisWhenSuspend`).
        consumer_timeout_when_suspend: Duration => config.consumer_timeout_when_suspend);
    setter!(#[doc(hidden)] /// Test-only: break the drop rule on purpose (see the field).
        broken_keep_pulling_dropped: bool => config.broken_keep_pulling_dropped);
    setter!(#[doc(hidden)] /// Test-only: rebalance on an unsorted member list (see the field).
        broken_unsorted_rebalance: bool => config.broken_unsorted_rebalance);

    /// Subscribe to `topic` with a tag expression (`*`, `TagA || TagB`).
    pub fn subscribe(mut self, topic: impl Into<String>, expression: impl Into<String>) -> Self {
        self.subscriptions.insert(topic.into(), expression.into());
        self
    }

    /// The allocation strategy (averagely by default).
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

    /// Start consuming: every message goes to `handle`, an async closure returning a
    /// [`ConsumeResult`].
    pub async fn start<F, Fut>(self, handle: F) -> Result<PushConsumer>
    where
        F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ConsumeResult> + Send + 'static,
    {
        let c = self.config;
        if c.consumer_group.is_empty() {
            return Err(Error::Config("consumerGroup is empty".into()));
        }
        if self.subscriptions.is_empty() {
            return Err(Error::Config("no subscription".into()));
        }
        let configured_instance = self.client.instance_name.clone();
        let instance = match self.instance {
            Some(i) => i,
            None => ClientInstance::start(self.client).await?,
        };
        let mut subscriptions: BTreeMap<String, Subscription> = self
            .subscriptions
            .iter()
            .map(|(t, e)| (t.clone(), Subscription::parse(e)))
            .collect();
        if c.message_model == MessageModel::Clustering {
            subscriptions.insert(retry_topic(&c.consumer_group), Subscription::parse("*"));
        }
        let backend = match c.message_model {
            MessageModel::Clustering => Backend::Remote,
            MessageModel::Broadcasting => {
                let ip = instance
                    .client_id()
                    .split('@')
                    .next()
                    .unwrap_or("127.0.0.1")
                    .to_owned();
                Backend::Local(
                    c.local_offset_store_dir
                        .join(format!("{ip}@{configured_instance}"))
                        .join(&c.consumer_group)
                        .join("offsets.json"),
                )
            }
        };
        let (stop, _) = watch::channel(false);
        let sub_version = crate::producer::wall_ms();
        let inner = Arc::new(Inner {
            offsets: OffsetStore::new(&c.consumer_group, backend),
            workers: Arc::new(Semaphore::new(c.consume_thread_max.max(1))),
            handler: handler(handle),
            strategy: self.strategy,
            subscriptions,
            instance: instance.clone(),
            queues: Mutex::default(),
            wake: Notify::new(),
            stop,
            tasks: Mutex::default(),
            sub_version,
            inner_producer: tokio::sync::OnceCell::new(),
            config: c,
        });
        instance.acquire();
        if let Err(e) = instance.register_consumer(
            &inner.config.consumer_group,
            Arc::new(Hook(Arc::downgrade(&inner))),
        ) {
            instance.release().await;
            return Err(e);
        }
        // Learn the routes, tell every broker of them about this member, then rebalance at once:
        // the first messages arrive without waiting for a timer.
        for t in inner.subscriptions.keys() {
            if let Err(e) = instance.update_route(t).await {
                tracing::warn!(topic = %t, error = %e, "no route yet");
            }
        }
        instance.heartbeat_all().await;
        let task = tokio::spawn(run(Arc::clone(&inner)));
        lock(&inner.tasks).push(task);
        Ok(PushConsumer { inner })
    }
}

/// A queue owned by this member: its process queue and its pull task.
struct Owned {
    pq: Arc<ProcessQueue>,
    pull: JoinHandle<()>,
}

pub(crate) struct Inner {
    config: PushConfig,
    instance: ClientInstance,
    subscriptions: BTreeMap<String, Subscription>,
    strategy: Box<dyn AllocateStrategy>,
    handler: Handler,
    offsets: OffsetStore,
    workers: Arc<Semaphore>,
    queues: Mutex<BTreeMap<MessageQueue, Owned>>,
    wake: Notify,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sub_version: i64,
    /// `CLIENT_INNER_PRODUCER`, made on first use (a failed send-back).
    inner_producer: tokio::sync::OnceCell<crate::producer::Producer>,
}

/// The producer group of a consumer's inner producer (RocketMQ's `CLIENT_INNER_PRODUCER`).
const INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// A push consumer.
pub struct PushConsumer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.inner.config.consumer_group)
            .finish_non_exhaustive()
    }
}

struct Hook(std::sync::Weak<Inner>);

impl ConsumerHook for Hook {
    fn consumer_data(&self) -> ConsumerData {
        self.0
            .upgrade()
            .map(|i| i.consumer_data())
            .unwrap_or_default()
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
        self.0
            .upgrade()
            .map(|i| i.running_info())
            .unwrap_or_default()
    }
}

impl Drop for PushConsumer {
    /// A consumer dropped without [`PushConsumer::shutdown`] still stops pulling and its tasks
    /// end (its offsets since the last periodic commit are not written).
    fn drop(&mut self) {
        self.stop_consuming();
    }
}

impl PushConsumer {
    /// A builder with RocketMQ's defaults.
    pub fn builder() -> PushConsumerBuilder {
        PushConsumerBuilder::default()
    }

    /// The client id this member is known by.
    pub fn client_id(&self) -> &str {
        self.inner.instance.client_id()
    }

    /// The client instance it runs on.
    pub fn instance(&self) -> &ClientInstance {
        &self.inner.instance
    }

    /// The queues this member owns now.
    pub fn owned(&self) -> BTreeSet<MessageQueue> {
        lock(&self.inner.queues).keys().cloned().collect()
    }

    /// The offset this member would commit for `mq` now.
    pub fn committable(&self, mq: &MessageQueue) -> Option<u64> {
        self.inner.offsets.read_memory(mq)
    }

    /// Stop taking work, at once: every owned queue stops pulling and no new handler starts;
    /// handlers already running finish, and what they consume is still committed by
    /// [`PushConsumer::shutdown`] (their "retry later" answers are left for the next owner).
    /// A handler that waits for something the application does after its last wanted message
    /// can be released after this call without that message being committed.
    pub fn stop_consuming(&self) {
        let queues = lock(&self.inner.queues);
        let _ = self.inner.stop.send(true);
        for o in queues.values() {
            o.pq.drop_queue();
            o.pull.abort();
        }
    }

    /// Rebalance now (what a membership notification does).
    pub fn rebalance_now(&self) {
        self.inner.wake.notify_one();
    }

    /// Die as a killed process would: pulls and timers are cut where they are and every
    /// connection of its client instance is closed (every client sharing that instance dies
    /// too), with nothing committed, unlocked or unregistered since the last periodic commit.
    /// The brokers learn it only from the closed connections; the next owners start from the
    /// last committed offsets (redelivering what this member consumed since). A handler
    /// already running finishes (a test's handler is not a process), but nothing it consumed
    /// is committed: the instance refuses every request from here.
    pub async fn crash(self) {
        self.stop_consuming();
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        lock(&self.inner.queues).clear();
        self.inner.instance.kill().await;
    }

    /// Stop: no more pulls or handlers, wait for running handlers, commit the offsets, release
    /// orderly locks, leave the group on every broker, release the client instance.
    pub async fn shutdown(self) {
        self.stop_consuming();
        let inner = Arc::clone(&self.inner);
        let tasks: Vec<_> = lock(&inner.tasks).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        let owned: Vec<(MessageQueue, Owned)> = std::mem::take(&mut *lock(&inner.queues))
            .into_iter()
            .collect();
        let mut idle = BTreeSet::new();
        for (mq, o) in &owned {
            if o.pq.idle(Duration::from_secs(10)).await {
                idle.insert(mq.clone());
            }
        }
        let all: BTreeSet<MessageQueue> = owned.iter().map(|(mq, _)| mq.clone()).collect();
        if let Err(e) = inner.offsets.persist_all(&inner.instance, &all).await {
            tracing::warn!(error = %e, "committing offsets at shutdown failed");
        }
        for (_, o) in &owned {
            o.pq.released();
        }
        if inner.orderly_clustering() {
            // Only queues whose handlers finished: a lock released under a running handler
            // would let the next owner consume beside it. The others lapse on the broker.
            inner.unlock(&idle).await;
        }
        inner
            .instance
            .leave_group(&inner.config.consumer_group)
            .await;
        if let Some(p) = inner.inner_producer.get() {
            p.clone().shutdown().await;
        }
        inner.instance.release().await;
    }
}

/// The consumer's own loop: rebalance (every interval and when woken), commit offsets, renew
/// orderly locks.
async fn run(inner: Arc<Inner>) {
    let mut stopped = inner.stop.subscribe();
    let persist_every = inner.instance.config().persist_consumer_offset_interval;
    let mut persist = tokio::time::interval(persist_every);
    persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut relock = tokio::time::interval(inner.config.lock_interval);
    relock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // An interval, not a sleep made anew on every pass: the other ticks must not keep pushing
    // the periodic rebalance back.
    let mut every = tokio::time::interval(inner.config.rebalance_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    persist.tick().await;
    relock.tick().await;
    every.tick().await;
    inner.rebalance().await;
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = every.tick() => inner.rebalance().await,
            _ = inner.wake.notified() => inner.rebalance().await,
            _ = persist.tick() => {
                let held: BTreeSet<MessageQueue> = lock(&inner.queues).keys().cloned().collect();
                if let Err(e) = inner.offsets.persist_all(&inner.instance, &held).await {
                    tracing::debug!(error = %e, "offset commit failed");
                }
            }
            _ = relock.tick(), if inner.orderly_clustering() => inner.lock_all().await,
        }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.instance.now()
    }

    fn orderly_clustering(&self) -> bool {
        self.config.orderly && self.config.message_model == MessageModel::Clustering
    }

    fn max_reconsume_times(&self) -> i32 {
        max_reconsume_times(self.config.max_reconsume_times, self.config.orderly)
    }

    fn consumer_data(&self) -> ConsumerData {
        consumer_data(
            &self.config.consumer_group,
            "CONSUME_PASSIVELY",
            self.config.message_model,
            self.config.consume_from_where,
            &self.subscriptions,
            self.sub_version,
        )
    }

    /// `doRebalance`: every subscribed topic.
    async fn rebalance(self: &Arc<Self>) {
        if *self.stop.borrow() {
            return;
        }
        let mut changed = false;
        for topic in self.subscriptions.keys() {
            changed |= self.rebalance_topic(topic).await;
        }
        if changed {
            // `messageQueueChanged`: tell the brokers at once.
            self.instance.heartbeat_all().await;
        }
    }

    async fn rebalance_topic(self: &Arc<Self>, topic: &str) -> bool {
        let Some(share) = rebalance::share(
            &self.instance,
            &self.config.consumer_group,
            self.config.message_model,
            self.strategy.as_ref(),
            topic,
            self.config.broken_unsorted_rebalance,
        )
        .await
        else {
            return false;
        };
        let now = self.now();
        let (held, expired_pulls): (BTreeSet<MessageQueue>, BTreeSet<MessageQueue>) = {
            let q = lock(&self.queues);
            let held: BTreeSet<_> = q.keys().filter(|mq| &*mq.topic == topic).cloned().collect();
            let exp = q
                .iter()
                .filter(|(mq, o)| {
                    &*mq.topic == topic
                        && (o.pq.is_dropped()
                            || expired(o.pq.state().last_pull, now, PULL_MAX_IDLE_MS))
                })
                .map(|(mq, _)| mq.clone())
                .collect();
            (held, exp)
        };
        let plan = RebalancePlan::compute(&held, &share, &expired_pulls);
        if plan.is_empty() {
            return false;
        }
        tracing::info!(
            group = %self.config.consumer_group,
            topic,
            drop = ?plan.drop,
            add = ?plan.add,
            "rebalance"
        );
        // Dropped queues drain side by side: the wait is the longest handler's, not their sum.
        crate::instance::futures_join_all(plan.drop.iter().map(|mq| self.remove_queue(mq))).await;
        let mut not_locked = false;
        for mq in &plan.add {
            if !self.add_queue(mq).await {
                not_locked = true;
            }
        }
        if not_locked {
            // `rebalanceLater(500)`: a queue another member still holds is tried again soon.
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(i) = me.upgrade() {
                    i.wake.notify_one();
                }
            });
        }
        true
    }

    /// `removeUnnecessaryMessageQueue`: stop pulling and consuming `mq`, wait for its running
    /// handlers, commit its offset, unlock it (orderly).
    async fn remove_queue(&self, mq: &MessageQueue) {
        let Some(owned) = lock(&self.queues).remove(mq) else {
            return;
        };
        if !self.config.broken_keep_pulling_dropped {
            owned.pq.drop_queue();
            owned.pull.abort();
        }
        if self.instance.inner.tracer.is_on() {
            // Under the queue's state lock: a pull recorded before this is one it took, and
            // none is recorded after.
            let _s = owned.pq.state();
            self.instance.inner.tracer.emit(|| Event::QueueDropped {
                group: self.config.consumer_group.clone(),
                queue: mq.into(),
            });
        }
        let wait = if self.config.orderly {
            Duration::from_secs(20)
        } else {
            Duration::from_secs(5)
        };
        // The loop that renews orderly locks waits for this (at most 20 s, well inside the
        // broker's 60 s lock life after a renewal at most 20 s ago).
        let idle = owned.pq.idle(wait).await;
        if let Err(e) = self.offsets.persist(&self.instance, mq).await {
            tracing::debug!(queue = ?mq, error = %e, "offset commit on drop failed");
        }
        owned.pq.released();
        self.offsets.remove(mq);
        if self.orderly_clustering() && idle {
            self.unlock(&BTreeSet::from([mq.clone()])).await;
        }
    }

    /// Take `mq`: lock it (orderly), find where it starts, start pulling. Whether it was taken
    /// (false: its lock is held by another member, or its offset could not be read).
    async fn add_queue(self: &Arc<Self>, mq: &MessageQueue) -> bool {
        let now = self.now();
        if self.orderly_clustering() && !self.lock_one(mq).await {
            tracing::debug!(queue = ?mq, "queue still locked by another member");
            return false;
        }
        self.offsets.remove(mq);
        let committed = self.offsets.read_store(&self.instance, mq).await;
        let retry = mq.topic.starts_with(sextant_model::broker::RETRY_PREFIX);
        let start = match start_offset(committed, self.config.consume_from_where, retry) {
            StartOffset::At(o) => Some(o),
            StartOffset::Max => self.ask_offset(mq, None).await,
            StartOffset::ByTime(t) => self.ask_offset(mq, Some(t)).await,
            StartOffset::Retry => None,
        };
        let Some(start) = start else {
            tracing::debug!(queue = ?mq, "no start offset; the next rebalance tries again");
            if self.orderly_clustering() {
                // The lock just taken would block the others for a minute for nothing.
                self.unlock(&BTreeSet::from([mq.clone()])).await;
            }
            return false;
        };
        let pq = Arc::new(ProcessQueue::new(mq.clone(), start, now));
        if self.orderly_clustering() {
            let mut s = pq.state();
            s.locked = true;
            s.last_lock = now;
        }
        {
            // Checked under the table's lock, as `stop_consuming` drops what the table holds:
            // a queue is either dropped by it or never started.
            let mut queues = lock(&self.queues);
            if !*self.stop.borrow() {
                self.instance.inner.tracer.emit(|| Event::QueueAdded {
                    group: self.config.consumer_group.clone(),
                    queue: mq.into(),
                    offset: start,
                });
                let pull = tokio::spawn(pull_loop(Arc::downgrade(self), Arc::clone(&pq)));
                queues.insert(mq.clone(), Owned { pq, pull });
                return true;
            }
        }
        if self.orderly_clustering() {
            self.unlock(&BTreeSet::from([mq.clone()])).await;
        }
        false
    }

    /// The queue's max offset, or the offset of its first message at or after `time`.
    async fn ask_offset(&self, mq: &MessageQueue, time: Option<i64>) -> Option<u64> {
        let addr = self
            .instance
            .subscribe_addr(&mq.broker_name, MASTER_ID, false)?
            .0;
        let peer = self.instance.peer(&addr).await.ok()?;
        let timeout = self.instance.config().mq_client_api_timeout;
        let r = match time {
            None => peer.max_offset(mq, timeout).await,
            Some(t) => peer.search_offset(mq, t, timeout).await,
        };
        r.map_err(|e| tracing::debug!(queue = ?mq, error = %e, "offset lookup failed"))
            .ok()
    }

    async fn lock_one(&self, mq: &MessageQueue) -> bool {
        let Some(addr) = self.instance.master_addr(&mq.broker_name) else {
            return false;
        };
        let Ok(peer) = self.instance.peer(&addr).await else {
            return false;
        };
        let locked = peer
            .lock_batch(
                &self.config.consumer_group,
                self.instance.client_id(),
                std::slice::from_ref(mq),
                Duration::from_secs(1),
            )
            .await;
        matches!(locked, Ok(l) if l.contains(mq))
    }

    /// `lockAll`: renew the locks of every owned queue, broker by broker; queues not granted
    /// lose their local lock.
    async fn lock_all(&self) {
        let owned: Vec<(MessageQueue, Arc<ProcessQueue>)> = lock(&self.queues)
            .iter()
            .map(|(mq, o)| (mq.clone(), Arc::clone(&o.pq)))
            .collect();
        let mut by_broker: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for (mq, _) in &owned {
            by_broker
                .entry(mq.broker_name.to_string())
                .or_default()
                .push(mq.clone());
        }
        for (broker, mqs) in by_broker {
            let Some(addr) = self.instance.master_addr(&broker) else {
                continue;
            };
            let Ok(peer) = self.instance.peer(&addr).await else {
                continue;
            };
            let Ok(granted) = peer
                .lock_batch(
                    &self.config.consumer_group,
                    self.instance.client_id(),
                    &mqs,
                    Duration::from_secs(1),
                )
                .await
            else {
                continue;
            };
            let granted: BTreeSet<MessageQueue> = granted.into_iter().collect();
            let now = self.now();
            for (mq, pq) in owned.iter().filter(|(mq, _)| *mq.broker_name == *broker) {
                let mut s = pq.state();
                if granted.contains(mq) {
                    s.locked = true;
                    s.last_lock = now;
                } else {
                    s.locked = false;
                }
            }
        }
    }

    async fn unlock(&self, mqs: &BTreeSet<MessageQueue>) {
        let mut by_broker: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for mq in mqs {
            by_broker
                .entry(mq.broker_name.to_string())
                .or_default()
                .push(mq.clone());
        }
        let timeout = self.instance.config().mq_client_api_timeout;
        for (broker, list) in by_broker {
            if let Some(addr) = self.instance.master_addr(&broker)
                && let Ok(peer) = self.instance.peer(&addr).await
                && let Err(e) = peer
                    .unlock_batch(
                        &self.config.consumer_group,
                        self.instance.client_id(),
                        &list,
                        timeout,
                    )
                    .await
            {
                tracing::debug!(%broker, error = %e, "unlock failed");
            }
        }
    }

    /// The local lock of an orderly queue is usable: held and renewed within its lifetime.
    fn lock_usable(&self, pq: &ProcessQueue) -> bool {
        if !self.orderly_clustering() {
            return true;
        }
        let s = pq.state();
        s.locked
            && !expired(
                s.last_lock,
                self.now(),
                self.config.lock_max_live.as_millis() as u64,
            )
    }

    /// Hand pulled messages to the handlers.
    fn submit(self: &Arc<Self>, pq: &Arc<ProcessQueue>, msgs: Vec<MessageExt>) {
        if self.config.orderly {
            let start = {
                let mut s = pq.state();
                for m in msgs {
                    s.waiting.insert(m.queue_offset, m);
                }
                !std::mem::replace(&mut s.consuming, true)
            };
            if start {
                tokio::spawn(consume_orderly(Arc::downgrade(self), Arc::clone(pq)));
            }
            return;
        }
        let batch = self.config.consume_message_batch_max_size.max(1);
        let mut msgs = msgs;
        while !msgs.is_empty() {
            let rest = msgs.split_off(batch.min(msgs.len()));
            self.spawn_concurrent(pq, msgs, Duration::ZERO);
            msgs = rest;
        }
    }

    fn spawn_concurrent(
        self: &Arc<Self>,
        pq: &Arc<ProcessQueue>,
        msgs: Vec<MessageExt>,
        delay: Duration,
    ) {
        let me = Arc::downgrade(self);
        let pq = Arc::clone(pq);
        let workers = Arc::clone(&self.workers);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let Ok(_permit) = workers.acquire_owned().await else {
                return;
            };
            let Some(inner) = me.upgrade() else { return };
            {
                // Checked under the state lock, so a drop either sees this handler running or
                // this handler sees the drop.
                let mut s = pq.state();
                if pq.is_dropped() {
                    return;
                }
                s.running += 1;
                inner.trace_consumed(&msgs);
            }
            let result = call(&inner.handler, msgs.clone()).await;
            inner.finish_concurrent(&pq, msgs, result).await;
            pq.state().running -= 1;
            pq.changed.notify_waiters();
        });
    }

    /// `processConsumeResult` (concurrent).
    async fn finish_concurrent(
        self: &Arc<Self>,
        pq: &Arc<ProcessQueue>,
        msgs: Vec<MessageExt>,
        result: ConsumeResult,
    ) {
        if pq.is_released() {
            return;
        }
        let done = match result {
            ConsumeResult::Success => msgs,
            // A draining queue records what succeeded; a retry is left to the next owner.
            _ if pq.is_dropped() => return,
            ConsumeResult::RetryLater | ConsumeResult::RetryLaterAt(_)
                if self.config.message_model == MessageModel::Broadcasting =>
            {
                tracing::warn!(n = msgs.len(), "broadcasting: a failed message is dropped");
                msgs
            }
            ConsumeResult::RetryLater | ConsumeResult::RetryLaterAt(_) => {
                let level = match result {
                    ConsumeResult::RetryLaterAt(l) => l,
                    _ => 0,
                };
                let mut sent = Vec::new();
                let mut again = Vec::new();
                for m in msgs {
                    if self.send_back(&m, level).await {
                        sent.push(m);
                    } else {
                        again.push(m);
                    }
                }
                if !again.is_empty() {
                    for m in &mut again {
                        m.reconsume_times += 1;
                    }
                    // The send-back failed: consume them here again later; they hold the
                    // committable offset back meanwhile.
                    self.spawn_concurrent(pq, again, self.config.reconsume_later_delay);
                }
                sent
            }
        };
        let offset = pq.consumed(&done, self.now());
        if !pq.is_released() {
            self.offsets.update(&pq.mq, offset, true);
        }
    }

    /// CONSUMER_SEND_MSG_BACK to the message's broker; whether it was accepted.
    async fn send_back(&self, m: &MessageExt, delay_level: i32) -> bool {
        let Some(addr) = self.instance.master_addr(&m.queue.broker_name) else {
            return false;
        };
        let Ok(peer) = self.instance.peer(&addr).await else {
            return false;
        };
        let header = ConsumerSendMsgBackRequestHeader {
            offset: m.commit_log_offset as i64,
            group: self.config.consumer_group.clone(),
            delay_level,
            origin_msg_id: Some(m.msg_id.clone()),
            origin_topic: Some(m.topic.clone()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.max_reconsume_times()),
        };
        match peer.send_back(header, Duration::from_secs(5)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(id = %m.msg_id, error = %e, "send back failed; sending it as a message");
                self.send_back_as_message(m).await
            }
        }
    }

    /// `sendMessageBackAsNormalMessage`: when CONSUMER_SEND_MSG_BACK fails, the message goes to
    /// the group's retry topic as an ordinary send through the client's inner producer, with
    /// its reconsume count raised and the broker's delay level (`3 + reconsumeTimes`); past the
    /// maximum the broker moves it to the dead-letter topic.
    async fn send_back_as_message(&self, m: &MessageExt) -> bool {
        use sextant_remoting::message::property;
        let producer = match self
            .inner_producer
            .get_or_try_init(|| {
                crate::producer::Producer::builder()
                    .producer_group(INNER_PRODUCER_GROUP)
                    .instance(self.instance.clone())
                    .start()
            })
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "no inner producer");
                return false;
            }
        };
        let mut props: BTreeMap<String, String> = m
            .properties()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        props.remove("TRAN_MSG");
        props.remove(property::DELAY);
        props
            .entry(property::RETRY_TOPIC.into())
            .or_insert_with(|| m.topic.clone());
        props
            .entry(property::ORIGIN_MESSAGE_ID.into())
            .or_insert_with(|| m.msg_id.clone());
        props.insert("RECONSUME_TIME".into(), (m.reconsume_times + 1).to_string());
        props.insert(
            property::MAX_RECONSUME_TIMES.into(),
            self.max_reconsume_times().to_string(),
        );
        let mut msg =
            crate::message::Message::new(retry_topic(&self.config.consumer_group), m.body.clone())
                .with_flag(m.flag)
                .with_delay_level((3 + m.reconsume_times.max(0)) as u32);
        for (k, v) in props {
            msg = msg.with_property(k, v);
        }
        match producer.send(msg).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(id = %m.msg_id, error = %e, "sending it back as a message failed");
                false
            }
        }
    }

    fn running_info(&self) -> Vec<u8> {
        running_info_json(self)
    }
}

async fn call(handler: &Handler, msgs: Vec<MessageExt>) -> ConsumeResult {
    // A handler that panics is a failed consumption (RocketMQ: an exception is RECONSUME_LATER).
    let fut = handler(msgs);
    match tokio::spawn(fut).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "message handler panicked");
            ConsumeResult::RetryLater
        }
    }
}

/// One orderly queue's consumption: one batch at a time, in offset order, while the lock holds.
async fn consume_orderly(me: std::sync::Weak<Inner>, pq: Arc<ProcessQueue>) {
    loop {
        let Some(inner) = me.upgrade() else { return };
        if pq.is_dropped() {
            pq.state().consuming = false;
            return;
        }
        if !inner.lock_usable(&pq) {
            // `tryLockLaterAndReconsume`: take the lock again, then go on.
            drop(inner);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(inner) = me.upgrade() else { return };
            if inner.lock_one(&pq.mq).await {
                let mut s = pq.state();
                s.locked = true;
                s.last_lock = inner.now();
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        }
        let batch: Vec<MessageExt> = {
            let mut s = pq.state();
            let n = inner.config.consume_message_batch_max_size.max(1);
            let keys: Vec<u64> = s.waiting.keys().take(n).copied().collect();
            if keys.is_empty() || pq.is_dropped() {
                s.consuming = false;
                return;
            }
            s.running += 1;
            let batch: Vec<MessageExt> = keys.iter().filter_map(|k| s.waiting.remove(k)).collect();
            inner.trace_consumed(&batch);
            batch
        };
        let Ok(permit) = Arc::clone(&inner.workers).acquire_owned().await else {
            return;
        };
        let result = if pq.is_dropped() {
            ConsumeResult::RetryLater
        } else {
            call(&inner.handler, batch.clone()).await
        };
        drop(permit);
        let mut suspend = false;
        if !pq.is_released() {
            match result {
                // A draining queue still records what succeeded (its lock is held until then).
                ConsumeResult::Success => {
                    let offset = pq.consumed(&batch, inner.now());
                    inner.offsets.update(&pq.mq, offset, true);
                }
                _ if pq.is_dropped() => {}
                ConsumeResult::RetryLater | ConsumeResult::RetryLaterAt(_) => {
                    let max = inner.max_reconsume_times();
                    let mut keep = Vec::new();
                    for m in &batch {
                        match orderly_retry(m.reconsume_times, max) {
                            OrderlyRetry::DeadLetter if inner.send_back(m, -1).await => {}
                            _ => keep.push(m.clone()),
                        }
                    }
                    if keep.is_empty() {
                        let offset = pq.consumed(&batch, inner.now());
                        inner.offsets.update(&pq.mq, offset, true);
                    } else {
                        // `makeMessageToConsumeAgain`: the whole batch goes back, counted once more.
                        let mut s = pq.state();
                        for mut m in batch.iter().cloned() {
                            m.reconsume_times += 1;
                            s.waiting.insert(m.queue_offset, m);
                        }
                        suspend = true;
                    }
                }
            }
        }
        pq.state().running -= 1;
        pq.changed.notify_waiters();
        if suspend {
            let pause = inner.config.suspend_current_queue_time;
            drop(inner);
            tokio::time::sleep(pause).await;
        }
    }
}

/// The pull task of one owned queue.
async fn pull_loop(me: std::sync::Weak<Inner>, pq: Arc<ProcessQueue>) {
    loop {
        let Some(inner) = me.upgrade() else { return };
        if pq.is_dropped() {
            return;
        }
        // The queue is alive while its task runs, paused or not (`lastPullTimestamp` is set
        // before the flow-control check): only a stuck task lets it expire.
        pq.state().last_pull = inner.now();
        if let Some(why) = pq.pause(&inner.config.flow_control, inner.config.orderly) {
            tracing::trace!(queue = ?pq.mq, ?why, "pull paused");
            drop(inner);
            tokio::time::sleep(Duration::from_millis(PULL_DELAY_FLOW_CONTROL)).await;
            continue;
        }
        if !inner.lock_usable(&pq) {
            let delay = inner.instance.config().pull_time_delay_when_exception;
            drop(inner);
            tokio::time::sleep(delay).await;
            continue;
        }
        let offset = pq.state().offsets.next_pull();
        let answer = inner.pull_once(&pq, offset).await;
        let on_error = inner
            .instance
            .config()
            .pull_time_delay_when_exception
            .as_millis() as u64;
        let (answer, msgs) = answer;
        match after_pull(answer, offset, on_error) {
            PullNext::Pull {
                offset: next,
                delay,
            } => {
                let now = inner.now();
                match answer {
                    PullAnswer::Found { .. } | PullAnswer::Nothing { .. } => {
                        pq.pulled(&msgs, next, now);
                        if inner.instance.inner.tracer.is_on() {
                            // Under the state lock, against the drop (see `remove_queue`).
                            let _s = pq.state();
                            if !pq.is_dropped() {
                                inner.instance.inner.tracer.emit(|| Event::Pull {
                                    group: inner.config.consumer_group.clone(),
                                    queue: (&pq.mq).into(),
                                    offset,
                                    found: msgs.len() as u32,
                                    next,
                                });
                            }
                        }
                        if pq.is_dropped() {
                            return;
                        }
                        if msgs.is_empty() {
                            // Nothing in flight moved: the committable offset is the next pull.
                            let c = pq.state().offsets.commit_offset();
                            inner.offsets.update(&pq.mq, c, true);
                        } else {
                            inner.submit(&pq, msgs);
                        }
                    }
                    _ => {}
                }
                if delay > 0 {
                    drop(inner);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
            PullNext::DropAndRebalance { offset: moved } => {
                tracing::warn!(queue = ?pq.mq, from = offset, to = moved, "offset illegal, the queue moves");
                pq.drop_queue();
                {
                    let _s = pq.state();
                    inner.instance.inner.tracer.emit(|| Event::QueueDropped {
                        group: inner.config.consumer_group.clone(),
                        queue: (&pq.mq).into(),
                    });
                }
                inner.offsets.update(&pq.mq, moved, false);
                if let Err(e) = inner.offsets.persist(&inner.instance, &pq.mq).await {
                    tracing::debug!(error = %e, "committing the moved offset failed");
                }
                // Only this queue's own entry: a rebalance may have replaced it meanwhile.
                let mine = {
                    let mut q = lock(&inner.queues);
                    let mine = q.get(&pq.mq).is_some_and(|o| Arc::ptr_eq(&o.pq, &pq));
                    if mine {
                        q.remove(&pq.mq);
                    }
                    mine
                };
                pq.released();
                if mine {
                    inner.offsets.remove(&pq.mq);
                }
                inner.wake.notify_one();
                return;
            }
        }
    }
}

impl Inner {
    /// Record the messages handed to the handler.
    fn trace_consumed(&self, msgs: &[MessageExt]) {
        let tracer = &self.instance.inner.tracer;
        if !tracer.is_on() {
            return;
        }
        for m in msgs {
            tracer.emit(|| Event::Consumed {
                group: self.config.consumer_group.clone(),
                queue: (&m.queue).into(),
                offset: m.queue_offset,
                msg_id: m.msg_id.clone(),
            });
        }
    }

    /// One long-polling pull, its answer as the model classifies it, and the messages that
    /// pass the subscription.
    async fn pull_once(&self, pq: &ProcessQueue, offset: u64) -> (PullAnswer, Vec<MessageExt>) {
        let mq = &pq.mq;
        let failed = (pull_answer(None, offset), Vec::new());
        let pull_from = pq.state().pull_from;
        let Some((addr, slave)) = self
            .instance
            .subscribe_addr(&mq.broker_name, pull_from, false)
        else {
            let _ = self.instance.update_route(&mq.topic).await;
            return failed;
        };
        let peer = match self.instance.peer(&addr).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "pull: broker unreachable");
                return failed;
            }
        };
        let sub = self.subscriptions.get(&*mq.topic);
        let commit = self.offsets.read_memory(mq);
        let post = self.config.post_subscription_when_pull;
        let clustering = self.config.message_model == MessageModel::Clustering;
        let header = PullMessageRequestHeader {
            sys_flag: pull_sys_flag(commit, clustering, slave, post),
            commit_offset: commit.unwrap_or(0) as i64,
            suspend_timeout_millis: self.config.broker_suspend_max_time.as_millis() as i64,
            sub_version: self.sub_version,
            subscription: post
                .then(|| sub.map_or_else(|| "*".to_owned(), |s| s.expression.clone())),
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::new(
                &self.config.consumer_group,
                &mq.topic,
                mq.queue_id as i32,
                offset as i64,
                self.config.pull_batch_size as i32,
            )
        };
        let timeout = self.config.consumer_timeout_when_suspend;
        let (code, h, body) = match peer.pull(&header, timeout).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(queue = ?mq, error = %e, "pull failed");
                return (pull_answer(e.code(), offset), Vec::new());
            }
        };
        pq.state().pull_from = u64::try_from(h.suggest_which_broker_id).unwrap_or(MASTER_ID);
        let answer = pull_answer(Some(code), h.next_begin_offset.max(0) as u64);
        if !matches!(answer, PullAnswer::Found { .. }) {
            return (answer, Vec::new());
        }
        let msgs = match decode_pulled(&body, mq) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(queue = ?mq, error = %e, "undecodable messages");
                return failed;
            }
        };
        let kept: Vec<MessageExt> = match sub {
            Some(s) if !s.is_all() => msgs.into_iter().filter(|m| s.matches(m.tags())).collect(),
            _ => msgs,
        };
        (answer, kept)
    }
}

/// `ConsumerRunningInfo` as fastjson writes it: properties, subscriptions and the process
/// queues (`mqTable`, keyed by queue objects).
fn running_info_json(inner: &Inner) -> Vec<u8> {
    use std::fmt::Write;
    // The process queues keep the instance's clock; RocketMQ reports wall-clock milliseconds.
    let now = inner.instance.now();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let wall = |t: u64| {
        if t == 0 {
            0
        } else {
            epoch.saturating_sub(now.saturating_sub(t))
        }
    };
    let mut out = String::from("{\"mqTable\":{");
    let queues: Vec<(MessageQueue, Arc<ProcessQueue>)> = lock(&inner.queues)
        .iter()
        .map(|(mq, o)| (mq.clone(), Arc::clone(&o.pq)))
        .collect();
    for (i, (mq, pq)) in queues.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let s = pq.state();
        let min = s.offsets.in_flight().next().unwrap_or(0);
        let max = s.offsets.in_flight().last().unwrap_or(0);
        let commit = inner.offsets.read_memory(mq).unwrap_or(0);
        let _ = write!(
            out,
            "{}:{{\"cachedMsgCount\":{},\"cachedMsgMaxOffset\":{max},\"cachedMsgMinOffset\":{min},\"cachedMsgSizeInMiB\":{},\"commitOffset\":{commit},\"droped\":{},\"lastConsumeTimestamp\":{},\"lastLockTimestamp\":{},\"lastPullTimestamp\":{},\"locked\":{},\"transactionMsgCount\":0,\"transactionMsgMaxOffset\":0,\"transactionMsgMinOffset\":0,\"tryUnlockTimes\":0}}",
            serde_json::to_string(&crate::api::mq_json(mq)).expect("plain data"),
            s.offsets.len(),
            s.cached_bytes / (1024 * 1024),
            pq.is_dropped(),
            wall(s.last_consume),
            wall(s.last_lock),
            wall(s.last_pull),
            s.locked,
        );
    }
    let mut props = BTreeMap::new();
    props.insert("consumerGroup", inner.config.consumer_group.clone());
    props.insert("messageModel", inner.config.message_model.name().to_owned());
    props.insert("PROP_CONSUME_TYPE", "CONSUME_PASSIVELY".to_owned());
    props.insert("PROP_CONSUMEORDERLY", inner.config.orderly.to_string());
    props.insert(
        "PROP_THREADPOOL_CORE_SIZE",
        inner.config.consume_thread_min.to_string(),
    );
    props.insert(
        "PROP_CONSUMER_START_TIMESTAMP",
        inner.sub_version.to_string(),
    );
    props.insert(
        "PROP_NAMESERVER_ADDR",
        format!("{};", inner.instance.namesrvs().join(";")),
    );
    props.insert("PROP_CLIENT_VERSION", "V5_3_3".to_owned());
    let subs: Vec<SubscriptionData> = inner
        .subscriptions
        .iter()
        .map(|(t, s)| subscription_data(t, s, inner.sub_version))
        .collect();
    let _ = write!(
        out,
        "}},\"properties\":{},\"subscriptionSet\":{}}}",
        serde_json::to_string(&props).expect("plain data"),
        serde_json::to_string(&subs).expect("plain data"),
    );
    out.into_bytes()
}
