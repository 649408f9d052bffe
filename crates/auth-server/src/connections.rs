//! The connection layer: accepting TCP connections and speaking HTTP/1.1 on
//! them, with the limits a server exposed to the internet needs on its own.
//!
//! poem's built-in server has no header-read timeout and no connection cap,
//! so a few thousand clients that never finish their headers (slowloris)
//! held every file descriptor. Here:
//!
//! * **Caps**: at most `max_connections` at once, and at most
//!   `max_connections_per_address` from one client address (a trusted proxy
//!   is exempt: every client behind it shares its address). Beyond a cap a
//!   new connection is closed at once; established clients keep being served.
//! * **Header-read timeout**: from accept, or from the first byte after an
//!   idle kept-alive period, to a complete request head.
//! * **Body-read timeout**: the whole request body must arrive within it.
//! * **Keep-alive idle timeout**: from the end of a response to the first
//!   byte of the next request (`0s` turns keep-alive off).
//! * **Head size**: 64 KiB and 100 header lines (hyper's default, left
//!   implicit: setting it makes hyper fill its header array per request);
//!   beyond, `431`.
//!
//! Graceful shutdown: the listener closes, every connection finishes the
//! request it is serving and closes, and the process waits up to
//! `server.shutdown_grace` for them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Body, Endpoint, EndpointExt, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::task::TaskTracker;

use crate::metrics;

/// Largest request head (request line and headers); larger is answered
/// `431`. hyper would otherwise accept up to its ~400 KiB read buffer.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The limits, resolved from configuration.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Peers exempt from the per-address cap (their clients are behind them).
    pub trusted_proxies: Vec<IpAddr>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: impl Endpoint + 'static,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let app: Arc<BoxEndpoint<'static, Response>> = Arc::new(app.map_to_response().boxed());
    let limits = Arc::new(limits);
    let global = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(AddressCounts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&global).try_acquire_owned() else {
            metrics::record_connection_refused("global");
            continue;
        };
        let slot = if limits.trusted_proxies.contains(&peer.ip()) {
            None
        } else {
            match AddressSlot::take(&per_address, peer.ip(), limits.max_connections_per_address) {
                Some(slot) => Some(slot),
                None => {
                    metrics::record_connection_refused("per_address");
                    continue;
                }
            }
        };
        let connection = Connection {
            app: Arc::clone(&app),
            limits: Arc::clone(&limits),
            local,
            peer,
            _permit: permit,
            _slot: slot,
            _open: metrics::OpenConnection::opened(),
        };
        connections.spawn(connection.run(stream, stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period"
        );
    }
    Ok(())
}

