//! Which broker a pull answer sends the consumer to next (`suggestWhichBrokerId`,
//! RocketMQ's `PullMessageProcessor`): with `slaveReadEnable` a consumer further behind the
//! CommitLog's end than `accessMessageInMemoryMaxRatio` % of the memory is sent to its group's
//! `whichBrokerWhenConsumeSlowly`, one that keeps up to its `brokerId`; without it, always to the
//! master. The memory is set to a few KB, so that a few messages make a consumer "far behind".

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{base_config, connect, namesrv, send_v2};
use sextant_broker::{BrokerConfig, start};
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use sextant_remoting::transport::Connection;

const T: Duration = Duration::from_secs(5);

fn config(dir: &Path, ns: SocketAddr, slave_read: bool) -> BrokerConfig {
    BrokerConfig {
        slave_read_enable: slave_read,
        access_message_in_memory_max_ratio: 40,
        ..base_config(dir, ns)
    }
}

/// The suggested broker id of a pull of one message of queue 0 at `offset`.
async fn suggested(conn: &Connection, group: &str, offset: i64) -> i64 {
    let h = PullMessageRequestHeader {
        sys_flag: 4,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::new(group, "S", 0, offset, 1)
    };
    let r = conn
        .invoke(
            RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(h.to_ext()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    PullMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap())
        .unwrap()
        .suggest_which_broker_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_far_behind_is_sent_to_a_slave_only_with_slave_reads_on() {
    let ns = namesrv().await;
    for slave_read in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let broker = start(config(dir.path(), ns.local_addr, slave_read))
            .await
            .unwrap();
        let conn = connect(broker.local_addr).await;
        // 20 messages of 1 KiB: from the first, 19 KiB and more are left to read.
        let body = vec![b'x'; 1024];
        for _ in 0..20 {
            let r = conn.invoke(send_v2("S", 0, &body, ""), T).await.unwrap();
            assert_eq!(r.code, response::SUCCESS);
        }
        // With the real memory (GBs) no consumer of 20 KiB is far behind.
        assert_eq!(suggested(&conn, "G", 0).await, 0);
        // 10 000 bytes of memory at 40 %: more than 4 000 bytes behind is far.
        broker.broker.set_physical_memory(10_000);
        let (far, near) = (
            suggested(&conn, "G", 0).await,
            suggested(&conn, "G", 19).await,
        );
        // A group with its own brokers: `brokerId` 3 when keeping up, 2 when slow.
        let body = r#"{"groupName":"H","consumeEnable":true,"brokerId":3,"whichBrokerWhenConsumeSlowly":2}"#;
        let req = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
            .with_body(body.as_bytes().to_vec());
        assert_eq!(conn.invoke(req, T).await.unwrap().code, response::SUCCESS);
        let (h_far, h_near) = (
            suggested(&conn, "H", 0).await,
            suggested(&conn, "H", 19).await,
        );
        if slave_read {
            // The defaults: the first slave when slow, the master otherwise.
            assert_eq!((far, near), (1, 0));
            assert_eq!((h_far, h_near), (2, 3));
        } else {
            assert_eq!((far, near, h_far, h_near), (0, 0, 0, 0));
        }
        broker.shutdown().await;
    }
    ns.shutdown().await;
}
