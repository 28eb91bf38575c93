//! The producer (RocketMQ's `DefaultMQProducer`): sync sends with retries inside one time
//! budget, async sends with a bounded in-flight window, oneway, batches, sends to a chosen queue
//! or through a selector (ordered messages by key).
//!
//! Every decision is the model's: the queues a topic offers (`TopicPublishInfo`), which queue an
//! attempt goes to and which broker a retry avoids (`FaultStrategy`, `SendIndex`), whether an
//! attempt's outcome retries and when the budget is spent (`SendAttempts`), the hash selector
//! (`client::select_by_hash`) and what a message may be (`client::check_message`). This file
//! owns the requests, the clocks and the window.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_model::client::{check_message, select_by_hash};
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, LatencyTables, SendAttempts, SendError as ModelSendError,
    SendIndex, SendPolicy, SendStep, TopicPublishInfo,
};
use sextant_model::route::MessageQueue;
use sextant_remoting::body::java_hash;
use sextant_remoting::code::{request, response};
use sextant_remoting::message::{
    BatchItem, encode_properties, encode_send_batch, property, sys_flag,
};
use sextant_remoting::transport::TransportError;
use sextant_remoting::{ExtFields, RemotingCommand};
use sextant_trace::{Event, SendOutcome};
use tokio::sync::Semaphore;

use crate::api::send_response;
use crate::config::ClientConfig;
use crate::error::{Attempt, Error, Result};
use crate::instance::{ClientInstance, lock};
use crate::message::{COMPRESSION_ZLIB, Message, SendResult, SendStatus, compress};

/// A producer's settings, with RocketMQ's names and defaults (`DefaultMQProducer`).
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `producerGroup`.
    pub producer_group: String,
    /// `sendMsgTimeout` (3 s): the budget of all attempts of one send together.
    pub send_msg_timeout: Duration,
    /// `retryTimesWhenSendFailed` (2): extra attempts of a sync send.
    pub retry_times_when_send_failed: u32,
    /// `retryTimesWhenSendAsyncFailed` (2): extra attempts of an async send.
    pub retry_times_when_send_async_failed: u32,
    /// `retryAnotherBrokerWhenNotStoreOK` (false): retry a stored-but-not-flushed send elsewhere.
    pub retry_another_broker_when_not_store_ok: bool,
    /// `sendLatencyFaultEnable` (false): avoid slow and failed brokers for a while.
    pub send_latency_fault_enable: bool,
    /// The latency tables fault tolerance uses (RocketMQ 5.x's by default).
    pub latency_tables: LatencyTables,
    /// `maxMessageSize` (4 MiB): the largest body, or batch body.
    pub max_message_size: usize,
    /// `compressMsgBodyOverHowmuch` (4 KiB): bodies at least this long are zlib-compressed.
    pub compress_msg_body_over_howmuch: usize,
    /// `defaultTopicQueueNums` (4): queues per broker of a topic created by its first send.
    pub default_topic_queue_nums: u32,
    /// `backPressureForAsyncSendNum` (1024): async sends in flight before `send_async` waits.
    pub back_pressure_for_async_send_num: usize,
    /// `backPressureForAsyncSendSize` (100 MiB): body bytes in flight before `send_async` waits.
    pub back_pressure_for_async_send_size: usize,
    /// Test-only, deliberately broken: every retry starts a fresh selection, forgetting the
    /// broker that just failed. The conformance checks must catch it.
    #[doc(hidden)]
    pub broken_retry_same_broker: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            producer_group: "DEFAULT_PRODUCER".into(),
            send_msg_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            retry_another_broker_when_not_store_ok: false,
            send_latency_fault_enable: false,
            latency_tables: LatencyTables::rocketmq_5(),
            max_message_size: 4 * 1024 * 1024,
            compress_msg_body_over_howmuch: 4096,
            default_topic_queue_nums: 4,
            back_pressure_for_async_send_num: 1024,
            back_pressure_for_async_send_size: 100 * 1024 * 1024,
            broken_retry_same_broker: false,
        }
    }
}

