//! # sextant-broker — the RocketMQ broker on tokio
//!
//! One process is one broker: a cluster name, a broker name, an id (0 = master) and a role. It
//! serves, wire-compatible with Apache RocketMQ: topic creation and auto-creation from `TBW102`,
//! SEND_MESSAGE (v1, v2, batch) with RocketMQ's send response, PULL_MESSAGE with long polling
//! and its statuses, consumer offsets (query, update, persisted), max/min offset and search by
//! time, client heartbeats with group membership, channel expiry and NOTIFY_CONSUMER_IDS_CHANGED,
//! consumer lists, orderly queue locks with expiry, consumer send-back into `%RETRY%<group>` with
//! delay levels and `%DLQ%<group>` past the maximum reconsume times, and delayed delivery; and
//! the admin requests of `mqadmin` (runtime info, the topic table, topic and consume stats,
//! consumer connections, GET_CONSUMER_RUNNING_INFO forwarded to the client, topic deletion,
//! messages by offset) and QUERY_MESSAGE (messages by key and by unique key, through the store's
//! message index). It registers all its topics with every NameServer at the configured
//! period and unregisters on a clean stop.
//!
//! Layout: `broker` (the state), `handler/` (one file per request family — `send`, `pull`,
//! `offsets`, `client` (heartbeats, groups, channels), `locks`, `send_back`, `topic`, `admin`,
//! `query`, `sync` (what a slave copies) — and in `handler/mod.rs` the dispatch table from request code to handler), `put`
//! (the put path and its acknowledgement), `reply` (answer helpers), [`config`], `register`,
//! `ha/` (replication: `master`, `slave`), `slave_sync` (a slave copying its master's tables),
//! `schedule` (delayed delivery), `stats` (message counters and their TPS), `topics` (the topic
//! table).
//!
//! Every decision — the send queue, auto-creation, the pull status and whether to hold the pull,
//! the send-back target, locks, group membership, when a put may be acknowledged — is
//! `sextant_model`'s (`broker` and `store` modules). This crate owns the sockets, the timers and
//! the files (through `sextant_store`).

pub use sextant_trace::Tracer;

mod broker;
pub mod config;
mod groups;
mod ha;
mod handler;
mod put;
mod register;
mod reply;
mod schedule;
mod stats;
mod topics;

/// The bodies of the cargo-fuzz targets that decode what the broker decodes itself (the
/// subscription group bodies), as plain functions the tests replay.
#[doc(hidden)]
pub mod fuzz {
    /// Decode an UPDATE_AND_CREATE_SUBSCRIPTIONGROUP body and a GET_ALL_SUBSCRIPTIONGROUP_CONFIG
    /// answer from arbitrary bytes: neither may panic, and what decodes must go into a capped
    /// table without panicking.
    pub fn group_decode(data: &[u8]) {
        use sextant_model::broker::tables::SubscriptionGroups;
        if let Ok((name, group)) = crate::groups::decode_group(data) {
            let mut t = SubscriptionGroups::new(4, true);
            let _ = t.put(&name, group);
        }
        if let Ok((_, groups)) = crate::groups::decode_table(data) {
            let mut t = SubscriptionGroups::new(groups.len().min(64), true);
            for (name, g) in groups.iter().take(64) {
                let _ = t.put(name, g.clone());
            }
        }
    }
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use broker::slave_sync::{Step as SyncStep, SyncError, SyncReport};
pub use broker::{Broker, TableSizes, wall_ms};
pub use config::{BrokerConfig, DEFAULT_PORT, Settings};
pub use handler::BrokerHandler;
pub use schedule::Schedule;
use sextant_model::store::BrokerRole;
use sextant_remoting::FrameCodec;
use sextant_remoting::transport::{bind, serve};
use sextant_store::{MessageStore, StoreRecovery};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What can go wrong starting or stopping a broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sextant_store::Error),
}

