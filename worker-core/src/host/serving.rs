//! What [`HostBuilder::serve`] starts: the listener's address, the admin token and the HTTP
//! limits.

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use crate::error::{Error, Kind};
use crate::host::HostBuilder;
use crate::http::limits::HttpLimits;

/// The HTTP settings of a builder.
#[derive(Debug, Default)]
pub(crate) struct Serving {
    /// The address given to `serve`, resolved, or why it could not be.
    addr: Option<Result<(String, Vec<SocketAddr>), Error>>,
    admin_token: Option<String>,
    pub(super) limits: HttpLimits,
}

/// The bound listener and its limits.
pub(crate) type Listener = (TcpListener, HttpLimits);

/// What [`Serving::bind`] made.
pub(super) struct Bound {
    pub(super) listener: Option<Listener>,
    pub(super) admin_token: Option<String>,
}

impl Serving {
    /// Binds the listener, if one was asked for.
    pub(super) fn bind(self) -> Result<Bound, Error> {
        let Self {
            addr,
            admin_token,
            limits,
        } = self;
        let Some(addr) = addr else {
            return Ok(Bound {
                listener: None,
                admin_token,
            });
        };
        let (shown, addrs) = addr?;
        let listener = TcpListener::bind(&*addrs)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|source| {
                Error::new(Kind::Bind {
                    addr: shown,
                    source,
                })
            })?;
        Ok(Bound {
            listener: Some((listener, limits)),
            admin_token,
        })
    }
}

impl HostBuilder {
    /// Limits of the listener [`serve`](Self::serve) starts; see [`HttpLimits`] for the
    /// defaults.
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.serving.limits = limits;
        self
    }

    /// Serves the host's HTTP surface on `addr`; use a loopback address such as
    /// `"127.0.0.1:9464"` unless something in front of it controls access:
    ///
    /// | route | answers |
    /// |---|---|
    /// | `GET /metrics` | the Prometheus text format |
    /// | `GET /healthz` | liveness: 200, or 503 when the host stopped or a worker's loop is gone; JSON |
    /// | `GET /readyz` | readiness: 200, or 503 while starting or stopping, or while a worker that gates readiness is failed or stale; JSON |
    /// | `GET /workers` | every worker's state, health, last run, last success, next run, recent outcomes and last error; JSON |
    /// | `GET /` | the dashboard: one row per worker, refreshing itself |
    /// | `POST /workers/{name}/run`, `/pause`, `/resume` | admin actions, off unless [`admin_token`](Self::admin_token) is set |
    ///
    /// To mount the same routes in your own axum app instead, use
    /// [`HostHandle::router`](crate::HostHandle::router).
    ///
    /// The listener runs on a thread and a runtime of its own, so probes and scrapes are
    /// answered while the workers' threads are busy or blocked; it limits its connections,
    /// how long a client may take to send a request's headers and how long a connection may
    /// stay idle (see [`http_limits`](Self::http_limits)).
    ///
    /// The page has the workers' series; to serve what your own code records with
    /// `metrics::counter!` and friends on it too, add
    /// [`install_recorder`](Self::install_recorder) or hand over your own recorder's handle
    /// with [`prometheus`](Self::prometheus). Serving installs no recorder by itself.
    pub fn serve(mut self, addr: impl ToSocketAddrs + fmt::Display) -> Self {
        let shown = addr.to_string();
        self.serving.addr = Some(
            addr.to_socket_addrs()
                .map(|addrs| (shown.clone(), addrs.collect()))
                .map_err(|source| {
                    Error::new(Kind::Bind {
                        addr: shown,
                        source,
                    })
                }),
        );
        self
    }

    /// Enables the admin actions over HTTP (`POST /workers/{name}/run`, `/pause`, `/resume`):
    /// each request must carry `Authorization: Bearer <token>`. Without a token they answer 403;
    /// with a missing or wrong one, 401. Every action, accepted or refused, is logged and
    /// counted (`worker_admin_actions_total`, `worker_admin_refused_total`).
    ///
    /// Read the token from your secret store or environment; surrounding whitespace is trimmed,
    /// and an empty token leaves the actions off.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        // A token read from a file often ends with a newline, which no header can carry.
        let token = token.into().trim().to_owned();
        self.serving.admin_token = (!token.is_empty()).then_some(token);
        self
    }
}