/// Builds a [`Producer`].
#[derive(Debug, Default)]
pub struct ProducerBuilder {
    client: ClientConfig,
    config: ProducerConfig,
    instance: Option<ClientInstance>,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident : $t:ty => $($path:ident).+) => {
        $(#[$m])*
        pub fn $name(mut self, v: $t) -> Self {
            self.$($path).+ = v.into();
            self
        }
    };
}
pub(crate) use setter;

impl ProducerBuilder {
    setter!(/// `producerGroup`.
        producer_group: impl Into<String> => config.producer_group);
    setter!(/// `namesrvAddr` (`host:port;host:port`).
        namesrv_addr: impl Into<String> => client.namesrv_addr);
    setter!(/// Where the client records trace events (off by default).
        trace: sextant_trace::Tracer => client.trace);
    setter!(/// `instanceName`.
        instance_name: impl Into<String> => client.instance_name);
    setter!(/// `sendMsgTimeout`.
        send_msg_timeout: Duration => config.send_msg_timeout);
    setter!(/// `retryTimesWhenSendFailed`.
        retry_times_when_send_failed: u32 => config.retry_times_when_send_failed);
    setter!(/// `retryTimesWhenSendAsyncFailed`.
        retry_times_when_send_async_failed: u32 => config.retry_times_when_send_async_failed);
    setter!(/// `retryAnotherBrokerWhenNotStoreOK`.
        retry_another_broker_when_not_store_ok: bool => config.retry_another_broker_when_not_store_ok);
    setter!(/// `sendLatencyFaultEnable`.
        send_latency_fault_enable: bool => config.send_latency_fault_enable);
    setter!(/// The latency tables of fault tolerance.
        latency_tables: LatencyTables => config.latency_tables);
    setter!(/// `maxMessageSize`.
        max_message_size: usize => config.max_message_size);
    setter!(/// `compressMsgBodyOverHowmuch`.
        compress_msg_body_over_howmuch: usize => config.compress_msg_body_over_howmuch);
    setter!(/// `defaultTopicQueueNums`.
        default_topic_queue_nums: u32 => config.default_topic_queue_nums);
    setter!(/// `backPressureForAsyncSendNum`.
        back_pressure_for_async_send_num: usize => config.back_pressure_for_async_send_num);
    setter!(/// `backPressureForAsyncSendSize`.
        back_pressure_for_async_send_size: usize => config.back_pressure_for_async_send_size);
    setter!(#[doc(hidden)] /// Test-only: break the retry rule on purpose (see the field).
        broken_retry_same_broker: bool => config.broken_retry_same_broker);

    /// The whole client configuration (timers, client IP, ...).
    pub fn client_config(mut self, c: ClientConfig) -> Self {
        self.client = c;
        self
    }

    /// Use an existing client instance (its connections and routes) instead of a new one.
    pub fn instance(mut self, instance: ClientInstance) -> Self {
        self.instance = Some(instance);
        self
    }

    /// Start the producer.
    pub async fn start(self) -> Result<Producer> {
        let c = self.config;
        if c.producer_group.is_empty() {
            return Err(Error::Config("producerGroup is empty".into()));
        }
        let instance = match self.instance {
            Some(i) => i,
            None => ClientInstance::start(self.client).await?,
        };
        instance.acquire();
        instance.register_producer(&c.producer_group);
        let strategy = FaultStrategy {
            enabled: c.send_latency_fault_enable,
            tables: c.latency_tables.clone(),
            tolerance: Default::default(),
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let window = Arc::new(Semaphore::new(c.back_pressure_for_async_send_num.max(1)));
        let bytes_capacity = c
            .back_pressure_for_async_send_size
            .clamp(1 << 20, u32::MAX as usize);
        let bytes = Arc::new(Semaphore::new(bytes_capacity));
        let inner = Arc::new(Inner {
            instance,
            select: Mutex::new((strategy, SendIndex::new(seed))),
            window,
            bytes,
            bytes_capacity,
            sends: AtomicU64::new(0),
            config: c,
        });
        inner.instance.heartbeat_all().await;
        Ok(Producer { inner })
    }
}

struct Inner {
    config: ProducerConfig,
    instance: ClientInstance,
    select: Mutex<(FaultStrategy, SendIndex)>,
    window: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bytes_capacity: usize,
    /// Sends numbered for the trace.
    sends: AtomicU64,
}

/// A producer. Cheap to clone; every clone shares the connections, routes and fault items.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("group", &self.inner.config.producer_group)
            .finish_non_exhaustive()
    }
}