/// How often client channels are checked for expiry (RocketMQ's `ClientHousekeepingService`:
/// 10 s), more often when the expiry is set shorter (tests use milliseconds).
const CHANNEL_SCAN: Duration = Duration::from_secs(10);
/// How often the message counters are sampled (for the TPS of GET_BROKER_RUNTIME_INFO).
const STATS_SAMPLE: Duration = Duration::from_secs(1);
/// How often due delayed messages are delivered.
const SCHEDULE_TICK: Duration = Duration::from_millis(100);

/// How long a shutdown waits for connections to answer what they are handling.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// A running broker. It owns every task it started ([`TaskTracker`]); [`Running::shutdown`]
/// ends them all.
pub struct Running {
    /// Where it listens (what it advertises unless `advertisedAddr` says otherwise:
    /// [`Broker::addr`]).
    pub local_addr: SocketAddr,
    /// Its state.
    pub broker: Arc<Broker>,
    /// What opening the store found.
    pub recovery: StoreRecovery,
    schedule: Arc<Schedule>,
    /// Stops the accept loop and every connection's reading.
    stop: watch::Sender<bool>,
    /// The accept loop (it returns when its connections have answered).
    server: JoinHandle<()>,
    /// Cancels the periodic jobs.
    timers: CancellationToken,
    /// The periodic jobs, one task each.
    tasks: TaskTracker,
    registrar: Arc<tokio::sync::Mutex<register::Registrar>>,
}

impl Running {
    /// Break the broker on purpose (tests only): consumer offsets and delay cursors are written
    /// without flushing the store first, so a power loss can leave them past what survived.
    #[doc(hidden)]
    pub fn break_persist_order(&self) {
        use std::sync::atomic::Ordering;
        self.broker.persist_unflushed.store(true, Ordering::Relaxed);
        self.schedule.unflushed.store(true, Ordering::Relaxed);
    }

    /// Stop as a killed process stops (`kill -9`): the connections close, the periodic jobs end,
    /// and nothing more is done — no flush, no offsets or delay cursors persisted, no
    /// unregistration (the NameServers find out when the connections close or the broker
    /// expires). What the store wrote stays where it was written: in the file system (the page
    /// cache, for a real one), or lost with a `SimFs` power loss taken before.
    pub async fn crash(self) {
        let _ = self.stop.send(true);
        self.broker.shutdown.cancel();
        self.timers.cancel();
        self.server.abort();
        let _ = self.server.await;
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!(addr = %self.local_addr, "broker crashed (on purpose)");
    }

    /// Register with every NameServer now; returns how many accepted.
    pub async fn register_now(&self) -> usize {
        self.registrar.lock().await.register_all(&self.broker).await
    }

    /// Stop cleanly, within a deadline: stop accepting and reading; answer what is in flight
    /// (held pulls at once, with what is there); stop the periodic jobs; flush the store, and
    /// only then persist consumer offsets and delay cursors (each write flushes first, so no
    /// offset or cursor is ahead of durable messages); unregister from the NameServers; close
    /// the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.broker.shutdown.cancel();
        let mut server = self.server;
        if tokio::time::timeout(SHUTDOWN_DEADLINE, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("connections still busy at the shutdown deadline: closed");
            server.abort();
        }
        self.timers.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let broker = Arc::clone(&self.broker);
        let schedule = self.schedule;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = broker.store().flush() {
                tracing::error!(error = %e, "final flush failed");
            }
            if let Err(e) = broker.persist_offsets() {
                tracing::error!(error = %e, "persisting consumer offsets failed");
            }
            if let Err(e) = schedule.persist(broker.store()) {
                tracing::error!(error = %e, "persisting delay offsets failed");
            }
        })
        .await;
        self.registrar
            .lock()
            .await
            .unregister_all(&self.broker)
            .await;
        self.broker.store().close();
        tracing::info!(addr = %self.local_addr, "broker stopped");
    }
}

