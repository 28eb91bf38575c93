//! Retention and a full disk on a real broker (127.0.0.1, 1 MiB CommitLog segments): a pass at a
//! time past `fileReservedTime` deletes the old segments, never the one being written; a pull
//! below the new minimum answers OFFSET_MOVED with the new min; what is left survives a restart.
//! Above `diskSpaceWarningLevelRatio` sends are refused with SERVICE_NOT_AVAILABLE, reads go on.

mod common;

use common::*;
use std::time::Duration;

use sextant_broker::{BrokerConfig, start, wall_ms};
use sextant_remoting::code::response;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::PullMessageResponseHeader;
use sextant_remoting::transport::Connection;

const T: Duration = Duration::from_secs(10);

fn config(dir: &std::path::Path, ns: std::net::SocketAddr) -> BrokerConfig {
    BrokerConfig {
        // The broker's own passes stay out of the way: the test runs them itself.
        clean_resource_interval: 3_600_000,
        ..base_config(dir, ns)
    }
}

async fn pull_at(conn: &Connection, offset: i64) -> (i32, PullMessageResponseHeader, usize) {
    let r = conn
        .invoke(pull_req("G", "R", 0, offset, 0), T)
        .await
        .unwrap();
    let h = PullMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    (r.code, h, bodies(&r.body).len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_segments_go_and_pulls_below_the_minimum_move() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let body = vec![b'r'; 1024];
    for _ in 0..3000 {
        let r = conn.invoke(send_v2("R", 0, &body, ""), T).await.unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    let (code, _, n) = pull_at(&conn, 0).await;
    assert_eq!((code, n > 0), (response::SUCCESS, true));
    let store = broker.broker.store();
    // Not yet expired: nothing goes.
    let r = store.clean(wall_ms(), 4).unwrap();
    assert!(r.segments_deleted.is_empty(), "{r:?}");
    // 73 h later, at the deletion hour: the full segments go, the one being written stays.
    let r = store.clean(wall_ms() + 73 * 3_600_000, 4).unwrap();
    assert!(r.segments_deleted.len() >= 2, "{r:?}");
    let (log_start, log_end) = store.log_offsets();
    assert!(log_start > 0 && log_start < log_end);
    let (code, h, _) = pull_at(&conn, 0).await;
    assert_eq!(code, response::PULL_OFFSET_MOVED);
    assert!(h.min_offset > 0);
    assert_eq!(h.next_begin_offset, h.min_offset);
    let min = h.min_offset;
    let (code, _, n) = pull_at(&conn, min).await;
    assert_eq!((code, n > 0), (response::SUCCESS, true));
    // Sends go on; after a restart the queue still starts at the new minimum.
    let r = conn.invoke(send_v2("R", 0, b"after", ""), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    broker.shutdown().await;
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let (code, h, _) = pull_at(&conn, 0).await;
    assert_eq!((code, h.min_offset), (response::PULL_OFFSET_MOVED, min));
    assert_eq!(h.max_offset, 3001);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_puts_and_keeps_serving_reads() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;
    for i in 0..10 {
        let r = conn
            .invoke(send_v2("R", 0, format!("m{i}").as_bytes(), ""), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    broker.shutdown().await;
    // The same disk with a warning level of 0 %: it is "full".
    let full = BrokerConfig {
        disk_space_warning_level_ratio: 0,
        flush_interval_consume_queue: 20,
        ..config(dir.path(), ns.local_addr)
    };
    let broker = start(full).await.unwrap();
    let conn = connect(broker.local_addr).await;
    let mut refused = None;
    for _ in 0..250 {
        let r = conn.invoke(send_v2("R", 0, b"x", ""), T).await.unwrap();
        if r.code == response::SERVICE_NOT_AVAILABLE {
            refused = r.remark;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let remark = refused.expect("a full disk never refused a put");
    assert!(remark.contains("disk is full"), "{remark}");
    // Reads go on, and nothing already stored is lost.
    let (code, _, n) = pull_at(&conn, 0).await;
    assert_eq!(code, response::SUCCESS);
    assert!(n >= 10);
    broker.shutdown().await;
    ns.shutdown().await;
}