/// A message (or batch) ready to go: ids set, body compressed, properties encoded.
struct Prepared {
    topic: String,
    body: Bytes,
    flag: i32,
    sys_flag: i32,
    properties: String,
    msg_id: String,
    batch: bool,
    reconsume_times: Option<i32>,
    max_reconsume_times: Option<i32>,
}

/// How one attempt ended, before the model classifies it.
enum AttemptError {
    /// Connection, send or timeout failure.
    Remote(Error),
    /// The broker answered an error code.
    Broker {
        code: i32,
        remark: String,
        addr: String,
    },
    /// No master address for the broker (`MQClientException`).
    NoAddress,
}

impl AttemptError {
    fn outcome(&self) -> AttemptOutcome {
        match self {
            AttemptError::Remote(_) => AttemptOutcome::Remoting,
            AttemptError::Broker { code, .. } => AttemptOutcome::Broker(*code),
            AttemptError::NoAddress => AttemptOutcome::Client,
        }
    }

    fn describe(&self) -> String {
        match self {
            AttemptError::Remote(e) => e.to_string(),
            AttemptError::Broker { code, remark, .. } => format!(
                "code {code} ({}): {remark}",
                sextant_remoting::code::response_name(*code).unwrap_or("?")
            ),
            AttemptError::NoAddress => "no master address".into(),
        }
    }
}

/// Where an attempt stands among its send's, for its trace record.
struct TraceAt {
    send: u64,
    attempt: u32,
    route_version: u64,
    /// The address the request was sent to (empty: none was found).
    addr: String,
    elapsed: Duration,
}

/// The trace record of one attempt.
fn trace_attempt(
    producer: &Producer,
    p: &Prepared,
    mq: &MessageQueue,
    result: &std::result::Result<SendResult, AttemptError>,
    at: TraceAt,
) -> Event {
    let (outcome, offset, code) = match result {
        Ok(r) if r.status == SendStatus::SendOk => (SendOutcome::Ok, Some(r.queue_offset), None),
        Ok(r) => (SendOutcome::NotStoreOk, Some(r.queue_offset), None),
        Err(AttemptError::Broker { code, .. }) => (SendOutcome::Refused, None, Some(*code)),
        Err(AttemptError::Remote(Error::Remote {
            source: TransportError::Timeout { .. },
            ..
        })) => (SendOutcome::Timeout, None, None),
        Err(_) => (SendOutcome::Network, None, None),
    };
    Event::SendAttempt {
        group: producer.inner.config.producer_group.clone(),
        send: at.send,
        attempt: at.attempt,
        msg_id: p.msg_id.clone(),
        queue: mq.into(),
        addr: at.addr,
        route_version: at.route_version,
        outcome,
        offset,
        code,
        latency_us: at.elapsed.as_micros() as u64,
    }
}

/// How a send picks its queue.
enum Target<'a> {
    /// The model's selection, with retries.
    Select { retries: u32 },
    /// This queue, once.
    Queue(&'a MessageQueue),
}

impl Producer {
    /// A builder with RocketMQ's defaults.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// The producer's group.
    pub fn group(&self) -> &str {
        &self.inner.config.producer_group
    }

    /// The client instance it runs on.
    pub fn instance(&self) -> &ClientInstance {
        &self.inner.instance
    }

    /// The model's fault items (which brokers are avoided until when).
    pub fn fault_strategy(&self) -> FaultStrategy {
        lock(&self.inner.select).0.clone()
    }

