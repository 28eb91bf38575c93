//! A slave's copy of its master's tables (RocketMQ 4.9.8's `SlaveSynchronize`): every
//! `slaveSynchronizeInterval` (10 s, RocketMQ 4.9.8's fixed period) a slave asks the master its NameServers named (`masterAddr` of the
//! registration answer, `Broker::master_info`) over the master's remoting port for
//!
//! 1. the topic table (GET_ALL_TOPIC_CONFIG) — replaced, with the master's data version, and
//!    `topics.json` written; skipped when the versions are equal;
//! 2. the subscription group table (GET_ALL_SUBSCRIPTIONGROUP_CONFIG) — the same, into
//!    `subscriptionGroup.json`;
//! 3. the consumer offsets (GET_ALL_CONSUMER_OFFSET) — the master's `topic@group` entries over
//!    the slave's (RocketMQ's `putAll`), `consumerOffset.json` written;
//! 4. the delay-level cursors (GET_ALL_DELAY_OFFSET) — written over `delayOffset.json`, as 4.9.8
//!    writes the master's string to the file (a slave delivers no delayed message, so nothing
//!    in memory holds them).
//!
//! Groups come before offsets (RocketMQ syncs them last) because which offsets a slave keeps
//! depends on the groups it knows. What is kept is `sextant_model::broker::slave_sync`'s decision:
//! a table past this broker's cap is refused whole, entries it would not take from a client are
//! left out, so a hostile master grows a slave no further than its clients could. Each part
//! stands alone — one that fails (unreachable, refused, unparseable, over the cap) is logged and
//! skipped until the next period; the others go on.
//!
//! An offset a consumer commits to the slave while the master is away is kept until the next
//! sync from a master that is back: if the master has that `topic@group`, its (older) offsets
//! replace the slave's, and the consumer reads those messages again. That is RocketMQ's
//! behaviour: at least once, nothing skipped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use sextant_model::broker::slave_sync::{self as decide, SyncRefusal, TableSync};
use sextant_model::store::BrokerRole;
use sextant_remoting::body::{self, ConsumerOffsetBody, DelayOffsetBody, decode_topic_table};
use sextant_remoting::code::{request, response};
use sextant_remoting::transport::{Connection, TransportError};
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, lock};
use crate::groups;

