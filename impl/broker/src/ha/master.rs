//! A master's side of replication (`DefaultHAService.AcceptSocketService` and
//! `DefaultHAConnection`): accept slaves on the HA port; for each, read its offset reports (the
//! first says where to start) and stream the CommitLog from there in chunks, an empty chunk as
//! a heartbeat when nothing was sent for `haSendHeartbeatInterval`. A slave silent for
//! `haHousekeepingInterval` is dropped. A slave that reports more log than the master holds has
//! diverged: the master says so in its log, sends one heartbeat at its own end (so the slave
//! refuses it and says so too) and closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sextant_model::ha::{MAX_CHUNK, next_chunk, transfer_start};
use sextant_remoting::ha::{Chunk, ChunkCodec, ReportCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;

/// The most slaves (HA connections) one master serves at once.
pub(crate) const MAX_SLAVES: usize = 64;
/// The most bytes one read from the store covers (one blocking-pool trip): 32 default chunks.
const READ_BYTES: usize = 1024 * 1024;

/// Accept slaves until `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_SLAVES));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "HA accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        // Every connection counts, reporting or not.
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, "HA connection refused: {MAX_SLAVES} connections already");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracing::info!(%peer, "slave connected");
        let broker = Arc::clone(&broker);
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match connection(stream, &broker, stop).await {
                Ok(()) => tracing::info!(%peer, "slave connection closed"),
                Err(why) => tracing::warn!(%peer, "slave connection closed: {why}"),
            }
        });
    }
}

/// Serve one slave until it goes, falls silent, or `stop`.
async fn connection(
    stream: TcpStream,
    broker: &Arc<Broker>,
    stop: CancellationToken,
) -> Result<(), String> {
    let cfg = &broker.config;
    let housekeeping = Duration::from_millis(cfg.ha_housekeeping_interval.max(1));
    let heartbeat = Duration::from_millis(cfg.ha_send_heartbeat_interval.max(1));
    let batch = cfg.ha_transfer_batch_size.clamp(1, MAX_CHUNK);
    let (read, write) = stream.into_split();
    let mut reports = FramedRead::new(read, ReportCodec);
    let mut chunks = FramedWrite::new(
        write,
        ChunkCodec {
            max_body: MAX_CHUNK,
        },
    );
    let first = tokio::select! {
        r = tokio::time::timeout(housekeeping, reports.next()) => match r {
            Ok(Some(Ok(offset))) => offset,
            Ok(Some(Err(e))) => return Err(format!("bad offset report: {e}")),
            Ok(None) => return Ok(()),
            Err(_) => return Err("no offset report".into()),
        },
        _ = stop.cancelled() => return Ok(()),
    };
    let store = broker.store();
    let mut from = match transfer_start(first, store.master_log()) {
        Ok(from) => from,
        Err(refusal) => {
            tracing::error!("not replicating to a slave: {refusal}");
            let end = store.master_log().end;
            let _ = chunks
                .send(Chunk {
                    start: end,
                    body: Default::default(),
                })
                .await;
            return Err(refusal.to_string());
        }
    };
    let id = broker.ha.connected(first);
    let _registered = Deregister(broker, id);
    // Reports are read on their own task: a master blocked writing to this slave still takes
    // them, and a slave that stops reporting is dropped.
    let reader = {
        let broker = Arc::clone(broker);
        let stop = stop.clone();
        async move {
            loop {
                match tokio::time::timeout(housekeeping, reports.next()).await {
                    Ok(Some(Ok(offset))) => broker.ha.reported(id, offset),
                    Ok(Some(Err(e))) => return format!("bad offset report: {e}"),
                    Ok(None) => return "the slave closed the connection".to_string(),
                    Err(_) => {
                        return format!("no offset report for {} ms", housekeeping.as_millis());
                    }
                }
                if stop.is_cancelled() {
                    return "stopping".into();
                }
            }
        }
    };
    let writer = async {
        let mut appended = store.log_end();
        let mut last_sent = Instant::now();
        loop {
            let log = store.master_log();
            if next_chunk(from, log, batch).is_some() {
                let want = READ_BYTES.max(batch);
                let s = Arc::clone(broker);
                let bytes = tokio::task::spawn_blocking(move || s.store().read_log(from, want))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("reading the CommitLog at {from}: {e}"))?;
                if bytes.is_empty() {
                    return Err(format!("nothing to read at {from}"));
                }
                let body = bytes::Bytes::from(bytes);
                for at in (0..body.len()).step_by(batch) {
                    let piece = body.slice(at..(at + batch).min(body.len()));
                    let start = from + at as u64;
                    chunks
                        .feed(Chunk { start, body: piece })
                        .await
                        .map_err(|e| e.to_string())?;
                }
                chunks.flush().await.map_err(|e| e.to_string())?;
                from += body.len() as u64;
                last_sent = Instant::now();
                continue;
            }
            let due = last_sent + heartbeat;
            tokio::select! {
                r = appended.changed() => if r.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(due.into()) => {
                    chunks
                        .send(Chunk { start: from, body: Default::default() })
                        .await
                        .map_err(|e| e.to_string())?;
                    last_sent = Instant::now();
                }
            }
        }
    };
    tokio::select! {
        why = reader => Err(why),
        r = writer => r,
        _ = stop.cancelled() => Ok(()),
    }
}

/// Forgets a slave's acknowledgements when its connection ends, however it ends.
struct Deregister<'a>(&'a Broker, u64);

impl Drop for Deregister<'_> {
    fn drop(&mut self) {
        self.0.ha.disconnected(self.1);
    }
}
