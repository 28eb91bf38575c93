//! The servers as real processes: `sextant broker` with SYNC_FLUSH killed with SIGKILL during
//! sustained sends loses no acknowledged message; SIGTERM stops it cleanly (exit 0, unregistered);
//! `sextant standalone` serves a send and a pull.

mod common;

use common::{pull_all, send, spawn, sustained_sends};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::GetRouteInfoRequestHeader;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_sync_flush_sends_loses_no_acknowledged_message() {
    let ns = sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), NamesrvConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let ns_addr = ns.local_addr.to_string();
    let args = [
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--namesrv",
        &ns_addr,
        "--data-dir",
        &data,
        "--flush",
        "SYNC_FLUSH",
    ];
    let (mut child, addr) = spawn(&args, "broker");

    // Four connections, each sending numbered messages to its own queue as fast as acks come.
    let stop = Arc::new(AtomicBool::new(false));
    let senders = sustained_sends(addr, "K", 4, &stop, |code, remark| {
        panic!("send refused: {code} {remark:?}")
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for s in senders {
        acked.extend(s.await.expect("sender"));
    }
    assert!(acked.len() > 50, "sends were sustained: {}", acked.len());

    // Restart on the same directory: every acknowledged message is there.
    let (mut child, addr) = spawn(&args, "broker");
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .expect("connect");
    let mut stored = BTreeSet::new();
    for q in 0..4 {
        let bodies = pull_all(&conn, "K", q).await;
        // A queue holds each message once, in order.
        let unique: BTreeSet<_> = bodies.iter().cloned().collect();
        assert_eq!(unique.len(), bodies.len());
        stored.extend(bodies);
    }
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    eprintln!(
        "{} acknowledged, {} stored after kill -9",
        acked.len(),
        stored.len()
    );

    // SIGTERM stops it cleanly: exit 0, and it unregisters from the NameServer.
    let nsc = Connection::connect(ns.local_addr, FrameCodec::default(), None)
        .await
        .expect("connect");
    let route = || {
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
            GetRouteInfoRequestHeader {
                topic: "K".into(),
                accept_standard_json_only: None,
            }
            .to_ext(),
        )
    };
    let mut registered = false;
    for _ in 0..250 {
        if nsc.invoke(route(), T).await.expect("route").code == response::SUCCESS {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(registered, "the restarted broker registered topic K");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("exit");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        nsc.invoke(route(), T).await.expect("route").code,
        response::TOPIC_NOT_EXIST
    );
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let (mut child, ns) = spawn(
        &[
            "standalone",
            "--data-dir",
            &data,
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-listen",
            "127.0.0.1:0",
        ],
        "NameServer",
    );
    let nsc = Connection::connect(ns, FrameCodec::default(), None)
        .await
        .expect("connect");
    // TBW102 is routed at once, so a client can find the broker before any topic exists.
    let r = nsc
        .invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_ext(
                GetRouteInfoRequestHeader {
                    topic: "TBW102".into(),
                    accept_standard_json_only: None,
                }
                .to_ext(),
            ),
            T,
        )
        .await
        .expect("route");
    assert_eq!(r.code, response::SUCCESS);
    let route = sextant_remoting::route::decode_route(&r.body).expect("route body");
    let addr: SocketAddr = route.broker_datas[0].broker_addrs[&0]
        .parse()
        .expect("addr");
    let conn = Connection::connect(addr, FrameCodec::default(), None)
        .await
        .expect("connect");
    let r = conn.invoke(send("New", 0, b"hi"), T).await.expect("send");
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(pull_all(&conn, "New", 0).await, ["hi"]);
    child.kill().expect("kill");
    child.wait().expect("reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_with_slave_fails_over_when_the_master_stops_and_starts() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "standalone",
            "--with-slave",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-listen",
            "127.0.0.1:0",
            "--slave-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let until = |what: &str| loop {
        let line = rx.recv_timeout(T).expect("the standalone's output");
        if line.contains(what) {
            return line;
        }
    };
    let addr_in = |line: &str| -> SocketAddr {
        let after = line.split(" listening on ").nth(1).expect("an address");
        after
            .split([',', ' '])
            .next()
            .unwrap()
            .parse()
            .expect("an address")
    };
    let master = addr_in(&until("(master, brokerId 0) listening on"));
    let slave = addr_in(&until("(slave, brokerId 1) listening on"));
    until("ready:");
    let m = Connection::connect(master, FrameCodec::default(), None)
        .await
        .expect("connect");
    let s = Connection::connect(slave, FrameCodec::default(), None)
        .await
        .expect("connect");
    for i in 0..20 {
        let r = m
            .invoke(send("Fail", 0, format!("m{i}").as_bytes()), T)
            .await
            .unwrap();
        assert_eq!(r.code, response::SUCCESS);
    }
    // The slave serves them (once it copied the topic from its master: within 10 s).
    let mut on_slave = Vec::new();
    for _ in 0..150 {
        on_slave = pull_all(&s, "Fail", 0).await;
        if on_slave.len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(on_slave.len(), 20, "the slave serves what the master took");
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, "stop").unwrap();
    until("master stopped");
    assert!(m.invoke(send("Fail", 0, b"x"), T).await.is_err() || m.is_closed());
    assert_eq!(
        pull_all(&s, "Fail", 0).await.len(),
        20,
        "read from the slave while down"
    );
    writeln!(child.stdin.as_mut().unwrap(), "start").unwrap();
    let back = addr_in(&until("is back listening on"));
    let m = Connection::connect(back, FrameCodec::default(), None)
        .await
        .expect("connect");
    let r = m.invoke(send("Fail", 0, b"after"), T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS);
    child.kill().expect("kill");
    child.wait().expect("reaped");
}