    fn prepare(&self, mut msg: Message) -> Result<Prepared> {
        let c = &self.inner.config;
        check_message(&msg.topic, msg.body.len(), c.max_message_size).map_err(|why| {
            if msg.body.len() > c.max_message_size {
                Error::MessageTooLarge {
                    size: msg.body.len(),
                    max: c.max_message_size,
                }
            } else {
                Error::InvalidMessage(why)
            }
        })?;
        let msg_id = match msg.properties.get(property::UNIQ_KEY) {
            Some(id) => id.clone(),
            None => {
                let id = self.inner.instance.next_msg_id();
                msg.properties.insert(property::UNIQ_KEY.into(), id.clone());
                id
            }
        };
        msg.properties
            .entry(property::WAIT.into())
            .or_insert_with(|| "true".into());
        let mut sys = 0;
        let body = if msg.body.len() >= c.compress_msg_body_over_howmuch {
            let z = compress(&msg.body);
            sys |= sys_flag::COMPRESSED | COMPRESSION_ZLIB;
            Bytes::from(z)
        } else {
            msg.body
        };
        // A message sent to a retry topic carries its reconsume counts in the header too.
        let (reconsume_times, max_reconsume_times) =
            if msg.topic.starts_with(sextant_model::broker::RETRY_PREFIX) {
                (
                    msg.properties
                        .get("RECONSUME_TIME")
                        .and_then(|v| v.parse().ok()),
                    msg.properties
                        .get(property::MAX_RECONSUME_TIMES)
                        .and_then(|v| v.parse().ok()),
                )
            } else {
                (None, None)
            };
        let properties = encode_props(&msg.properties);
        if properties.len() > i16::MAX as usize {
            return Err(Error::InvalidMessage(format!(
                "the properties are {} bytes, more than 32767",
                properties.len()
            )));
        }
        Ok(Prepared {
            topic: msg.topic,
            body,
            flag: msg.flag,
            sys_flag: sys,
            properties,
            msg_id,
            batch: false,
            reconsume_times,
            max_reconsume_times,
        })
    }

    fn prepare_batch(&self, msgs: Vec<Message>) -> Result<Prepared> {
        let c = &self.inner.config;
        let Some(first) = msgs.first() else {
            return Err(Error::InvalidMessage("an empty batch".into()));
        };
        let topic = first.topic.clone();
        if topic.starts_with(sextant_model::broker::RETRY_PREFIX) {
            return Err(Error::InvalidMessage(
                "retry group topic is not supported for batching".into(),
            ));
        }
        let mut ids = Vec::with_capacity(msgs.len());
        let mut props = Vec::with_capacity(msgs.len());
        for m in &msgs {
            if m.topic != topic {
                return Err(Error::InvalidMessage(
                    "the topic of the messages in one batch should be the same".into(),
                ));
            }
            if m.delay_level().is_some() {
                return Err(Error::InvalidMessage(
                    "TimeDelayLevel is not supported for batching".into(),
                ));
            }
            check_message(&m.topic, m.body.len(), c.max_message_size)
                .map_err(Error::InvalidMessage)?;
            let mut p = m.properties.clone();
            let id = p
                .entry(property::UNIQ_KEY.into())
                .or_insert_with(|| self.inner.instance.next_msg_id())
                .clone();
            p.entry(property::WAIT.into())
                .or_insert_with(|| "true".into());
            ids.push(id);
            props.push(encode_props(&p));
        }
        let items: Vec<BatchItem<'_>> = msgs
            .iter()
            .zip(&props)
            .map(|(m, p)| BatchItem {
                flag: m.flag,
                body: &m.body,
                properties: p,
            })
            .collect();
        let mut body = Vec::with_capacity(msgs.iter().map(|m| m.body.len() + 64).sum());
        encode_send_batch(&items, &mut body).map_err(|e| Error::InvalidMessage(e.to_string()))?;
        if body.len() > c.max_message_size {
            return Err(Error::MessageTooLarge {
                size: body.len(),
                max: c.max_message_size,
            });
        }
        Ok(Prepared {
            topic,
            body: Bytes::from(body),
            flag: 0,
            sys_flag: 0,
            properties: encode_properties([(property::WAIT, "true")]),
            msg_id: ids.join(","),
            batch: true,
            reconsume_times: None,
            max_reconsume_times: None,
        })
    }

