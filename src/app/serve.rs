//! Serving with one thread per core: worker 0 is the thread that started the gateway, each other
//! worker a thread of its own; every worker runs a single-threaded runtime with its own listening
//! socket (`SO_REUSEPORT`) and its own upstream connection pool, so a request is accepted,
//! proxied and answered on one thread. A work-stealing runtime hands each hop to whichever thread
//! is free and wakes it; on a loaded proxy that is a context switch per hop (bench/NOTES.md,
//! "Thread per core").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use salvo::Server;
use salvo::server::ServerHandle;
use tokio::sync::oneshot;

use crate::inbound::http::{AppState, acceptor, service};

/// Serves on every socket in `sockets` (one worker each; the calling runtime is worker 0) until
/// `shutdown` completes, then stops every worker gracefully within `grace` and returns once all
/// of them have finished.
pub async fn serve_workers(
    sockets: Vec<std::net::TcpListener>,
    addr: &str,
    state: Arc<AppState>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut sockets = sockets.into_iter();
    let first = sockets
        .next()
        .ok_or_else(|| format!("cannot listen on {addr}: no socket"))?;
    let mut handles = Vec::new();
    let mut finished = Vec::new();
    for (offset, socket) in sockets.enumerate() {
        let (handle, done) = start_worker(offset + 1, socket, addr, state.clone()).await?;
        handles.push(handle);
        finished.push(done);
    }
    let server = Server::new(acceptor(first, addr)?);
    handles.push(server.handle());
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            "shutting down: no new connections, finishing in-flight requests"
        );
        for handle in &handles {
            handle.stop_graceful(Some(grace));
        }
    });
    server.serve(service(state)).await;
    for done in finished {
        let _ = done.await;
    }
    Ok(())
}

/// Starts worker `index` on a thread of its own; returns its server's handle once it listens, and
/// a receiver that completes when it has stopped.
async fn start_worker(
    index: usize,
    socket: std::net::TcpListener,
    addr: &str,
    state: Arc<AppState>,
) -> Result<(ServerHandle, oneshot::Receiver<()>), String> {
    let (ready_tx, ready_rx) = oneshot::channel::<Result<ServerHandle, String>>();
    let (done_tx, done_rx) = oneshot::channel();
    let addr = addr.to_string();
    std::thread::Builder::new()
        .name(format!("apiproxy-worker-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start worker {index}: {e}")));
                    return;
                }
            };
            crate::worker::enter(index, runtime.handle().clone());
            runtime.block_on(async move {
                let acceptor = match acceptor(socket, &addr) {
                    Ok(acceptor) => acceptor,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let server = Server::new(acceptor);
                let _ = ready_tx.send(Ok(server.handle()));
                server.serve(service(state)).await;
            });
            let _ = done_tx.send(());
        })
        .map_err(|e| format!("cannot start worker {index}: {e}"))?;
    let handle = ready_rx
        .await
        .map_err(|_| format!("worker {index} stopped before it listened"))??;
    Ok((handle, done_rx))
}
