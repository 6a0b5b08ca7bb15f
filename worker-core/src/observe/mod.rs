//! What the host shows about its workers: the metric block of each, their live records and
//! recent runs, health verdicts, and the limiter of repeated log lines.

pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod quiet;
pub(crate) mod recent;
pub(crate) mod status;
