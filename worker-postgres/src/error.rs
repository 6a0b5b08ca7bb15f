//! The crate's error.

/// What went wrong talking to the job tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema name that is not a plain lowercase identifier.
    #[error(
        "invalid schema name {0:?}: expected 1 to 63 lowercase letters, digits or `_`, not starting with a digit"
    )]
    SchemaName(String),
    /// A queue name outside 1 to 128 characters.
    #[error("invalid queue name {0:?}: expected 1 to 128 characters")]
    QueueName(String),
    /// A payload that `serde_json` could not encode.
    #[error("the job's payload could not be encoded as JSON")]
    Encode(#[source] serde_json::Error),
    /// A singleton's lease is no longer held with this fence: another replica took it over, or
    /// it expired. A transaction that checked the fence must be rolled back.
    #[error("the lease `{name}` is no longer held with fence {fence}")]
    LeaseLost {
        /// The lease (the worker's name).
        name: String,
        /// The fence the check named.
        fence: i64,
    },
    /// A job's attempt is no longer its current one: its lease expired and the job was claimed
    /// again (or it finished meanwhile). A transaction that tried to complete it must be
    /// rolled back.
    #[error(
        "job {id}: attempt {attempt} was superseded (its lease expired and the job was claimed again)"
    )]
    Superseded {
        /// The job.
        id: i64,
        /// The attempt that lost its lease.
        attempt: i32,
    },
    /// The database refused a statement, or could not be reached.
    #[error("a statement on the job tables failed")]
    Database(#[from] sqlx::Error),
}
