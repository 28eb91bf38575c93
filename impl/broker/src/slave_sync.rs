//! A slave's copy of its master's tables (RocketMQ 4.9.8's `SlaveSynchronize`): every
//! `slaveSynchronizeInterval` (10 s, RocketMQ 4.9.8's fixed period) a slave asks the master its
//! NameServers named (`masterAddr` of the registration answer, `Broker::master_info`) over the
//! master's remoting port for
//!
//! 1. the topic table (GET_ALL_TOPIC_CONFIG) — replaced, with the master's data version, and
//!    `topics.json` written; skipped when the versions are equal;
//! 2. the subscription group table (GET_ALL_SUBSCRIPTIONGROUP_CONFIG) — the same, into
//!    `subscriptionGroup.json`;
//! 3. the consumer offsets (GET_ALL_CONSUMER_OFFSET) — at the first sync over a new connection,
//!    the slave's own larger offsets sent to the master first (below); then the master's
//!    `topic@group` entries over the slave's (RocketMQ's `putAll`), `consumerOffset.json`
//!    written;
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
//! An offset a consumer commits to the slave while the master is away must survive the master's
//! return (RocketMQ 4.9.8 loses it: the master's older offset comes back at the next sync, and a
//! consumer that died meanwhile, or a new member of its group, reads those messages again). So the
//! first sync over each new connection to the master — the first after a master became known,
//! after its address changed, after it restarted (a restarted master's sockets died with it, so
//! the slave must reconnect: its data versions, loaded from its files, would not show it), or
//! after the link failed — first sends the master, as UPDATE_CONSUMER_OFFSET (a consumer's
//! commit), every offset of the slave's larger than the master's that the master admits
//! (`decide::offsets_to_push`, against the topic and group tables the slave holds after taking the
//! master's — its earlier copy if that part failed; the master refuses the rest), at most
//! `MAX_PUSHES_PER_SYNC` a sync and the rest at the next (the master's offsets are not taken until
//! the round is done, so nothing larger is lost meanwhile). The master takes the larger; the slave
//! then takes the master's table as it stands after the pushes. Later syncs over the same
//! connection push nothing, so a reset of the master's offsets to a lower value while its slave is
//! connected reaches the slave at its next sync and stays; one made while the slave is away (or
//! within a period before the link breaks) is undone for the queues where the slave holds more. A
//! consumer committing to the master between its answer and a push can have its offset moved to
//! the slave's: consumers commit their own offsets again every few seconds, and either way nothing
//! is skipped that a consumer did not commit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sextant_model::broker::slave_sync::{
    self as decide, MAX_PUSHES_PER_SYNC, OffsetPush, SyncRefusal, TableSync,
};
use sextant_model::namesrv::TopicConfig;
use sextant_model::store::BrokerRole;
use sextant_remoting::body::{self, ConsumerOffsetBody, DelayOffsetBody, decode_topic_table};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::UpdateConsumerOffsetRequestHeader;
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
/// How many of the slave's offsets are sent to the master at once (one connection).
const PUSHES_IN_FLIGHT: usize = 32;

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
    /// The master's offsets are not taken yet: some of the slave's larger ones are still to be
    /// sent to it (a round cut at `MAX_PUSHES_PER_SYNC`, or a push that failed).
    #[error(
        "{left} of the slave's offsets are still to be sent to the master; its offsets are \
         taken once they are"
    )]
    PushIncomplete {
        /// How many are left.
        left: usize,
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
    /// The master's table was taken (for [`SyncReport::pushed`]: the slave's offsets were sent).
    Applied {
        /// Entries now held (topics, groups, delay levels), queue offsets taken, or offsets the
        /// master accepted.
        entries: usize,
        /// Entries of the master's left out, or offsets it refused.
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
    /// The slave's larger offsets sent to the master before its offsets are taken (`Applied`:
    /// `entries` the master accepted, `skipped` it refused); `NotRun` when not due (a sync over
    /// a connection already reconciled, or without the push).
    pub pushed: Step,
    /// The consumer offsets.
    pub offsets: Step,
    /// The delay-level cursors.
    pub delay_offsets: Step,
}

impl SyncReport {
    /// Whether every part was applied or unchanged (and no push failed).
    pub fn complete(&self) -> bool {
        [
            &self.topics,
            &self.groups,
            &self.offsets,
            &self.delay_offsets,
        ]
        .iter()
        .all(|s| s.done())
            && self.pushed.failed().is_none()
    }
}

/// The connection to the master, kept from one sync to the next and reopened when the master
/// changes or the connection closes; and whether the slave's offsets were reconciled with the
/// master at its other end.
pub(crate) struct MasterLink {
    conn: Option<(SocketAddr, Connection)>,
    /// Whether this connection's master was sent the slave's larger offsets (and the slave took
    /// its table since).
    reconciled: bool,
    /// The position of the last entry sent by an unfinished push round.
    resume_after: Option<(String, String, u32)>,
    /// Whether to push at all (`false`: RocketMQ 4.9.8's sync).
    push: bool,
}

impl Default for MasterLink {
    fn default() -> MasterLink {
        MasterLink::new(true)
    }
}

impl MasterLink {
    fn new(push: bool) -> MasterLink {
        MasterLink {
            conn: None,
            reconciled: false,
            resume_after: None,
            push,
        }
    }

    async fn to(&mut self, addr: SocketAddr) -> Result<Connection, SyncError> {
        match &self.conn {
            Some((a, c)) if *a == addr && !c.is_closed() => return Ok(c.clone()),
            Some((_, c)) => c.close(),
            None => {}
        }
        self.conn = None;
        // A new connection may reach another master, or the same one restarted: the slave's
        // offsets are reconciled with it before the slave takes its table.
        self.reconciled = false;
        self.resume_after = None;
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

/// Run `f` on the blocking pool (it parses large tables or writes files). Not started once the
/// broker shuts down, so no sync writes a file after the final persist.
async fn blocking<T: Send + 'static>(
    broker: &Arc<Broker>,
    what: &'static str,
    f: impl FnOnce(&Broker) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    if broker.shutdown.is_cancelled() {
        return Err(SyncError::ShuttingDown);
    }
    let b = Arc::clone(broker);
    tokio::task::spawn_blocking(move || f(&b))
        .await
        .map_err(|e| SyncError::Task {
            what,
            why: e.to_string(),
        })?
}

fn logged(what: &'static str, applied: Result<Step, SyncError>) -> Step {
    match applied {
        Ok(step) => step,
        Err(e) => {
            tracing::warn!(part = what, error = %e, "slave sync: part skipped");
            Step::Failed(e)
        }
    }
}

/// Fetch one part and apply it on the blocking pool.
async fn part(
    broker: &Arc<Broker>,
    conn: &Connection,
    code: i32,
    what: &'static str,
    apply: Apply,
) -> Step {
    let applied = async {
        let body = fetch(broker, conn, code, what).await?;
        blocking(broker, what, move |b| apply(b, &body)).await
    };
    logged(what, applied.await)
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

/// Snapshots of the slave's topic and group tables, so that no two of the broker's locks are
/// held at once.
fn tables(b: &Broker) -> (BTreeMap<String, TopicConfig>, BTreeSet<String>) {
    let topics = lock(&b.topics).all().clone();
    let groups = lock(&b.subscriptions)
        .table
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    (topics, groups)
}

/// The master's GET_ALL_CONSUMER_OFFSET answer, decoded on the blocking pool, and — when `due`
/// — the slave's offsets to send it: larger than its own, admitted by the topic and group
/// tables the slave just took from it.
async fn master_offsets(
    broker: &Arc<Broker>,
    conn: &Connection,
    due: bool,
) -> Result<(ConsumerOffsetBody, Vec<OffsetPush>), SyncError> {
    let what = "consumer offsets";
    let body = fetch(broker, conn, request::GET_ALL_CONSUMER_OFFSET, what).await?;
    blocking(broker, what, move |b| {
        let master: ConsumerOffsetBody = body::decode(what, &body).map_err(malformed(what))?;
        if !due {
            return Ok((master, Vec::new()));
        }
        let (topics, groups) = tables(b);
        let pushes = decide::offsets_to_push(
            &lock(&b.offsets).offset_table,
            &master.offset_table,
            |t| topics.get(t),
            |g| groups.contains(g),
        );
        Ok((master, pushes))
    })
    .await
}

/// Send the master `batch` (UPDATE_CONSUMER_OFFSET, as consumers commit), a few at a time.
/// Returns how many it accepted and refused; a request that fails closes the connection.
async fn send_pushes(
    broker: &Broker,
    conn: &Connection,
    batch: &[OffsetPush],
) -> Result<(usize, usize), SyncError> {
    let what = "pushing the slave's offsets";
    let requests: Vec<RemotingCommand> = batch
        .iter()
        .map(|p| {
            let h = UpdateConsumerOffsetRequestHeader {
                consumer_group: p.group.clone(),
                topic: p.topic.clone(),
                // Both fit (`offsets_to_push`: a queue id below 2^31, an offset a Java long).
                queue_id: i32::try_from(p.queue_id).unwrap_or(i32::MAX),
                commit_offset: i64::try_from(p.offset).unwrap_or(i64::MAX),
            };
            RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0).with_ext(h.to_ext())
        })
        .collect();
    // Owned futures (a connection handle each): the sync job's future stays `Send`.
    let link = conn.clone();
    let mut answers = futures_util::stream::iter(requests.into_iter().map(move |req| {
        let conn = link.clone();
        async move { conn.invoke(req, REQUEST_TIMEOUT).await }
    }))
    .buffer_unordered(PUSHES_IN_FLIGHT);
    let (mut accepted, mut refused) = (0, 0);
    let mut first_refusal = None;
    loop {
        let answer = tokio::select! {
            a = answers.next() => a,
            _ = broker.shutdown.cancelled() => return Err(SyncError::ShuttingDown),
        };
        match answer {
            None => break,
            Some(Ok(r)) if r.code == response::SUCCESS => accepted += 1,
            Some(Ok(r)) => {
                refused += 1;
                first_refusal.get_or_insert((r.code, r.remark));
            }
            Some(Err(source)) => {
                conn.close();
                return Err(SyncError::Request { what, source });
            }
        }
    }
    if let Some((code, remark)) = first_refusal {
        tracing::warn!(
            refused,
            code,
            remark = remark.unwrap_or_default(),
            "slave sync: the master refused some of the slave's offsets (it keeps its own)"
        );
    }
    Ok((accepted, refused))
}

/// The consumer offsets: over a connection not yet reconciled, the slave's larger offsets are
/// sent to the master first (see the module doc); then the master's table is taken. Returns
/// what the push did and what the sync of the offsets did.
async fn offsets_part(
    broker: &Arc<Broker>,
    conn: &Connection,
    link: &mut MasterLink,
) -> (Step, Step) {
    let what = "consumer offsets";
    let mut pushed = Step::NotRun;
    let synced = async {
        let due = link.push && !link.reconciled;
        let (mut master, pushes) = master_offsets(broker, conn, due).await?;
        if due {
            let after = link
                .resume_after
                .as_ref()
                .map(|(t, g, q)| (t.as_str(), g.as_str(), *q));
            let (batch, left) = decide::push_batch(&pushes, after, MAX_PUSHES_PER_SYNC);
            let (accepted, refused) = match send_pushes(broker, conn, batch).await {
                Ok(counts) => counts,
                Err(e) => {
                    tracing::warn!(error = %e, "slave sync: pushing the slave's offsets failed");
                    pushed = Step::Failed(e);
                    return Err(SyncError::PushIncomplete {
                        left: batch.len() + left,
                    });
                }
            };
            pushed = Step::Applied {
                entries: accepted,
                skipped: refused,
            };
            if left > 0 {
                link.resume_after = batch
                    .last()
                    .map(|p| (p.topic.clone(), p.group.clone(), p.queue_id));
                tracing::warn!(
                    sent = batch.len(),
                    left,
                    "slave sync: offsets sent to the master cut at {MAX_PUSHES_PER_SYNC}; the \
                     rest at the next sync"
                );
                return Err(SyncError::PushIncomplete { left });
            }
            link.reconciled = true;
            link.resume_after = None;
            if accepted > 0 {
                // The master's table as it stands with what it took.
                master = master_offsets(broker, conn, false).await?.0;
            }
        }
        blocking(broker, what, move |b| apply_offsets(b, &master)).await
    };
    let synced = logged(what, synced.await);
    (pushed, synced)
}

fn apply_offsets(b: &Broker, master: &ConsumerOffsetBody) -> Result<Step, SyncError> {
    let (topics, groups) = tables(b);
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
    sextant_store::config::save_json_in(&*b.store.config().fs, &b.delay_offset_path(), &file)
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
    let topics = part(
        broker,
        &conn,
        request::GET_ALL_TOPIC_CONFIG,
        "topic table",
        apply_topics,
    )
    .await;
    let groups = part(
        broker,
        &conn,
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        "subscription group table",
        apply_groups,
    )
    .await;
    // After the groups and topics: what the slave pushes and keeps depends on them.
    let (pushed, offsets) = offsets_part(broker, &conn, link).await;
    let delay_offsets = part(
        broker,
        &conn,
        request::GET_ALL_DELAY_OFFSET,
        "delay offsets",
        apply_delay_offsets,
    )
    .await;
    Ok(SyncReport {
        master: Some(master.addr),
        topics,
        groups,
        pushed,
        offsets,
        delay_offsets,
    })
}

impl Broker {
    /// Sync from the master now, as a slave does every `slaveSynchronizeInterval` (see
    /// `slave_sync`): its topic and subscription group tables, consumer offsets and delay
    /// cursors, persisted. Each call opens a connection of its own, so it is a first sync over
    /// a new connection: the slave's offsets larger than the master's are sent to it first.
    pub async fn sync_from_master(self: &Arc<Self>) -> Result<SyncReport, SyncError> {
        sync_once(self, &mut MasterLink::new(true)).await
    }

    /// [`Broker::sync_from_master`] as RocketMQ 4.9.8 syncs: nothing sent to the master, its
    /// offsets simply over the slave's (an offset committed to the slave while the master was
    /// away goes back to the master's). To compare against; the periodic job pushes.
    pub async fn sync_from_master_without_push(self: &Arc<Self>) -> Result<SyncReport, SyncError> {
        sync_once(self, &mut MasterLink::new(false)).await
    }

    /// A slave's sync job, for the broker's task tracker: a sync every
    /// `slaveSynchronizeInterval`, the first after 3 s (or the period if shorter), until `stop`,
    /// over one connection kept while it lasts (the slave's larger offsets are pushed at the first
    /// sync over each new one). A sync under way when `stop` comes finishes the part
    /// it is applying (its network waits end at once when the broker shuts down), so no file is
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
