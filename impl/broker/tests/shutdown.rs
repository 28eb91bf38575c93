//! A broker shut down while clients send to it, on 127.0.0.1: every send it acknowledged is in
//! the store after a restart, at the offset it acknowledged; the others were answered with an
//! error or not at all. Held pulls are answered at once when the shutdown starts.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_broker::{BrokerConfig, start};
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::SendMessageResponseHeader;

const T: Duration = Duration::from_secs(5);

fn config(dir: &std::path::Path, ns: std::net::SocketAddr) -> BrokerConfig {
    BrokerConfig {
        flush_consumer_offset_interval: 50,
        ..base_config(dir, ns)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_a_shutdown_under_load() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let addr = broker.local_addr;
    // body → (queue, offset) of every acknowledged send.
    let acked: Arc<Mutex<BTreeMap<String, (i32, i64)>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..4 {
        let acked = Arc::clone(&acked);
        senders.push(tokio::spawn(async move {
            let conn = connect(addr).await;
            let mut errors = 0;
            for i in 0.. {
                let body = format!("s{s}-{i}");
                match conn.invoke(send_v2("S", s, body.as_bytes(), ""), T).await {
                    Ok(r) if r.code == response::SUCCESS => {
                        let h = SendMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap())
                            .unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .insert(body, (h.queue_id, h.queue_offset));
                    }
                    // Refused or cut off: not acknowledged.
                    _ => {
                        errors += 1;
                        if errors > 3 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    // A held pull is answered as soon as the shutdown starts, not at its 20 s timeout.
    let puller = connect(addr).await;
    let r = puller
        .invoke(send_v2("Quiet", 0, b"q", ""), T)
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS);
    let held = tokio::spawn(async move {
        let start = Instant::now();
        let r = puller
            .invoke(
                pull_req("G", "Quiet", 0, 1, 20_000),
                Duration::from_secs(30),
            )
            .await;
        (start.elapsed(), r.map(|r| r.code))
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sent_before = acked.lock().unwrap().len();
    assert!(
        sent_before > 0,
        "nothing was acknowledged before the shutdown"
    );
    broker.shutdown().await;
    for s in senders {
        tokio::time::timeout(Duration::from_secs(20), s)
            .await
            .unwrap()
            .unwrap();
    }
    let (waited, _) = held.await.unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "the held pull waited {waited:?}"
    );

    // Restart: every acknowledged message is there, at its offset.
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let acked = acked.lock().unwrap().clone();
    let mut stored: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for q in 0..4 {
        let mut offset = 0;
        loop {
            let r = conn
                .invoke(pull_req("G", "S", q, offset, 0), T)
                .await
                .unwrap();
            if r.code != response::SUCCESS {
                break;
            }
            for b in bodies(&r.body) {
                stored.insert(b, (q, offset));
                offset += 1;
            }
        }
    }
    for (body, at) in &acked {
        assert_eq!(
            stored.get(body),
            Some(at),
            "acknowledged {body} at {at:?} was lost"
        );
    }
    assert!(acked.len() >= sent_before);
    broker.shutdown().await;
    ns.shutdown().await;
}