/// How long after the start the first sync runs at most (RocketMQ: 3 s; the period,
/// `slaveSynchronizeInterval`, is 10 s there).
pub(crate) const FIRST_SYNC_DELAY: Duration = Duration::from_secs(3);
/// How long each request to the master may take (`BrokerOuterAPI`: 3 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a sync, or a part of one, did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Only a slave syncs from a master.
    #[error("this broker is not a slave: it syncs from no master")]
    NotSlave,
    /// The NameServer's `masterAddr` is not `ip:port`.
    #[error("the master address {0:?} is not ip:port")]
    MasterAddr(String),
    /// The master could not be reached.
    #[error("cannot reach the master: {0}")]
    Connect(TransportError),
    /// A request to the master failed.
    #[error("{what} from the master: {source}")]
    Request {
        /// What was asked.
        what: &'static str,
        /// Why it failed.
        source: TransportError,
    },
    /// The master answered with an error.
    #[error("{what}: the master answered code {code}: {remark}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// Its response code.
        code: i32,
        /// Its remark.
        remark: String,
    },
    /// The master's answer does not parse.
    #[error("{what} from the master does not parse: {why}")]
    Malformed {
        /// What was asked.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The master's table is larger than this broker may hold.
    #[error(transparent)]
    Refusal(#[from] SyncRefusal),
    /// Writing what was taken failed (the table in memory is the master's all the same; the
    /// file is written at the next sync or persist).
    #[error("writing {what}: {source}")]
    Persist {
        /// Which file.
        what: &'static str,
        /// Why.
        source: crate::Error,
    },
    /// The broker is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// The blocking task that applies a part ended abnormally.
    #[error("applying {what} failed: {why}")]
    Task {
        /// Which part.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// What one part of a sync did.
#[derive(Debug, Default)]
pub enum Step {
    /// Not run: no master known.
    #[default]
    NotRun,
    /// The master's table has the slave's data version: nothing to do.
    Unchanged,
    /// The master's table was taken.
    Applied {
        /// Entries now held (topics, groups, delay levels) or queue offsets taken.
        entries: usize,
        /// Entries of the master's left out.
        skipped: usize,
    },
    /// It failed (and was logged); the next sync tries again.
    Failed(SyncError),
}

impl Step {
    /// How many entries were taken, if the part was applied.
    pub fn applied(&self) -> Option<usize> {
        match self {
            Step::Applied { entries, .. } => Some(*entries),
            _ => None,
        }
    }

    /// How many of the master's entries were left out, if the part was applied.
    pub fn skipped(&self) -> Option<usize> {
        match self {
            Step::Applied { skipped, .. } => Some(*skipped),
            _ => None,
        }
    }

    /// Whether the master's table had the slave's data version.
    pub fn is_unchanged(&self) -> bool {
        matches!(self, Step::Unchanged)
    }

    /// Why the part failed, if it did.
    pub fn failed(&self) -> Option<&SyncError> {
        match self {
            Step::Failed(e) => Some(e),
            _ => None,
        }
    }

    fn done(&self) -> bool {
        matches!(self, Step::Unchanged | Step::Applied { .. })
    }
}

/// What one sync did, part by part.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// The master synced from; `None` when no master is known (nothing was done).
    pub master: Option<String>,
    /// The topic table.
    pub topics: Step,
    /// The subscription group table.
    pub groups: Step,
    /// The consumer offsets.
    pub offsets: Step,
    /// The delay-level cursors.
    pub delay_offsets: Step,
}

impl SyncReport {
    /// Whether every part was applied or unchanged.
    pub fn complete(&self) -> bool {
        [
            &self.topics,
            &self.groups,
            &self.offsets,
            &self.delay_offsets,
        ]
        .iter()
        .all(|s| s.done())
    }
}

/// The connection to the master, kept from one sync to the next and reopened when the master
/// changes or the connection closes.
#[derive(Default)]
pub(crate) struct MasterLink {
    conn: Option<(SocketAddr, Connection)>,
}

impl MasterLink {
    async fn to(&mut self, addr: SocketAddr) -> Result<Connection, SyncError> {
        match &self.conn {
            Some((a, c)) if *a == addr && !c.is_closed() => return Ok(c.clone()),
            Some((_, c)) => c.close(),
            None => {}
        }
        self.conn = None;
        let c = Connection::connect(addr, FrameCodec::default(), None)
            .await
            .map_err(SyncError::Connect)?;
        self.conn = Some((addr, c.clone()));
        Ok(c)
    }
}

/// Ask the master for `code`'s table. A request that fails closes the connection (RocketMQ's
/// `clientCloseSocketIfTimeout`): the next sync reconnects.
async fn fetch(
    broker: &Broker,
    conn: &Connection,
    code: i32,
    what: &'static str,
) -> Result<Bytes, SyncError> {
    let req = RemotingCommand::request(code, 0);
    let r = tokio::select! {
        r = conn.invoke(req, REQUEST_TIMEOUT) => r,
        _ = broker.shutdown.cancelled() => return Err(SyncError::ShuttingDown),
    };
    let r = r.map_err(|source| {
        conn.close();
        SyncError::Request { what, source }
    })?;
    if r.code != response::SUCCESS {
        return Err(SyncError::Refused {
            what,
            code: r.code,
            remark: r.remark.unwrap_or_default(),
        });
    }
    Ok(r.body)
}

type Apply = fn(&Broker, &[u8]) -> Result<Step, SyncError>;

/// Fetch one part and apply it on the blocking pool (it writes files). Not started once the
/// broker shuts down, so no sync writes a file after the final persist.
async fn part(
    broker: &Arc<Broker>,
    conn: &Connection,
    code: i32,
    what: &'static str,
    apply: Apply,
) -> Step {
    let applied = async {
        let body = fetch(broker, conn, code, what).await?;
        if broker.shutdown.is_cancelled() {
            return Err(SyncError::ShuttingDown);
        }
        let b = Arc::clone(broker);
        tokio::task::spawn_blocking(move || apply(&b, &body))
            .await
            .map_err(|e| SyncError::Task {
                what,
                why: e.to_string(),
            })?
    };
    match applied.await {
        Ok(step) => step,
        Err(e) => {
            tracing::warn!(part = what, error = %e, "slave sync: part skipped");
            Step::Failed(e)
        }
    }
}

fn malformed(what: &'static str) -> impl Fn(sextant_remoting::Error) -> SyncError {
    move |e| SyncError::Malformed {
        what,
        why: e.to_string(),
    }
}

fn log_skipped(what: &'static str, skipped: &[String]) {
    if !skipped.is_empty() {
        let first: Vec<&String> = skipped.iter().take(10).collect();
        tracing::warn!(
            part = what,
            count = skipped.len(),
            first = ?first,
            "slave sync: entries this broker refuses left out"
        );
    }
}

fn apply_topics(b: &Broker, body: &[u8]) -> Result<Step, SyncError> {
    let what = "topic table";
    let (version, table) = decode_topic_table(body).map_err(malformed(what))?;
    let mut topics = lock(&b.topics);
    match decide::sync_topics(topics.version(), version, table, b.config.max_topic_count)? {
        TableSync::Unchanged => Ok(Step::Unchanged),
        TableSync::Replace {
            table,
            version,
            skipped,
        } => {
            log_skipped(what, &skipped);
            let entries = table.len();
            topics
                .replace(table, version)
                .map_err(|source| SyncError::Persist {
                    what: "topics.json",
                    source,
                })?;
            drop(topics);
            // The slave's registration carries its topics.
            b.register_now.notify_one();
            Ok(Step::Applied {
                entries,
                skipped: skipped.len(),
            })
        }
    }
}

fn apply_groups(b: &Broker, body: &[u8]) -> Result<Step, SyncError> {
    let what = "subscription group table";
    let (version, table) =
        groups::decode_table(body).map_err(|why| SyncError::Malformed { what, why })?;
    let mut file = lock(&b.subscriptions);
    match decide::sync_groups(
        &file.version(),
        version,
        table,
        b.config.max_subscription_group_count,
    )? {
        TableSync::Unchanged => Ok(Step::Unchanged),
        TableSync::Replace {
            table,
            version,
            skipped,
        } => {
            log_skipped(what, &skipped);
            let entries = table.len();
            file.replace(table, version);
            file.save().map_err(|source| SyncError::Persist {
                what: "subscriptionGroup.json",
                source,
            })?;
            Ok(Step::Applied {
                entries,
                skipped: skipped.len(),
            })
        }
    }
}

fn apply_offsets(b: &Broker, body: &[u8]) -> Result<Step, SyncError> {
    let what = "consumer offsets";
    let master: ConsumerOffsetBody = body::decode(what, body).map_err(malformed(what))?;
    // Snapshots, so that no two of the broker's locks are held at once.
    let topics = lock(&b.topics).all().clone();
    let groups: BTreeSet<String> = lock(&b.subscriptions)
        .table
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let synced = {
        let mut offsets = lock(&b.offsets);
        let local = std::mem::take(&mut offsets.offset_table);
        let synced = decide::sync_offsets(
            local,
            &master.offset_table,
            |t| topics.get(t),
            |g| groups.contains(g),
        );
        offsets.offset_table = synced.table;
        (synced.taken, synced.dropped)
    };
    b.offsets_dirty.store(true, Ordering::Release);
    b.persist_offsets().map_err(|source| SyncError::Persist {
        what: "consumerOffset.json",
        source,
    })?;
    if synced.1 > 0 {
        tracing::warn!(
            dropped = synced.1,
            "slave sync: master offsets of unknown groups, topics or queues left out"
        );
    }
    Ok(Step::Applied {
        entries: synced.0,
        skipped: synced.1,
    })
}

fn apply_delay_offsets(b: &Broker, body: &[u8]) -> Result<Step, SyncError> {
    let what = "delay offsets";
    let master: DelayOffsetBody = body::decode(what, body).map_err(malformed(what))?;
    let (kept, dropped) =
        decide::sync_delay_offsets(&master.offset_table, b.delay_levels().max_level());
    let entries = kept.len();
    let file = DelayOffsetBody {
        offset_table: kept
            .into_iter()
            .map(|(level, offset)| (i64::from(level), i64::try_from(offset).unwrap_or(i64::MAX)))
            .collect(),
    };
    let persist = |source: crate::Error| SyncError::Persist {
        what: "delayOffset.json",
        source,
    };
    // As `Schedule::persist`: the store first, then the cursors.
    b.store.flush().map_err(|e| persist(e.into()))?;
    sextant_store::config::save_json(&b.delay_offset_path(), &file)
        .map_err(|e| persist(e.into()))?;
    Ok(Step::Applied {
        entries,
        skipped: dropped,
    })
}

/// Sync once from the master the NameServers last named: topics, groups, offsets, delay
/// cursors, each part on its own (see the module doc). `Ok` with `master: None` when no master
/// is known (or it is this broker); `Err` when this broker is no slave or the master cannot be
/// reached at all.
pub(crate) async fn sync_once(
    broker: &Arc<Broker>,
    link: &mut MasterLink,
) -> Result<SyncReport, SyncError> {
    if broker.settings.role != BrokerRole::Slave {
        return Err(SyncError::NotSlave);
    }
    let Some(master) = broker.master_info() else {
        return Ok(SyncReport::default());
    };
    if master.addr == broker.addr.to_string() {
        tracing::warn!(addr = %master.addr, "slave sync: the master named is this broker");
        return Ok(SyncReport::default());
    }
    let addr: SocketAddr = master
        .addr
        .parse()
        .map_err(|_| SyncError::MasterAddr(master.addr.clone()))?;
    let conn = link.to(addr).await?;
    let parts: [(i32, &'static str, Apply); 4] = [
        (request::GET_ALL_TOPIC_CONFIG, "topic table", apply_topics),
        (
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
            "subscription group table",
            apply_groups,
        ),
        (
            request::GET_ALL_CONSUMER_OFFSET,
            "consumer offsets",
            apply_offsets,
        ),
        (
            request::GET_ALL_DELAY_OFFSET,
            "delay offsets",
            apply_delay_offsets,
        ),
    ];
    let mut steps = Vec::with_capacity(parts.len());
    for (code, what, apply) in parts {
        steps.push(part(broker, &conn, code, what, apply).await);
    }
    let mut steps = steps.into_iter();
    let mut next = || steps.next().unwrap_or_default();
    Ok(SyncReport {
        master: Some(master.addr),
        topics: next(),
        groups: next(),
        offsets: next(),
        delay_offsets: next(),
    })
}

impl Broker {
    /// Sync from the master now, as a slave does every `slaveSynchronizeInterval` (see
    /// `slave_sync`): its topic and subscription group tables, consumer offsets and delay
    /// cursors, persisted.
    pub async fn sync_from_master(self: &Arc<Self>) -> Result<SyncReport, SyncError> {
        sync_once(self, &mut MasterLink::default()).await
    }

    /// A slave's sync job, for the broker's task tracker: [`sync_once`] every
    /// `slaveSynchronizeInterval`, the first after [`FIRST_SYNC_DELAY`] (or the period if
    /// shorter), until `stop`. A sync under way when `stop` comes finishes the part it is
    /// applying (its network waits end at once when the broker shuts down), so no file is
    /// written after the shutdown's final persist.
    pub async fn slave_sync_job(self: Arc<Self>, stop: CancellationToken) {
        let period = Duration::from_millis(self.config.slave_synchronize_interval.max(1));
        let first = tokio::time::Instant::now() + FIRST_SYNC_DELAY.min(period);
        let mut link = MasterLink::default();
        let mut tick = tokio::time::interval_at(first, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match sync_once(&self, &mut link).await {
                Ok(r) if r.master.is_none() => tracing::debug!("slave sync: no master known"),
                Ok(r) if r.complete() => tracing::debug!(master = ?r.master, "slave sync done"),
                Ok(r) => tracing::warn!(master = ?r.master, report = ?r, "slave sync incomplete"),
                Err(e) => tracing::warn!(error = %e, "slave sync failed"),
            }
        }
    }
}