/// One accepted connection and what it holds (released when it ends).
struct Connection {
    app: Arc<BoxEndpoint<'static, Response>>,
    limits: Arc<ConnectionLimits>,
    local: SocketAddr,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _slot: Option<AddressSlot>,
    _open: metrics::OpenConnection,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = Deadlines::new(stream, &self.limits, Arc::clone(&activity));
        let service = {
            let (app, limits, activity) = (self.app, self.limits.clone(), activity.clone());
            let (local, peer) = (self.local, self.peer);
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (app, limits, activity) = (app.clone(), limits.clone(), activity.clone());
                async move {
                    let _in_flight = activity.request_started();
                    let mut req: poem::Request = (
                        req,
                        LocalAddr(Addr::SocketAddr(local)),
                        RemoteAddr(Addr::SocketAddr(peer)),
                        Scheme::HTTP,
                    )
                        .into();
                    if has_body(&req) {
                        let body = req.take_body();
                        req.set_body(with_deadline(body, limits.body_read_timeout));
                    }
                    let resp = app.get_response(req).await;
                    Ok::<_, Infallible>(hyper::Response::from(resp))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        // hyper's own header timer would also run while a kept-alive
        // connection waits, tying the keep-alive timeout to it: `Deadlines`
        // keeps the two apart.
        http.header_read_timeout(None)
            .keep_alive(!self.limits.keep_alive_timeout.is_zero())
            .max_header_size(MAX_HEAD_BYTES);
        let conn = http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = &mut conn => result,
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        let timed_out = activity.timed_out.lock().ok().and_then(|kind| *kind);
        match (result, timed_out) {
            (_, Some(kind)) => metrics::record_connection_timeout(kind),
            (Err(e), None) => tracing::debug!(error = %e, "connection ended with an error"),
            (Ok(()), None) => {}
        }
    }
}

/// Whether a request announces a body (GETs do not pay for the deadline).
fn has_body(req: &poem::Request) -> bool {
    let headers = req.headers();
    headers.contains_key(poem::http::header::TRANSFER_ENCODING)
        || headers
            .get(poem::http::header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
}

/// `body`, failing with `TimedOut` unless all of it arrives within `limit`.
/// The handler then answers with an error and hyper closes the connection,
/// since the rest of the body was never read.
fn with_deadline(body: Body, limit: Duration) -> Body {
    let deadline = tokio::time::Instant::now() + limit;
    let chunks = body.into_bytes_stream();
    let timed = futures::stream::unfold(Some(Box::pin(chunks)), move |state| async move {
        let mut chunks = state?;
        // A chunk already received needs no timer (the usual small body).
        if let Some(ready) = chunks.next().now_or_never() {
            return ready.map(|chunk| (chunk, Some(chunks)));
        }
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => {
                metrics::record_connection_timeout("body");
                let late = io::Error::new(io::ErrorKind::TimedOut, "request body too slow");
                Some((Err(late), None))
            }
        }
    });
    Body::from_bytes_stream(timed)
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its address's count; given back on drop.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    ip: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<AddressCounts>, ip: IpAddr, cap: usize) -> Option<Self> {
        let mut map = counts.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = map.entry(ip).or_insert(0);
        if *open >= cap {
            return None;
        }
        *open += 1;
        Some(Self {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What the connection's timer needs to know from the request handling.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    started: AtomicU64,
    timed_out: Mutex<Option<&'static str>>,
}

impl Activity {
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// A request being handled (from its complete head to its response): no
/// connection deadline runs meanwhile, however long the handler takes (a
/// login waiting for a hashing thread); the body has its own.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head: due `header_read_timeout` after accept or
    /// after the first byte that followed an idle period.
    Head,
    /// A request is being handled: no deadline here.
    Busy,
    /// Kept alive with nothing to do: due `keep_alive_timeout` after the
    /// last response.
    Idle,
}

/// The socket with the header-read and keep-alive deadlines: once one
/// passes, reads fail with `TimedOut` and hyper closes the connection.
///
/// The timer is re-armed only when a deadline moves earlier (the first byte
/// of a request after an idle period); a timer that fires before the
/// current phase is due is simply re-armed then. So a kept-alive request
/// costs one timer reset, not one per phase change.
struct Deadlines {
    inner: TcpStream,
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
    phase: Phase,
    /// When the current phase is due.
    due: Instant,
    /// `activity.started` when the phase was last decided.
    seen_requests: u64,
    timer: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
}

/// Far enough to mean "not due" (a timer must still exist to be reset).
const NOT_DUE: Duration = Duration::from_secs(24 * 3600);

impl Deadlines {
    fn new(inner: TcpStream, limits: &ConnectionLimits, activity: Arc<Activity>) -> Self {
        let due = Instant::now() + limits.header_read_timeout;
        Self {
            inner,
            header_read_timeout: limits.header_read_timeout,
            keep_alive_timeout: limits.keep_alive_timeout,
            phase: Phase::Head,
            due,
            seen_requests: 0,
            timer: Box::pin(tokio::time::sleep_until(due)),
            activity,
        }
    }

    fn enter(&mut self, phase: Phase) {
        let due_in = match phase {
            Phase::Head => self.header_read_timeout,
            Phase::Idle if !self.keep_alive_timeout.is_zero() => self.keep_alive_timeout,
            Phase::Idle | Phase::Busy => NOT_DUE,
        };
        self.phase = phase;
        self.due = Instant::now() + due_in;
        if self.due < self.timer.deadline() {
            self.timer.as_mut().reset(self.due);
        }
    }

    /// Follows the handler: busy while a request is in flight, idle after
    /// one was served (even if this socket was not read meanwhile).
    fn follow_requests(&mut self) {
        let started = self.activity.started.load(Ordering::Relaxed);
        let new_request = started != self.seen_requests;
        self.seen_requests = started;
        match (self.phase, self.activity.busy()) {
            (Phase::Head | Phase::Idle, true) => self.enter(Phase::Busy),
            (Phase::Busy, false) => self.enter(Phase::Idle),
            (Phase::Head | Phase::Idle, false) if new_request => self.enter(Phase::Idle),
            _ => {}
        }
    }
}

impl AsyncRead for Deadlines {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.follow_requests();
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.phase == Phase::Idle {
            // The first byte of the next request: its head is now due.
            self.enter(Phase::Head);
        }
        if read.is_pending() {
            while self.timer.as_mut().poll(cx).is_ready() {
                self.follow_requests();
                if self.phase == Phase::Busy || Instant::now() < self.due {
                    // Fired for an earlier phase: wait for this one.
                    let due = self.due;
                    self.timer.as_mut().reset(due);
                    continue;
                }
                let kind = if self.phase == Phase::Head {
                    "header"
                } else {
                    "idle"
                };
                if let Ok(mut timed_out) = self.activity.timed_out.lock() {
                    *timed_out = Some(kind);
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{kind} timeout"),
                )));
            }
        }
        read
    }
}

