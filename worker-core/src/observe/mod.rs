//! What the host shows about its workers: the metric block of each, their live records and
//! recent runs, health verdicts, and the limiter of repeated log lines.

pub(crate) mod board;
pub(crate) mod exposition;
pub(crate) mod facade;
pub(crate) mod health;
pub(crate) mod message;
pub(crate) mod metrics;
pub(crate) mod outcome;
pub(crate) mod quiet;
pub(crate) mod recent;
pub(crate) mod skip;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod tracked;

pub(crate) use self::outcome::Outcome;
pub(crate) use self::skip::SkipReason;
pub(crate) use self::state::WorkerState;
