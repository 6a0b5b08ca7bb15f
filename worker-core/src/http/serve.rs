//! The listener [`HostBuilder::serve`](crate::HostBuilder::serve) starts: an OS thread with a
//! runtime of its own, so `/healthz` and `/metrics` are answered while every worker thread is
//! busy or blocked, and limits that keep slow, idle and greedy clients from using it up.
//!
//! - A connection must send a request's headers within [`HttpLimits::header_timeout`] of being
//!   ready for one (when it opens, and after each answer), so a client trickling its headers and
//!   an idle keep-alive connection are both closed then; and any connection is closed once no
//!   byte went either way for [`HttpLimits::idle_timeout`] (a client that stopped reading).
//! - At most [`HttpLimits::max_connections`] are open: one more closes the connection that has
//!   been quiet the longest, so a new probe is served while slow or idle clients hold the rest.
//! - An accept error (`EMFILE`: the process is out of file descriptors) is logged, at most once a
//!   minute with the count of those not logged, and closes the quietest connection to free a
//!   descriptor, then the accept is retried 10 ms later; with no connection to close, after a
//!   backoff of 10 ms doubling to 1 s.
//!
//! The listener logs nothing on the way of a request, so a blocked log sink does not stop it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Kind};
use crate::host::handle::HostHandle;
use crate::http::limits::HttpLimits;

/// The running listener.
#[derive(Debug)]
pub(crate) struct Server {
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Drop for Server {
    /// A host whose `run` future is dropped stops serving too.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Server {
    /// Stops accepting, lets requests in progress finish for a moment, and closes the rest.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.done).await;
    }
}

/// Starts serving `handle`'s routes on `listener`, on a thread of its own.
pub(crate) fn start(
    listener: std::net::TcpListener,
    handle: &HostHandle,
    limits: HttpLimits,
) -> Result<Server, Error> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let bind = |source| {
        Error::new(Kind::Bind {
            addr: addr.clone(),
            source,
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("worker-http")
        .build()
        .map_err(bind)?;
    let stop = CancellationToken::new();
    let (finished, done) = tokio::sync::oneshot::channel();
    let router = handle.router();
    #[cfg(feature = "prometheus")]
    let recorder = handle.board.recorder().cloned();
    let token = stop.clone();
    tracing::info!("serving the dashboard on http://{addr}/ and metrics on http://{addr}/metrics");
    std::thread::Builder::new()
        .name("worker-http".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                #[cfg(feature = "prometheus")]
                if let Some(recorder) = recorder {
                    // The recorder's histograms are drained into their summaries now and then.
                    tokio::spawn(upkeep(recorder, token.clone()));
                }
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => accept(listener, router, limits, token).await,
                    Err(err) => tracing::error!(error = %err, "the HTTP listener failed"),
                }
            });
            let _ = finished.send(());
        })
        .map_err(bind)?;
    Ok(Server { stop, done })
}

/// Runs the recorder's upkeep every 5 s until `stop`.
#[cfg(feature = "prometheus")]
async fn upkeep(recorder: crate::observe::board::Recorder, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = every.tick() => recorder.run_upkeep(),
        }
    }
}

/// What the listener knows of one open connection.
#[derive(Debug)]
struct Open {
    /// Milliseconds since the listener started, at the last byte read or written.
    active: AtomicU64,
    /// Closes the connection at once.
    close: Notify,
}

/// The open connections.
#[derive(Debug, Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Open>>>,
}

impl Connections {
    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn insert(&self, id: u64, open: Arc<Open>) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, open);
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Closes the connection quiet the longest, and forgets it; false when none is open.
    fn close_quietest(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let quietest = open
            .iter()
            .min_by_key(|(_, o)| o.active.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match quietest.and_then(|id| open.remove(&id)) {
            Some(connection) => {
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let epoch = Instant::now();
    let connections = Arc::new(Connections::default());
    let tracker = TaskTracker::new();
    let mut backoff = MIN_BACKOFF;
    let mut errors = Throttle::default();
    let mut ids = 0_u64;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                if let Some(unlogged) = errors.admit(Instant::now()) {
                    let retry_in = worker_keys::show(backoff).to_string();
                    crate::observe::message::log_aside(move || {
                        tracing::error!(
                            error = %err,
                            retry_in,
                            not_logged = unlogged,
                            "the HTTP listener cannot accept a connection"
                        );
                    });
                }
                // Out of descriptors, most likely: give one back, and let its task close it
                // before trying again; with none to give back, wait, longer each time.
                let wait = if connections.close_quietest() {
                    MIN_BACKOFF
                } else {
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                };
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        if connections.len() >= limits.max_connections as usize {
            connections.close_quietest();
        }
        ids += 1;
        let id = ids;
        let open = Arc::new(Open {
            active: AtomicU64::new(millis(epoch)),
            close: Notify::new(),
        });
        connections.insert(id, open.clone());
        let router = router.clone();
        let stop = stop.clone();
        let registry = connections.clone();
        tracker.spawn(async move {
            serve_one(stream, router, limits, epoch, &open, &stop).await;
            registry.remove(id);
        });
    }
    tracker.close();
    // Requests in progress get a moment to finish; `Server::stop` bounds the wait.
    tracker.wait().await;
}

/// Serves one connection until it closes, is closed for its limits, or the listener stops.
async fn serve_one(
    stream: TcpStream,
    router: axum::Router,
    limits: HttpLimits,
    epoch: Instant,
    open: &Arc<Open>,
    stop: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched {
        inner: stream,
        open: open.clone(),
        epoch,
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(connection);
    let mut idle_check = epoch + Duration::from_millis(open.active.load(Ordering::Relaxed));
    loop {
        idle_check = idle_check
            .checked_add(limits.idle_timeout)
            .unwrap_or(idle_check);
        tokio::select! {
            _ = connection.as_mut() => return,
            () = open.close.notified() => return,
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(1), connection.as_mut()).await;
                return;
            }
            () = tokio::time::sleep_until(idle_check) => {
                let last = epoch + Duration::from_millis(open.active.load(Ordering::Relaxed));
                if Instant::now().saturating_duration_since(last) >= limits.idle_timeout {
                    return;
                }
                idle_check = last;
            }
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Errors that concern one connection only, which the next accept does not repeat.
fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// At most one log line a minute; counts the others.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// `Some(lines not logged since the last one)` when a line may be logged at `now`.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < Duration::from_mins(1) => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's stream, noting when a byte last went either way.
    struct Watched {
        #[pin]
        inner: TcpStream,
        open: Arc<Open>,
        epoch: Instant,
    }
}

impl Watched {
    fn touch(open: &Open, epoch: Instant) {
        open.active.store(millis(epoch), Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            Self::touch(this.open, *this.epoch);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(this.open, *this.epoch);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(this.open, *this.epoch);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