    /// The SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) request for one attempt: the fields of
    /// `SendMessageRequestHeaderV2`, written straight into the extFields buffer in key order (no
    /// owned copy of each value on the way).
    fn request(&self, p: &Prepared, mq: &MessageQueue) -> RemotingCommand {
        let c = &self.inner.config;
        let mut n = Num::default();
        let mut ext = ExtFields::with_capacity(
            14,
            c.producer_group.len() + p.topic.len() + p.properties.len() + mq.broker_name.len() + 96,
        );
        ext.insert("a", &c.producer_group);
        ext.insert("b", &p.topic);
        ext.insert("c", sextant_model::broker::AUTO_CREATE_TOPIC);
        ext.insert("d", n.of(i64::from(c.default_topic_queue_nums)));
        ext.insert("e", n.of(i64::from(mq.queue_id)));
        ext.insert("f", n.of(i64::from(p.sys_flag)));
        ext.insert("g", n.of(wall_ms()));
        ext.insert("h", n.of(i64::from(p.flag)));
        ext.insert("i", &p.properties);
        ext.insert("j", n.of(i64::from(p.reconsume_times.unwrap_or(0))));
        ext.insert("k", "false");
        if let Some(l) = p.max_reconsume_times {
            ext.insert("l", n.of(i64::from(l)));
        }
        ext.insert("m", if p.batch { "true" } else { "false" });
        ext.insert("n", &mq.broker_name);
        let code = if p.batch {
            request::SEND_BATCH_MESSAGE
        } else {
            request::SEND_MESSAGE_V2
        };
        RemotingCommand::request(code, 0)
            .with_ext(ext)
            .with_body(p.body.clone())
    }

    /// The broker's master address, refreshing the route once if it is not known
    /// (`sendKernelImpl`).
    async fn master_of(&self, mq: &MessageQueue) -> Option<String> {
        if let Some(a) = self.inner.instance.master_addr(&mq.broker_name) {
            return Some(a);
        }
        let _ = self.inner.instance.update_route(&mq.topic).await;
        self.inner.instance.master_addr(&mq.broker_name)
    }