/// Run `job` every `period` on its own task until `stop`: one slow job never delays another.
/// A job that blocks (file writes, fsyncs) runs on the blocking pool, never on a worker thread.
fn every<F>(tasks: &TaskTracker, stop: &CancellationToken, period: Duration, job: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let stop = stop.clone();
    let job = Arc::new(job);
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let job = Arc::clone(&job);
            let _ = tokio::task::spawn_blocking(move || job()).await;
        }
    });
}

/// Open the store, listen, register with the NameServers and serve until [`Running::shutdown`].
pub async fn start(config: BrokerConfig) -> Result<Running, Error> {
    start_on(config, sextant_store::fs::real()).await
}

/// [`start`], recording events to `tracer`'s sink under the node name `broker@ADDR` (ADDR the
/// address it advertises).
pub async fn start_traced(config: BrokerConfig, tracer: Tracer) -> Result<Running, Error> {
    start_inner(config, sextant_store::fs::real(), tracer).await
}

/// [`start`] with every file (the store and the broker's config files) on the file system
/// `fs` — e.g. `sextant_store::sim::SimFs`, whose power loss the tests simulate.
pub async fn start_on(
    config: BrokerConfig,
    fs: std::sync::Arc<dyn sextant_store::fs::Fs>,
) -> Result<Running, Error> {
    start_inner(config, fs, Tracer::off()).await
}

/// [`start_on`] and [`start_traced`] at once: every file on `fs`, events to `tracer`.
pub async fn start_on_traced(
    config: BrokerConfig,
    fs: std::sync::Arc<dyn sextant_store::fs::Fs>,
    tracer: Tracer,
) -> Result<Running, Error> {
    start_inner(config, fs, tracer).await
}

