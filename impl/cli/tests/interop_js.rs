//! A third-party RocketMQ client against `sextant standalone`: ali-ons, a pure-JavaScript
//! remoting client from the npm registry (`interop/js/`). It creates a topic, produces 20
//! messages and one with another tag, consumes them with a tag subscription in a push consumer
//! group, and asks for one to be retried, which comes back through `%RETRY%JsGroup` after its
//! delay level (10 s).
//!
//! Ignored by default: it needs Node.js and the npm registry. Run it with
//! `cargo test -p sextant --test interop_js -- --ignored`; it installs the pinned packages
//! (`npm ci`) on first use. Everything it starts listens on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
#[ignore = "needs Node.js and the npm registry; run with --ignored"]
fn ali_ons_produces_consumes_filters_and_retries() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/js");
    if !js.join("node_modules").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&js)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci failed");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "standalone",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("sextant standalone starts");
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let ns: SocketAddr = loop {
        let line = lines.next().expect("an address line").expect("stderr");
        if let Some(a) = line.strip_prefix("NameServer listening on ") {
            break a.trim().parse().expect("an address");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let out = Command::new("node")
        .args(["interop.js", &ns.to_string(), "20"])
        .current_dir(&js)
        .output()
        .expect("node runs");
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("all 20 received, one of them after a retry"),
        "{stdout}"
    );
    assert!(
        stdout.contains("received m3 tags=TagA reconsume=1"),
        "{stdout}"
    );
}