    /// One attempt: send `p` to `mq` within `timeout`.
    async fn attempt(
        &self,
        p: &Prepared,
        mq: &MessageQueue,
        timeout: Duration,
        sent_to: &mut String,
    ) -> std::result::Result<SendResult, AttemptError> {
        let Some(addr) = self.master_of(mq).await else {
            return Err(AttemptError::NoAddress);
        };
        sent_to.clone_from(&addr);
        let instance = &self.inner.instance;
        let peer = instance.peer(&addr).await.map_err(AttemptError::Remote)?;
        let resp = match peer.call(self.request(p, mq), timeout).await {
            Ok(r) => r,
            Err(e) => {
                if matches!(
                    e,
                    Error::Remote {
                        source: TransportError::Timeout { .. },
                        ..
                    }
                ) {
                    // clientCloseSocketIfTimeout: a broker that stopped answering is reconnected.
                    instance.close_connection(&addr);
                }
                return Err(AttemptError::Remote(e));
            }
        };
        let status = match resp.code {
            response::SUCCESS => SendStatus::SendOk,
            response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
            response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
            code => {
                return Err(AttemptError::Broker {
                    code,
                    remark: resp.remark.clone().unwrap_or_default(),
                    addr,
                });
            }
        };
        let h = send_response(&addr, &resp).map_err(AttemptError::Remote)?;
        Ok(SendResult {
            status,
            msg_id: p.msg_id.clone(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue::from_shared(
                mq.topic.clone(),
                mq.broker_name.clone(),
                u32::try_from(h.queue_id).unwrap_or(mq.queue_id),
            ),
            queue_offset: h.queue_offset.max(0) as u64,
            region_id: h.msg_region,
        })
    }

    async fn publish_info(&self, topic: &str) -> Result<Arc<TopicPublishInfo>> {
        self.inner
            .instance
            .publish_info(topic, self.inner.config.default_topic_queue_nums)
            .await
    }

    /// `sendDefaultImpl`: attempts chosen by the model until one succeeds, an error is final or
    /// the budget is spent.
    async fn send_prepared(&self, p: &Prepared, target: Target<'_>) -> Result<SendResult> {
        let c = &self.inner.config;
        let instance = &self.inner.instance;
        let started = Instant::now();
        let budget = c.send_msg_timeout;
        let (info, route_version) = instance
            .publish_entry(&p.topic, c.default_topic_queue_nums)
            .await?;
        let tracer = &instance.inner.tracer;
        // Numbered even when tracing is off, so a sink switched on mid-send keeps sends apart.
        let send_no = self.inner.sends.fetch_add(1, Ordering::Relaxed) + 1;
        let mut attempt_no = 0u32;
        let policy = SendPolicy {
            retry_times_when_send_failed: match target {
                Target::Select { retries } => retries,
                Target::Queue(_) => 0,
            },
            send_msg_timeout: budget.as_millis() as u64,
            retry_another_broker_when_not_store_ok: c.retry_another_broker_when_not_store_ok,
        };
        let mut attempts = SendAttempts::new(policy, instance.now());
        let mut tried: Vec<Attempt> = Vec::new();
        let mut last_ok: Option<SendResult> = None;
        loop {
            let mq = match target {
                Target::Queue(mq) => {
                    attempts.chosen_target(mq);
                    mq.clone()
                }
                Target::Select { .. } => {
                    let mut sel = lock(&self.inner.select);
                    let (strategy, index) = &mut *sel;
                    if c.broken_retry_same_broker && attempt_no > 0 {
                        // Broken on purpose: the failed broker is forgotten.
                        attempts = SendAttempts::new(policy, instance.now());
                    }
                    match attempts.next_target(&info, strategy, index, instance.now()) {
                        Ok(mq) => mq,
                        Err(ModelSendError::Timeout { .. }) => {
                            return Err(Error::SendTimeout {
                                topic: p.topic.clone(),
                                elapsed: started.elapsed(),
                                budget,
                                attempts: tried,
                            });
                        }
                        Err(_) => {
                            return Err(Error::NoRoute {
                                topic: p.topic.clone(),
                                namesrvs: instance.namesrvs().to_vec(),
                            });
                        }
                    }
                }
            };
            let remaining = budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(Error::SendTimeout {
                    topic: p.topic.clone(),
                    elapsed: started.elapsed(),
                    budget,
                    attempts: tried,
                });
            }
            let t0 = Instant::now();
            let mut sent_to = String::new();
            let result = self.attempt(p, &mq, remaining, &mut sent_to).await;
            let elapsed = t0.elapsed();
            let latency = elapsed.as_millis() as u64;
            attempt_no += 1;
            tracer.emit(|| {
                let chosen = matches!(target, Target::Queue(_));
                let at = TraceAt {
                    send: send_no,
                    attempt: attempt_no,
                    route_version: if chosen { 0 } else { route_version },
                    addr: sent_to,
                    elapsed,
                };
                trace_attempt(self, p, &mq, &result, at)
            });
            let (outcome, err) = match result {
                Ok(r) if r.status == SendStatus::SendOk => (AttemptOutcome::Ok, Ok(r)),
                Ok(r) => (AttemptOutcome::NotStoreOk, Ok(r)),
                Err(e) => (e.outcome(), Err(e)),
            };
            let step = {
                let mut sel = lock(&self.inner.select);
                let now = instance.now();
                let step = attempts.on_outcome(&mq, outcome, latency, &mut sel.0, now);
                if sel.0.enabled
                    && let Some(item) = sel.0.tolerance.items().get(&*mq.broker_name)
                {
                    tracer.emit(|| Event::FaultUpdated {
                        broker: item.name.clone(),
                        latency_ms: item.current_latency,
                        available_at: item.start_timestamp,
                        reachable: item.reachable,
                        now,
                    });
                }
                step
            };
            match err {
                Ok(r) => {
                    if step == SendStep::Retry {
                        tried.push(Attempt {
                            broker: mq.broker_name.to_string(),
                            addr: instance.master_addr(&mq.broker_name),
                            queue_id: mq.queue_id,
                            error: format!("stored but {:?}", r.status),
                        });
                        last_ok = Some(r);
                        continue;
                    }
                    return Ok(r);
                }
                Err(e) => {
                    tracing::debug!(broker = %mq.broker_name, queue = mq.queue_id, error = %e.describe(), "send attempt failed");
                    let addr = match &e {
                        AttemptError::Broker { addr, .. } => Some(addr.clone()),
                        _ => instance.master_addr(&mq.broker_name),
                    };
                    tried.push(Attempt {
                        broker: mq.broker_name.to_string(),
                        addr: addr.clone(),
                        queue_id: mq.queue_id,
                        error: e.describe(),
                    });
                    match step {
                        SendStep::Retry => continue,
                        SendStep::Done => unreachable!("a failed attempt is never done"),
                        SendStep::Failed(ModelSendError::Broker(code)) => {
                            let remark = match e {
                                AttemptError::Broker { remark, .. } => remark,
                                _ => String::new(),
                            };
                            return Err(Error::BrokerRefused {
                                broker: mq.broker_name.to_string(),
                                addr: addr.unwrap_or_default(),
                                code,
                                remark,
                            });
                        }
                        SendStep::Failed(_) => {
                            if let Some(r) = last_ok {
                                return Ok(r);
                            }
                            return Err(Error::SendFailed {
                                topic: p.topic.clone(),
                                attempts: tried,
                            });
                        }
                    }
                }
            }
        }
    }