async fn start_inner(
    config: BrokerConfig,
    fs: std::sync::Arc<dyn sextant_store::fs::Fs>,
    tracer: Tracer,
) -> Result<Running, Error> {
    for key in config.unknown.keys() {
        tracing::warn!(key = %key, "unknown broker configuration key ignored");
    }
    let settings = config.settings()?;
    let addr = settings.listen;
    let (listener, local_addr) = bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let mut store_config = config.store_config(&settings);
    store_config.fs = Arc::clone(&fs);
    let (store, recovery) = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
        .await
        .map_err(|e| Error::Config(format!("store open task: {e}")))??;
    tracing::info!(?recovery, "store opened");
    let schedule = Arc::new(Schedule::load_in(
        fs,
        config.store_path_root_dir.join("config/delayOffset.json"),
    )?);
    let offsets_every = Duration::from_millis(config.flush_consumer_offset_interval.max(1));
    let clean_every = Duration::from_millis(config.clean_resource_interval.max(1));
    let register_every = Duration::from_millis(config.register_name_server_period.max(1));
    let channel_scan = CHANNEL_SCAN.min(Duration::from_millis(
        (config.channel_expired_timeout / 4).max(1),
    ));
    // A master takes its slaves' HA connections on haListenPort: the listen port + 1 by default
    // (any free port when the listen port is 0).
    let ha_listener = if settings.role == BrokerRole::Slave {
        None
    } else {
        let port = config.ha_listen_port.unwrap_or(match config.listen_port {
            0 => 0,
            p => p.wrapping_add(1),
        });
        let ha = SocketAddr::new(local_addr.ip(), port);
        Some(
            bind(ha)
                .await
                .map_err(|source| Error::Bind { addr: ha, source })?,
        )
    };
    let advertised = config.advertised_addr.unwrap_or(local_addr);
    let broker = Arc::new(Broker::new(config, settings, advertised, store)?);
    // Before the server accepts anything, so no request goes unrecorded.
    if tracer.node().is_some() {
        broker.set_tracer(tracer.for_node(format!("broker@{advertised}")));
        broker.trace(|| sextant_trace::Event::BrokerStarted {
            cluster: broker.config.broker_cluster_name.clone(),
            name: broker.config.broker_name.clone(),
            id: broker.config.broker_id as u64,
        });
    }
    let (stop, stopped) = watch::channel(false);
    let registrar = Arc::new(tokio::sync::Mutex::new(register::Registrar::default()));
    let server = tokio::spawn({
        let handler = Arc::new(BrokerHandler(Arc::clone(&broker)));
        async move {
            if let Err(e) = serve(listener, FrameCodec::default(), handler, stopped).await {
                tracing::error!(error = %e, "accept loop ended");
            }
        }
    });
    let tasks = TaskTracker::new();
    let timers = CancellationToken::new();
    tasks.spawn({
        let broker = Arc::clone(&broker);
        let registrar = Arc::clone(&registrar);
        let stop = timers.clone();
        async move {
            let mut tick = tokio::time::interval(register_every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = broker.register_now.notified() => {}
                    _ = stop.cancelled() => return,
                }
                registrar.lock().await.register_all(&broker).await;
            }
        }
    });
    match ha_listener {
        Some((listener, ha_addr)) => {
            let _ = broker.ha.listen.set(ha_addr);
            tracing::info!(%ha_addr, "HA port listening");
            tasks.spawn(ha::master::serve(
                listener,
                Arc::clone(&broker),
                timers.clone(),
                tasks.clone(),
            ));
        }
        None => {
            tasks.spawn(ha::slave::follow(
                Arc::clone(&broker),
                timers.clone(),
                ha::slave::RECONNECT,
            ));
        }
    }
    // A slave copies its master's topics, subscription groups, consumer offsets and delay
    // cursors every slaveSynchronizeInterval (RocketMQ's SlaveSynchronize).
    if broker.settings.role == BrokerRole::Slave {
        tasks.spawn(Arc::clone(&broker).slave_sync_job(timers.clone()));
    }
    every(&tasks, &timers, offsets_every, {
        let broker = Arc::clone(&broker);
        move || {
            if let Err(e) = broker.persist_offsets() {
                tracing::error!(error = %e, "persisting consumer offsets failed");
            }
        }
    });
    every(&tasks, &timers, offsets_every, {
        let broker = Arc::clone(&broker);
        let schedule = Arc::clone(&schedule);
        move || {
            if let Err(e) = schedule.persist(broker.store()) {
                tracing::error!(error = %e, "persisting delay offsets failed");
            }
        }
    });
    // A slave delivers nothing: its master's redelivered copies arrive by replication.
    if broker.settings.role != BrokerRole::Slave {
        every(&tasks, &timers, SCHEDULE_TICK, {
            let broker = Arc::clone(&broker);
            let schedule = Arc::clone(&schedule);
            move || {
                schedule.deliver_due(&broker);
            }
        });
    }
    every(&tasks, &timers, clean_every, {
        let broker = Arc::clone(&broker);
        move || {
            let now = wall_ms();
            // RocketMQ's deleteWhen hours are local time (TZ, /etc/localtime).
            let hour = chrono::Timelike::hour(&chrono::Local::now());
            match broker.store().clean(now, hour) {
                Ok(r) if !r.segments_deleted.is_empty() => tracing::info!(
                    segments = r.segments_deleted.len(),
                    log_start = r.log_start,
                    disk = r.disk_used_ratio,
                    "retention deleted CommitLog segments"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention pass failed"),
            }
        }
    });
    every(&tasks, &timers, STATS_SAMPLE, {
        let broker = Arc::clone(&broker);
        move || broker.stats.sample(wall_ms())
    });
    tasks.spawn({
        let broker = Arc::clone(&broker);
        let stop = timers.clone();
        async move {
            let mut tick = tokio::time::interval(channel_scan);
            loop {
                tokio::select! {
                    _ = tick.tick() => broker.scan_channels().await,
                    _ = stop.cancelled() => return,
                }
            }
        }
    });
    tracing::info!(
        %local_addr,
        cluster = %broker.config.broker_cluster_name,
        name = %broker.config.broker_name,
        id = broker.config.broker_id,
        "broker listening"
    );
    Ok(Running {
        local_addr,
        broker,
        recovery,
        schedule,
        stop,
        server,
        timers,
        tasks,
        registrar,
    })
}
