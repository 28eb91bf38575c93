//! A slave's side of replication (`DefaultHAClient`): connect to the master's HA address,
//! report how far the log goes (on connect, after each append, and at least every
//! `haSendHeartbeatInterval`), append the chunks the master streams
//! (`MessageStore::replicate`, which `sextant_model::ha::accept_chunk` guards) and wake the pulls
//! held on the queues they fill. A refused chunk (divergence, a gap, garbage) or a master silent
//! for `haHousekeepingInterval` closes the connection; the slave connects again after
//! [`RECONNECT`] and reports its log's end, so the master resends from there.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use sextant_model::ha::MAX_CHUNK;
use sextant_remoting::ha::{Chunk, ChunkCodec, ReportCodec};
use sextant_store::Error as StoreError;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// How long a slave waits before connecting again (`DefaultHAClient`: 5 s).
pub(crate) const RECONNECT: Duration = Duration::from_secs(5);
/// How long connecting to the master may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How many bytes of chunks already received are appended in one blocking-pool trip (at least
/// one chunk).
const APPEND_BYTES: usize = 2 * 1024 * 1024;

/// Follow the master until `stop`: connect, replicate, and connect again when the connection
/// ends — soon after a clean close (within `haSendHeartbeatInterval`, at most 1 s), after
/// `reconnect` ([`RECONNECT`], or a quarter of `haHousekeepingInterval` if shorter) when
/// connecting failed or the connection ended in an error (a refusal would otherwise repeat at
/// once, as `DefaultHAClient.closeMasterAndWait`). The master's HA address last announced is kept
/// while registration answers name none.
pub(crate) async fn follow(broker: Arc<Broker>, stop: CancellationToken, reconnect: Duration) {
    let cfg = &broker.config;
    let again =
        Duration::from_millis(cfg.ha_send_heartbeat_interval.max(1)).min(Duration::from_secs(1));
    let after_error = reconnect.min(Duration::from_millis(
        (cfg.ha_housekeeping_interval / 4).max(1),
    ));
    let mut known: Option<String> = None;
    loop {
        if let Some(a) = master_ha_address(&broker) {
            known = Some(a);
        }
        let wait = match known.clone() {
            None => {
                tracing::debug!("no master HA address yet");
                again
            }
            Some(addr) => match connect(&addr).await {
                Err(why) => {
                    tracing::warn!(master = %addr, "{why}");
                    after_error
                }
                Ok(stream) => match session(&broker, stream, &addr, &stop).await {
                    Ok(()) => {
                        tracing::info!(master = %addr, "replication connection closed");
                        again
                    }
                    Err(why) => {
                        tracing::warn!(master = %addr, "replication stopped: {why}");
                        after_error
                    }
                },
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn connect(addr: &str) -> Result<TcpStream, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The master's HA address: `haMasterAddress` when set, else what the NameServer answered the
/// slave's registration with.
fn master_ha_address(broker: &Broker) -> Option<String> {
    broker
        .config
        .ha_master_address
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| broker.master_info().and_then(|m| m.ha_addr))
}

/// One replication connection.
async fn session(
    broker: &Arc<Broker>,
    stream: TcpStream,
    addr: &str,
    stop: &CancellationToken,
) -> Result<(), String> {
    let cfg = &broker.config;
    let housekeeping = Duration::from_millis(cfg.ha_housekeeping_interval.max(1));
    let heartbeat = Duration::from_millis(cfg.ha_send_heartbeat_interval.max(1));
    let (read, write) = stream.into_split();
    let mut chunks = FramedRead::new(
        read,
        ChunkCodec {
            max_body: MAX_CHUNK,
        },
    );
    let mut reports = FramedWrite::new(write, ReportCodec);
    // A new connection starts at the last complete record: what an earlier one left of an
    // incomplete record is sent again.
    broker.store().replica_restart();
    let mut reported = broker.store().replica_end();
    reports.send(reported).await.map_err(|e| e.to_string())?;
    tracing::info!(master = %addr, offset = reported, "replicating from the master");
    let mut master = broker.master.subscribe();
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let first = tokio::select! {
            r = chunks.next() => match r {
                Some(Ok(c)) => c,
                Some(Err(e)) => return Err(format!("bad chunk from the master: {e}")),
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(last_heard + housekeeping) => {
                return Err(format!("the master was silent for {} ms", housekeeping.as_millis()));
            }
            _ = beat.tick() => {
                reports.send(broker.store().replica_end()).await.map_err(|e| e.to_string())?;
                continue;
            }
            r = master.changed() => {
                // Only another announced address ends a working connection.
                if r.is_err() || master_ha_address(broker).is_some_and(|a| a != addr) {
                    return Err("the master's HA address changed".into());
                }
                continue;
            }
            _ = stop.cancelled() => return Ok(()),
        };
        last_heard = tokio::time::Instant::now();
        // Take what else has arrived, to append it in one trip (at most APPEND_BYTES).
        let mut bytes = first.body.len();
        let mut batch = vec![first];
        while bytes < APPEND_BYTES {
            match chunks.next().now_or_never() {
                Some(Some(Ok(c))) => {
                    bytes += c.body.len();
                    batch.push(c);
                }
                Some(Some(Err(e))) => return Err(format!("bad chunk from the master: {e}")),
                _ => break,
            }
        }
        let end = append(broker, batch).await?;
        if end != reported {
            reports.send(end).await.map_err(|e| e.to_string())?;
            reported = end;
        }
    }
}

/// Append chunks on the blocking pool; wake held pulls; the offset to report.
async fn append(broker: &Arc<Broker>, batch: Vec<Chunk>) -> Result<u64, String> {
    let b = Arc::clone(broker);
    let (end, queues, refused) = tokio::task::spawn_blocking(move || {
        let mut queues = Vec::new();
        for c in batch {
            match b.store().replicate(c.start, &c.body) {
                Ok(done) => queues.extend(done.queues),
                Err(e) => return (b.store().replica_end(), queues, Some(e)),
            }
        }
        (b.store().replica_end(), queues, None)
    })
    .await
    .map_err(|e| e.to_string())?;
    broker.notify_arrivals(queues.iter().map(|(t, q, end)| (t.as_str(), *q, *end)));
    match refused {
        None => Ok(end),
        Some(StoreError::Replica(refusal)) => {
            tracing::error!("the slave refuses what its master sent: {refusal}");
            Err(refusal.to_string())
        }
        Some(e) => Err(e.to_string()),
    }
}