    /// What a send of `msg` would put on the wire now, without any I/O: the queue the model
    /// selects (as a first attempt) and the request, with its `UNIQ_KEY`, properties and
    /// compression. The topic's route must be known already (after a first send). This is the
    /// client's own cost per send, which `benches/benches/client.rs` measures.
    pub fn next_request(&self, msg: Message) -> Result<(MessageQueue, RemotingCommand)> {
        let p = self.prepare(msg)?;
        let info = self
            .inner
            .instance
            .route_entry(&p.topic)
            .map(|e| e.publish)
            .ok_or_else(|| Error::NoRoute {
                topic: p.topic.clone(),
                namesrvs: self.inner.instance.namesrvs().to_vec(),
            })?;
        let policy = SendPolicy {
            retry_times_when_send_failed: self.inner.config.retry_times_when_send_failed,
            send_msg_timeout: self.inner.config.send_msg_timeout.as_millis() as u64,
            retry_another_broker_when_not_store_ok: false,
        };
        let now = self.inner.instance.now();
        let mut attempts = SendAttempts::new(policy, now);
        let mq = {
            let mut sel = lock(&self.inner.select);
            let (strategy, index) = &mut *sel;
            attempts
                .next_target(&info, strategy, index, now)
                .map_err(|_| Error::NoRoute {
                    topic: p.topic.clone(),
                    namesrvs: self.inner.instance.namesrvs().to_vec(),
                })?
        };
        let req = self.request(&p, &mq);
        Ok((mq, req))
    }

