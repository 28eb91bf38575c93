//! The client instance (RocketMQ's `MQClientInstance`): one per process and NameServer list,
//! shared by the producers, consumers and admins built on it.
//!
//! It owns one connection per broker address, the routes of every topic in use (polled every
//! `pollNameServerInterval`, and at once on a topic's first use, from one NameServer at a time
//! with failover to the next), the broker address table, the heartbeats to every broker
//! (`heartbeatBrokerInterval`), the clean-up of brokers no route lists any more, and the requests
//! brokers push to the client (NOTIFY_CONSUMER_IDS_CHANGED wakes the group's rebalance at once;
//! GET_CONSUMER_RUNNING_INFO is answered from the consumer). Which addresses, which routes
//! changed, which brokers are offline and which get heartbeats are `sextant_model::client`'s
//! decisions. Its timers are its own two tasks; each consumer owns its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use sextant_model::Millis;
use sextant_model::broker::AUTO_CREATE_TOPIC;
use sextant_model::client::{
    SubscribeAddress, address_in_publish, address_in_subscribe, default_topic_route,
    heartbeat_targets, offline_addresses, route_changed,
};
use sextant_model::producer::TopicPublishInfo;
use sextant_model::route::{BrokerData, TopicRouteData};
use sextant_remoting::body::{ConsumerData, HeartbeatData, ProducerData};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::ConsumerGroupHeader;
use sextant_remoting::transport::{Connection, TransportError};
use sextant_remoting::{FrameCodec, RemotingCommand};
use sextant_trace::{Event, Route as TraceRoute, Tracer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::Peer;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::id::UniqIdGenerator;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the instance needs of a consumer registered on it.
pub(crate) trait ConsumerHook: Send + Sync {
    /// Its part of a heartbeat.
    fn consumer_data(&self) -> ConsumerData;
    /// The topics whose routes it needs.
    fn topics(&self) -> Vec<String>;
    /// Rebalance at once (membership or routes changed).
    fn rebalance_now(&self);
    /// The body answering GET_CONSUMER_RUNNING_INFO.
    fn running_info(&self) -> Vec<u8>;
}

/// A topic's route as the client holds it.
#[derive(Clone, Debug)]
pub(crate) struct RouteEntry {
    pub route: Arc<TopicRouteData>,
    pub publish: Arc<TopicPublishInfo>,
    /// Built from TBW102's route because the NameServers did not know the topic yet.
    pub from_default: bool,
    /// Which route this is (the instance numbers the routes it takes: 1, 2, …), so a trace
    /// says which route a send chose from.
    pub version: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

pub(crate) struct Inner {
    pub config: ClientConfig,
    pub client_id: String,
    pub ids: UniqIdGenerator,
    namesrvs: Vec<String>,
    namesrv_index: AtomicUsize,
    started: Instant,
    conns: Mutex<HashMap<String, Slot>>,
    routes: RwLock<HashMap<String, RouteEntry>>,
    /// The broker address table (`brokerAddrTable`): every group any route listed.
    brokers: RwLock<BTreeMap<String, BrokerData>>,
    producers: Mutex<BTreeMap<String, usize>>,
    consumers: Mutex<BTreeMap<String, Arc<dyn ConsumerHook>>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    users: AtomicUsize,
    route_versions: AtomicU64,
    /// The configured tracer, for this instance's node (its client id).
    pub tracer: Tracer,
}

/// A client instance: connections, routes and heartbeats shared by producers and consumers.
#[derive(Clone)]
pub struct ClientInstance {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInstance")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// Resolve `host:port` (an IP literal needs no lookup).
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| Error::Config(format!("cannot resolve address {addr:?}")))
}

impl ClientInstance {
    /// Start an instance: find the client's address (the configured `clientIP`, or the address
    /// this host reaches the first NameServer that answers from), build its id, and start the
    /// route-poll and heartbeat timers.
    pub async fn start(config: ClientConfig) -> Result<ClientInstance> {
        let namesrvs = config.namesrvs()?;
        let instance = config.resolved_instance_name();
        let mut ip = config.client_ip;
        let mut first_conn = None;
        if ip.is_none() {
            for addr in &namesrvs {
                if let Ok(sa) = resolve(addr).await
                    && let Ok(Ok(c)) = tokio::time::timeout(
                        config.connect_timeout,
                        Connection::connect(sa, FrameCodec::default(), None),
                    )
                    .await
                {
                    ip = Some(c.local_addr().ip());
                    first_conn = Some(c);
                    break;
                }
            }
        }
        drop(first_conn);
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let client_id = ClientConfig::client_id(ip, &instance, config.unit_name.as_deref());
        let salt = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            nanos ^ (std::process::id().rotate_left(16))
        };
        let start_index = salt as usize % namesrvs.len();
        let (stop, _) = watch::channel(false);
        let tracer = config.trace.for_node(client_id.clone());
        let inner = Arc::new(Inner {
            tracer,
            route_versions: AtomicU64::new(0),
            ids: UniqIdGenerator::new(ip, salt),
            client_id,
            namesrvs,
            namesrv_index: AtomicUsize::new(start_index),
            started: Instant::now(),
            conns: Mutex::default(),
            routes: RwLock::default(),
            brokers: RwLock::default(),
            producers: Mutex::default(),
            consumers: Mutex::default(),
            stop,
            tasks: Mutex::default(),
            users: AtomicUsize::new(0),
            config,
        });
        let me = ClientInstance { inner };
        me.spawn_timers();
        tracing::debug!(client = %me.inner.client_id, "client instance started");
        Ok(me)
    }

    fn spawn_timers(&self) {
        let poll = self.inner.config.poll_name_server_interval;
        let beat = self.inner.config.heartbeat_broker_interval;
        let t1 = self.every(poll, |me| async move { me.poll_routes().await });
        let t2 = self.every(beat, |me| async move {
            me.clean_offline_brokers();
            me.heartbeat_all().await;
        });
        lock(&self.inner.tasks).extend([t1, t2]);
    }

    /// A task running `job` every `period` until shutdown (or until the instance is gone).
    fn every<F, Fut>(&self, period: std::time::Duration, job: F) -> JoinHandle<()>
    where
        F: Fn(ClientInstance) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        let mut stopped = self.inner.stop.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                job(ClientInstance { inner }).await;
            }
        })
    }

    /// Tell every broker (masters and slaves) that this client left `group`
    /// (UNREGISTER_CLIENT), after the consumer stopped.
    pub(crate) async fn leave_group(&self, group: &str) {
        self.unregister_consumer(group);
        let timeout = self.inner.config.mq_client_api_timeout;
        for b in self.brokers() {
            for addr in b.broker_addrs.values() {
                if let Ok(p) = self.peer(addr).await
                    && let Err(e) = p
                        .unregister_client(self.client_id(), None, Some(group), timeout)
                        .await
                {
                    tracing::debug!(%addr, error = %e, "unregister failed");
                }
            }
        }
    }

    /// The client id (`ip@instance`).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Monotonic milliseconds since the instance started: the clock the model's decisions get.
    pub fn now(&self) -> Millis {
        self.inner.started.elapsed().as_millis() as Millis
    }

    /// A new `UNIQ_KEY`.
    pub fn next_msg_id(&self) -> String {
        self.inner.ids.next_id()
    }

    pub(crate) fn acquire(&self) {
        self.inner.users.fetch_add(1, Ordering::AcqRel);
    }

    /// Give back a use; the last one shuts the instance down.
    pub(crate) async fn release(&self) {
        if self.inner.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown().await;
        }
    }

    /// Stop the timers and close every connection.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        self.close_all().await;
    }

    /// Close every connection, and forget it.
    async fn close_all(&self) {
        let slots: Vec<Slot> = lock(&self.inner.conns).drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Some(c) = s.lock().await.take() {
                c.close();
            }
        }
    }

    /// Die as a killed process would: the timers are cut where they are (an in-flight
    /// heartbeat or route poll does not finish) and every connection is closed. Every client
    /// on this instance dies with it.
    pub async fn kill(&self) {
        let _ = self.inner.stop.send(true);
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        self.close_all().await;
    }

    /// Whether [`ClientInstance::shutdown`] ran.
    pub fn is_shut_down(&self) -> bool {
        *self.inner.stop.borrow()
    }

    /// The connection to `addr`, opened if needed (one per address, shared).
    pub async fn peer(&self, addr: &str) -> Result<Peer> {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let slot = {
            let mut conns = lock(&self.inner.conns);
            match conns.get(addr) {
                Some(s) => s.clone(),
                None => conns.entry(addr.to_owned()).or_default().clone(),
            }
        };
        if let Ok(g) = slot.try_lock()
            && let Some(c) = g.as_ref().filter(|c| !c.is_closed())
        {
            return Ok(Peer {
                addr: addr.to_owned(),
                conn: c.clone(),
            });
        }
        let mut g = slot.lock().await;
        if let Some(c) = g.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Peer {
                addr: addr.to_owned(),
                conn: c.clone(),
            });
        }
        let sa = resolve(addr).await?;
        let (tx, rx) = mpsc::channel(64);
        let conn = match tokio::time::timeout(
            self.inner.config.connect_timeout,
            Connection::connect(sa, FrameCodec::default(), Some(tx)),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(Error::Remote {
                    addr: addr.to_owned(),
                    source: e,
                });
            }
            Err(_) => {
                return Err(Error::Remote {
                    addr: addr.to_owned(),
                    source: TransportError::Connect {
                        addr: sa,
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connect timed out",
                        ),
                    },
                });
            }
        };
        tokio::spawn(serve_inbound(Arc::downgrade(&self.inner), conn.clone(), rx));
        *g = Some(conn.clone());
        Ok(Peer {
            addr: addr.to_owned(),
            conn,
        })
    }

    /// Close the connection to `addr` (after a timeout, as `clientCloseSocketIfTimeout`), so
    /// the next request reconnects.
    pub fn close_connection(&self, addr: &str) {
        let slot = lock(&self.inner.conns).get(addr).cloned();
        if let Some(slot) = slot
            && let Ok(g) = slot.try_lock()
            && let Some(c) = g.as_ref()
        {
            c.close();
        }
    }

    /// The NameServers, in configured order.
    pub fn namesrvs(&self) -> &[String] {
        &self.inner.namesrvs
    }

    /// Run `f` on a NameServer: the current one first, then each other in turn when one cannot
    /// be reached (a connection or timeout error); any other error is the answer.
    pub async fn with_namesrv<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut(Peer) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let n = self.inner.namesrvs.len();
        let mut last = String::new();
        for _ in 0..n {
            let i = self.inner.namesrv_index.load(Ordering::Relaxed) % n;
            let addr = &self.inner.namesrvs[i];
            let result = match self.peer(addr).await {
                Ok(p) => f(p).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e @ Error::Remote { .. }) | Err(e @ Error::Config(_)) => {
                    if let Error::Remote {
                        source: TransportError::Timeout { .. },
                        ..
                    } = &e
                    {
                        self.close_connection(addr);
                    }
                    tracing::debug!(namesrv = %addr, error = %e, "NameServer unavailable, trying the next");
                    last = e.to_string();
                    let _ = self.inner.namesrv_index.compare_exchange(
                        i,
                        (i + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => return other,
            }
        }
        Err(Error::NameServerUnavailable {
            asked: self.inner.namesrvs.clone(),
            last,
        })
    }

    /// The route of `topic` as last polled.
    pub fn route(&self, topic: &str) -> Option<Arc<TopicRouteData>> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .map(|e| e.route.clone())
    }

    pub(crate) fn route_entry(&self, topic: &str) -> Option<RouteEntry> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
    }

    /// Ask the NameServers for `topic`'s route now and take it if it changed
    /// (`updateTopicRouteInfoFromNameServer`). `Ok(None)`: no NameServer knows the topic.
    pub async fn update_route(&self, topic: &str) -> Result<Option<Arc<TopicRouteData>>> {
        let timeout = self.inner.config.mq_client_api_timeout;
        let fresh = self
            .with_namesrv(|p| {
                let topic = topic.to_owned();
                async move { p.route(&topic, timeout).await }
            })
            .await?;
        let Some(fresh) = fresh else {
            return Ok(None);
        };
        Ok(Some(self.take_route(topic, fresh, false)))
    }

    fn take_route(
        &self,
        topic: &str,
        fresh: TopicRouteData,
        from_default: bool,
    ) -> Arc<TopicRouteData> {
        let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
        let held = routes.get(topic);
        let changed = held.is_none_or(|h| h.from_default != from_default)
            || route_changed(held.map(|h| &*h.route), &fresh);
        if !changed {
            return held.expect("unchanged means held").route.clone();
        }
        {
            let mut brokers = self
                .inner
                .brokers
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for b in &fresh.broker_datas {
                brokers.insert(b.broker_name.clone(), b.clone());
            }
        }
        let publish = Arc::new(TopicPublishInfo::from_route(topic, &fresh));
        let route = Arc::new(fresh);
        let version = self.inner.route_versions.fetch_add(1, Ordering::Relaxed) + 1;
        // Recorded under the routes' lock: a send that chose from this route comes after it.
        self.inner.tracer.emit(|| Event::RouteRefreshed {
            topic: topic.to_owned(),
            route: TraceRoute::from(&*route),
            from_default,
            version,
        });
        routes.insert(
            topic.to_owned(),
            RouteEntry {
                route: route.clone(),
                publish,
                from_default,
                version,
            },
        );
        drop(routes);
        tracing::debug!(topic, "route changed");
        let consumers: Vec<_> = lock(&self.inner.consumers).values().cloned().collect();
        for c in consumers {
            if c.topics().iter().any(|t| t == topic) {
                c.rebalance_now();
            }
        }
        route
    }

    /// What a producer sends `topic` to (`tryToFindTopicPublishInfo`): the held route's publish
    /// info; else the NameServers' route now; else, for a topic they do not know yet, TBW102's
    /// route capped at `default_topic_queue_nums` queues per broker (the broker creates the topic
    /// on the first send).
    pub async fn publish_info(
        &self,
        topic: &str,
        default_topic_queue_nums: u32,
    ) -> Result<Arc<TopicPublishInfo>> {
        Ok(self.publish_entry(topic, default_topic_queue_nums).await?.0)
    }

    /// [`ClientInstance::publish_info`] with the version of the route it came from.
    pub(crate) async fn publish_entry(
        &self,
        topic: &str,
        default_topic_queue_nums: u32,
    ) -> Result<(Arc<TopicPublishInfo>, u64)> {
        let held = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .map(|e| (e.publish.clone(), e.version));
        if let Some(p) = held
            && p.0.ok()
        {
            return Ok(p);
        }
        if self.update_route(topic).await?.is_some()
            && let Some(e) = self.route_entry(topic)
        {
            if e.publish.ok() {
                return Ok((e.publish, e.version));
            }
            // The NameServers know the topic, but none of its brokers has a master now.
            let brokers = TopicPublishInfo::masterless(&e.route);
            if !brokers.is_empty() {
                return Err(Error::NoMaster {
                    topic: topic.to_owned(),
                    brokers,
                });
            }
        }
        let timeout = self.inner.config.mq_client_api_timeout;
        let default = self
            .with_namesrv(|p| async move { p.route(AUTO_CREATE_TOPIC, timeout).await })
            .await?;
        if let Some(d) = default {
            self.take_route(
                topic,
                default_topic_route(&d, default_topic_queue_nums),
                true,
            );
            if let Some(e) = self.route_entry(topic)
                && e.publish.ok()
            {
                return Ok((e.publish, e.version));
            }
        }
        Err(Error::NoRoute {
            topic: topic.to_owned(),
            namesrvs: self.inner.namesrvs.clone(),
        })
    }

    /// Poll every topic in use (the routes held and the consumers' subscriptions).
    pub async fn poll_routes(&self) {
        let mut topics: BTreeSet<String> = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let consumers: Vec<_> = lock(&self.inner.consumers).values().cloned().collect();
        for c in consumers {
            topics.extend(c.topics());
        }
        for t in topics {
            if let Err(e) = self.update_route(&t).await {
                tracing::debug!(topic = %t, error = %e, "route poll failed");
            }
        }
    }

    fn brokers_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BrokerData>> {
        self.inner.brokers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker group `name` as the address table holds it.
    pub fn broker(&self, name: &str) -> Option<BrokerData> {
        self.brokers_read().get(name).cloned()
    }

    /// The master address of `broker` (`findBrokerAddressInPublish`).
    pub fn master_addr(&self, broker: &str) -> Option<String> {
        self.brokers_read()
            .get(broker)
            .and_then(|b| address_in_publish(b).map(str::to_owned))
    }

    /// `findBrokerAddressInSubscribe`.
    pub fn subscribe_addr(
        &self,
        broker: &str,
        broker_id: u64,
        only_this_broker: bool,
    ) -> Option<(String, bool)> {
        self.brokers_read().get(broker).and_then(|b| {
            address_in_subscribe(b, broker_id, only_this_broker)
                .map(|SubscribeAddress { addr, slave }| (addr.to_owned(), slave))
        })
    }

    /// Every broker group the address table holds.
    pub fn brokers(&self) -> Vec<BrokerData> {
        self.brokers_read().values().cloned().collect()
    }

    /// `cleanOfflineBroker`: forget the addresses no route lists and close their connections.
    pub fn clean_offline_brokers(&self) {
        let gone: Vec<(String, u64, String)> = {
            let routes = self.inner.routes.read().unwrap_or_else(|p| p.into_inner());
            let cached: BTreeMap<String, BTreeMap<u64, String>> = self
                .brokers_read()
                .iter()
                .map(|(n, b)| (n.clone(), b.broker_addrs.clone()))
                .collect();
            offline_addresses(&cached, routes.values().map(|e| &*e.route))
                .into_iter()
                .map(|(n, i, a)| (n.to_owned(), i, a.to_owned()))
                .collect()
        };
        if gone.is_empty() {
            return;
        }
        let mut brokers = self
            .inner
            .brokers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for (name, id, addr) in gone {
            tracing::info!(broker = %name, id, %addr, "broker offline");
            if let Some(b) = brokers.get_mut(&name) {
                b.broker_addrs.remove(&id);
                if b.broker_addrs.is_empty() {
                    brokers.remove(&name);
                }
            }
            self.close_connection(&addr);
            lock(&self.inner.conns).remove(&addr);
        }
    }

    pub(crate) fn register_producer(&self, group: &str) {
        *lock(&self.inner.producers)
            .entry(group.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn unregister_producer(&self, group: &str) {
        let mut p = lock(&self.inner.producers);
        if let Some(n) = p.get_mut(group) {
            *n -= 1;
            if *n == 0 {
                p.remove(group);
            }
        }
    }

    pub(crate) fn register_consumer(&self, group: &str, hook: Arc<dyn ConsumerHook>) -> Result<()> {
        let mut c = lock(&self.inner.consumers);
        if c.contains_key(group) {
            return Err(Error::Config(format!(
                "the consumer group {group} already has a consumer on this client instance"
            )));
        }
        c.insert(group.to_owned(), hook);
        Ok(())
    }

    pub(crate) fn unregister_consumer(&self, group: &str) {
        lock(&self.inner.consumers).remove(group);
    }

    /// The heartbeat this client sends now.
    pub fn heartbeat_data(&self) -> HeartbeatData {
        let producers = lock(&self.inner.producers)
            .keys()
            .map(|g| ProducerData {
                group_name: g.clone(),
            })
            .collect();
        let consumers: Vec<_> = lock(&self.inner.consumers).values().cloned().collect();
        HeartbeatData {
            client_id: self.inner.client_id.clone(),
            consumer_data_set: consumers.iter().map(|c| c.consumer_data()).collect(),
            heartbeat_fingerprint: 0,
            producer_data_set: producers,
            without_sub: false,
        }
    }

    /// Heartbeat every broker the model says (every member with consumers, masters without).
    pub async fn heartbeat_all(&self) {
        let data = self.heartbeat_data();
        if data.consumer_data_set.is_empty() && data.producer_data_set.is_empty() {
            return;
        }
        let has_consumer = !data.consumer_data_set.is_empty();
        let groups = self.brokers();
        let targets: Vec<String> = heartbeat_targets(&groups, has_consumer)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let timeout = self.inner.config.mq_client_api_timeout;
        let data = Arc::new(data);
        let sends = targets.into_iter().map(|addr| {
            let data = Arc::clone(&data);
            async move {
                let r = match self.peer(&addr).await {
                    Ok(p) => p.heartbeat(&data, timeout).await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    tracing::debug!(%addr, error = %e, "heartbeat failed");
                }
            }
        });
        futures_join_all(sends).await;
    }

    /// Heartbeat the members of the broker groups `names` (what a consumer does for the brokers
    /// of a topic it just subscribed to, before it asks them for the group's members).
    pub async fn heartbeat_brokers(&self, names: &BTreeSet<String>) {
        let data = self.heartbeat_data();
        let groups: Vec<BrokerData> = self
            .brokers()
            .into_iter()
            .filter(|b| names.contains(&b.broker_name))
            .collect();
        let has_consumer = !data.consumer_data_set.is_empty();
        let timeout = self.inner.config.mq_client_api_timeout;
        let data = Arc::new(data);
        let targets: Vec<String> = heartbeat_targets(&groups, has_consumer)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let sends = targets.into_iter().map(|addr| {
            let data = Arc::clone(&data);
            async move {
                if let Ok(p) = self.peer(&addr).await
                    && let Err(e) = p.heartbeat(&data, timeout).await
                {
                    tracing::debug!(%addr, error = %e, "heartbeat failed");
                }
            }
        });
        futures_join_all(sends).await;
    }
}

/// Run futures concurrently and wait for all (a small `join_all` without another dependency).
pub(crate) async fn futures_join_all<F: Future<Output = ()>>(futs: impl IntoIterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Requests a broker pushes to this client on one connection.
async fn serve_inbound(
    inner: std::sync::Weak<Inner>,
    conn: Connection,
    mut rx: mpsc::Receiver<RemotingCommand>,
) {
    while let Some(req) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let group = req
            .ext_fields
            .as_ref()
            .and_then(|e| ConsumerGroupHeader::from_ext(e).ok())
            .map(|h| h.consumer_group);
        let hook = group
            .as_deref()
            .and_then(|g| lock(&inner.consumers).get(g).cloned());
        match req.code {
            request::NOTIFY_CONSUMER_IDS_CHANGED => {
                if let Some(h) = hook {
                    tracing::debug!(group = ?group, "consumer ids changed");
                    h.rebalance_now();
                }
            }
            request::GET_CONSUMER_RUNNING_INFO => {
                let resp = match hook {
                    Some(h) => RemotingCommand::response_to(&req, response::SUCCESS, None)
                        .with_body(h.running_info()),
                    None => RemotingCommand::response_to(
                        &req,
                        response::SYSTEM_ERROR,
                        Some(format!(
                            "The Consumer Group <{}> not exist in this consumer",
                            group.unwrap_or_default()
                        )),
                    ),
                };
                let _ = conn.respond(&req, resp).await;
            }
            code if !req.is_oneway() => {
                let resp = RemotingCommand::response_to(
                    &req,
                    response::REQUEST_CODE_NOT_SUPPORTED,
                    Some(format!(" request type {code} not supported")),
                );
                let _ = conn.respond(&req, resp).await;
            }
            _ => {}
        }
    }
}
