//! The connection caps at full scale, with the servers as child processes: the NameServer
//! serves at most `sextant_namesrv::MAX_CONNECTIONS` (4 096) connections and the broker
//! `sextant_remoting::transport::MAX_CONNECTIONS` (16 384); one more is closed at once, every
//! connection inside the cap is still answered, and a place freed is taken by the next client.
//! (The broker half needs about 17 000 file descriptors in this process and is skipped, saying
//! so, where `ulimit -n` is lower.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::spawn;
use sextant_remoting::code::request;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::GetRouteInfoRequestHeader;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

const T: Duration = Duration::from_secs(20);

fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(1024)
}

fn route_req() -> RemotingCommand {
    RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
        GetRouteInfoRequestHeader {
            topic: "NoSuchTopic".into(),
            accept_standard_json_only: None,
        }
        .to_ext(),
    )
}

/// Whether `conn` answers a request (any answer) within `T`.
async fn answers(conn: &Connection) -> bool {
    conn.invoke(route_req(), T).await.is_ok()
}

/// Fill `addr` to `cap` connections, check one more is closed, free five, take them again.
async fn fill_to_the_cap(addr: SocketAddr, cap: usize) {
    let mut conns = Vec::with_capacity(cap);
    for i in 0..cap {
        let c = Connection::connect(addr, FrameCodec::default(), None)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        conns.push(c);
    }
    // Every connection inside the cap is served (the last ones too: all were accepted).
    for c in conns.iter().rev().take(64).chain(conns.iter().take(64)) {
        assert!(
            answers(c).await,
            "a connection inside the cap was not served"
        );
    }
    // One more: accepted by the kernel, closed by the server.
    let extra = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .expect("the kernel accepts");
    assert!(
        !answers(&extra).await,
        "a connection past the cap was served"
    );
    // Five places freed are taken by the next clients.
    for c in conns.drain(..5) {
        c.close();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let c = Connection::connect(addr, FrameCodec::default(), None)
            .await
            .expect("connects");
        assert!(
            answers(&c).await,
            "a freed place was not given to a new client"
        );
        conns.push(c);
    }
    assert!(
        answers(&conns[0]).await,
        "an old connection stopped being served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namesrv_and_broker_serve_up_to_their_caps_and_no_more() {
    let (mut ns, ns_addr) = spawn(&["namesrv", "--listen", "127.0.0.1:0"], "NameServer");
    fill_to_the_cap(ns_addr, sextant_namesrv::MAX_CONNECTIONS).await;
    ns.kill().unwrap();
    ns.wait().unwrap();

    let cap = sextant_remoting::transport::MAX_CONNECTIONS;
    let limit = fd_limit();
    if limit < cap as u64 + 1_000 {
        eprintln!("skipped the broker's cap: {cap} connections need more than ulimit -n {limit}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, addr) = spawn(
        &[
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--namesrv",
            "127.0.0.1:1",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        "broker",
    );
    fill_to_the_cap(addr, cap).await;
    broker.kill().unwrap();
    broker.wait().unwrap();
}