    /// Send and wait for the broker's answer, retrying on another broker within
    /// `sendMsgTimeout` (`send(msg)`).
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        let p = self.prepare(msg)?;
        self.send_prepared(
            &p,
            Target::Select {
                retries: self.inner.config.retry_times_when_send_failed,
            },
        )
        .await
    }

    /// Send a batch (one queue, RocketMQ's batch encoding; every message its own `UNIQ_KEY`).
    /// The result's `msg_id` is the ids joined by commas.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let p = self.prepare_batch(msgs)?;
        self.send_prepared(
            &p,
            Target::Select {
                retries: self.inner.config.retry_times_when_send_failed,
            },
        )
        .await
    }

    /// Send to `mq`, once (`send(msg, mq)`: no retry).
    pub async fn send_to_queue(&self, msg: Message, mq: &MessageQueue) -> Result<SendResult> {
        let p = self.prepare(msg)?;
        self.send_prepared(&p, Target::Queue(mq)).await
    }

    /// Send a batch to `mq`, once.
    pub async fn send_batch_to_queue(
        &self,
        msgs: Vec<Message>,
        mq: &MessageQueue,
    ) -> Result<SendResult> {
        let p = self.prepare_batch(msgs)?;
        self.send_prepared(&p, Target::Queue(mq)).await
    }

    /// The queues a send to `topic` may go to, in selection order (`fetchPublishMessageQueues`).
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.publish_info(topic).await?.message_queues.clone())
    }

    /// Send to the queue `select` picks from the topic's queues (`send(msg, selector, arg)`),
    /// once.
    pub async fn send_with_selector(
        &self,
        msg: Message,
        select: impl FnOnce(&[MessageQueue]) -> Option<MessageQueue>,
    ) -> Result<SendResult> {
        let info = self.publish_info(&msg.topic).await?;
        let Some(mq) = select(&info.message_queues) else {
            return Err(Error::InvalidMessage("the selector chose no queue".into()));
        };
        self.send_to_queue(msg, &mq).await
    }

    /// Send so that every message with the same `key` goes to the same queue (in order), with
    /// RocketMQ's `SelectMessageQueueByHash` on the key's Java hash.
    pub async fn send_orderly(&self, msg: Message, key: &str) -> Result<SendResult> {
        let hash = java_hash(key);
        self.send_with_selector(msg, |qs| select_by_hash(qs, hash).cloned())
            .await
    }

    /// Send without waiting for the result: waits only while `backPressureForAsyncSendNum`
    /// sends (or `backPressureForAsyncSendSize` bytes) are in flight, then returns a handle
    /// that resolves to the result. Retries (`retryTimesWhenSendAsyncFailed`) follow the sync
    /// loop inside the same budget.
    pub async fn send_async(&self, msg: Message) -> Result<SendHandle> {
        let p = self.prepare(msg)?;
        self.spawn_async(p).await
    }

    /// [`Producer::send_async`] for a batch.
    pub async fn send_batch_async(&self, msgs: Vec<Message>) -> Result<SendHandle> {
        let p = self.prepare_batch(msgs)?;
        self.spawn_async(p).await
    }

    async fn spawn_async(&self, p: Prepared) -> Result<SendHandle> {
        let inner = &self.inner;
        let size = p.body.len().clamp(1, inner.bytes_capacity) as u32;
        // Owned permits moved into the task: given back when it ends, however it ends.
        let slot = Arc::clone(&inner.window)
            .acquire_owned()
            .await
            .map_err(|_| Error::Shutdown)?;
        let bytes = Arc::clone(&inner.bytes)
            .acquire_many_owned(size)
            .await
            .map_err(|_| Error::Shutdown)?;
        let me = self.clone();
        let task = tokio::spawn(async move {
            let _permits = (slot, bytes);
            me.send_prepared(
                &p,
                Target::Select {
                    retries: me.inner.config.retry_times_when_send_async_failed,
                },
            )
            .await
        });
        Ok(SendHandle(task))
    }

    /// Send without waiting for any answer (`sendOneway`): one attempt, no result.
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        let p = self.prepare(msg)?;
        let info = self.publish_info(&p.topic).await?;
        let mq = {
            let mut sel = lock(&self.inner.select);
            let (strategy, index) = &mut *sel;
            strategy.select(&info, None, index, self.inner.instance.now())
        }
        .ok_or_else(|| Error::NoRoute {
            topic: p.topic.clone(),
            namesrvs: self.inner.instance.namesrvs().to_vec(),
        })?;
        let addr = self
            .master_of(&mq)
            .await
            .ok_or_else(|| Error::BrokerNotFound {
                broker: mq.broker_name.to_string(),
            })?;
        let peer = self.inner.instance.peer(&addr).await?;
        peer.oneway(self.request(&p, &mq)).await
    }

    /// Stop: leave the producer group on every broker and release the client instance.
    pub async fn shutdown(self) {
        let i = &self.inner.instance;
        i.unregister_producer(&self.inner.config.producer_group);
        let timeout = i.config().mq_client_api_timeout;
        for b in i.brokers() {
            if let Some(addr) = b.master_addr()
                && let Ok(p) = i.peer(addr).await
            {
                let _ = p
                    .unregister_client(
                        i.client_id(),
                        Some(&self.inner.config.producer_group),
                        None,
                        timeout,
                    )
                    .await;
            }
        }
        i.release().await;
    }
}

fn encode_props(p: &BTreeMap<String, String>) -> String {
    encode_properties(p.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Wall-clock milliseconds (born timestamps).
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Decimal formatting without an allocation per number.
#[derive(Default)]
struct Num([u8; 20]);

impl Num {
    fn of(&mut self, v: i64) -> &str {
        let mut i = self.0.len();
        let neg = v < 0;
        let mut u = v.unsigned_abs();
        loop {
            i -= 1;
            self.0[i] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if neg {
            i -= 1;
            self.0[i] = b'-';
        }
        std::str::from_utf8(&self.0[i..]).expect("ASCII digits")
    }
}

/// The result of an async send, to be awaited.
#[derive(Debug)]
pub struct SendHandle(tokio::task::JoinHandle<Result<SendResult>>);

impl Future for SendHandle {
    type Output = Result<SendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Shutdown)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_as_decimal() {
        let mut n = Num::default();
        for v in [0i64, 7, -7, 1_700_000_000_000, i64::MIN, i64::MAX] {
            assert_eq!(n.of(v), v.to_string());
        }
    }
}