impl AsyncWrite for Deadlines {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises this process's soft open-file limit to its hard limit (each
/// connection is a file descriptor) and returns `(soft, hard)` afterwards.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let (soft_before, hard) = rlimit::Resource::NOFILE.get()?;
    if soft_before < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    tracing::info!(
        soft_before,
        soft,
        hard,
        "open-file limit (each connection takes one)"
    );
    Ok((soft, hard))
}

/// The connection cap when `server.max_connections` is unset: what the
/// open-file limit leaves after the database pool and a reserve for files
/// and logs, at most 16,384 (about 20 KiB each when idle).
pub fn default_max_connections(open_file_limit: u64, database_connections: u32) -> usize {
    let reserve = u64::from(database_connections) + 64;
    let available = open_file_limit.saturating_sub(reserve).clamp(16, 16_384);
    usize::try_from(available).unwrap_or(16_384)
}

/// The per-address cap when unset: a quarter of the global cap, so one
/// address can never hold every slot.
pub fn default_max_connections_per_address(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_caps_leave_room_and_stay_bounded() {
        assert_eq!(default_max_connections(1024, 10), 950);
        assert_eq!(default_max_connections(20_000, 10), 16_384);
        assert_eq!(default_max_connections(50, 10), 16);
        assert_eq!(default_max_connections_per_address(950), 237);
        assert_eq!(default_max_connections_per_address(2), 1);
    }

    #[test]
    fn address_slots_count_and_give_back() {
        let counts = Arc::new(AddressCounts::default());
        let ip = IpAddr::from([192, 0, 2, 1]);
        let a = AddressSlot::take(&counts, ip, 2);
        let b = AddressSlot::take(&counts, ip, 2);
        assert!(a.is_some() && b.is_some());
        assert!(AddressSlot::take(&counts, ip, 2).is_none(), "third refused");
        assert!(AddressSlot::take(&counts, IpAddr::from([192, 0, 2, 2]), 2).is_some());
        drop(a);
        assert!(
            AddressSlot::take(&counts, ip, 2).is_some(),
            "a slot came back"
        );
        drop(b);
    }
}
