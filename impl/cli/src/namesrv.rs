//! `sextant namesrv`: run a NameServer until Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;

use sextant_model::namesrv::NamesrvConfig;

/// Arguments of `sextant namesrv`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: SocketAddr,
    /// Drop a broker not heard from for this long (ms).
    #[arg(long, default_value_t = sextant_model::namesrv::DEFAULT_BROKER_EXPIRY)]
    broker_expiry_ms: u64,
    /// How often to look for expired brokers (ms).
    #[arg(long, default_value_t = sextant_model::namesrv::DEFAULT_SCAN_INTERVAL)]
    scan_interval_ms: u64,
}

/// Serve until `stop` completes; `ready` is told the bound address.
pub async fn serve(
    args: &Args,
    ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = NamesrvConfig {
        broker_expiry: args.broker_expiry_ms,
        scan_interval: args.scan_interval_ms,
        ..Default::default()
    };
    let running = sextant_namesrv::start_traced(args.listen, config, crate::tracer()).await?;
    ready(running.local_addr);
    stop.await;
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(())
}

/// Run `sextant namesrv` on a fresh runtime until Ctrl-C or SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve(
        args,
        |addr| eprintln!("NameServer listening on {addr}"),
        shutdown_signal(),
    ))
}

/// Ctrl-C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sextant_remoting::code::{request, response};
    use sextant_remoting::transport::Connection;
    use sextant_remoting::{FrameCodec, RemotingCommand};

    #[tokio::test]
    async fn serves_on_loopback_and_stops() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let cli = Cli::try_parse_from(["namesrv", "--listen", "127.0.0.1:0"]).unwrap();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(
                &cli.args,
                |a| {
                    let _ = addr_tx.send(a);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        });
        let addr = addr_rx.await.unwrap();
        let conn = Connection::connect(addr, FrameCodec::default(), None)
            .await
            .unwrap();
        let resp = conn
            .invoke(
                RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0),
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
