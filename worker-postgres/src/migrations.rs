//! The schema's migrations, as SQL text.
//!
//! [`Postgres::migrate`](crate::Postgres::migrate) applies the ones a database lacks, recording
//! each in `<schema>.schema_version`. A service that manages its migrations with another tool
//! (refinery, sqlx's migrator, diesel) takes the text from [`migrations`] instead, and then never
//! calls `migrate`.

use crate::Error;
use crate::schema::Schema;

/// One migration, rendered for a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Its version: 1, 2, … in the order they apply.
    pub version: i32,
    /// A short name, for file names (`0001_jobs.sql`).
    pub name: &'static str,
    /// The statements, with the schema's name in place.
    pub sql: String,
}

/// Every migration, in order, as (version, name, SQL text with `{schema}` for the schema).
const ALL: &[(i32, &str, &str)] = &[(
    1,
    "jobs",
    concat!(
        "CREATE SCHEMA IF NOT EXISTS {schema};\n\n",
        include_str!("migrations/0001_jobs.sql")
    ),
)];

/// Every migration, in order, for the schema `schema` (`"worker"` unless you configure another).
///
/// # Errors
///
/// [`Error::SchemaName`] when `schema` is not 1 to 63 lowercase letters, digits or `_`.
pub fn migrations(schema: &str) -> Result<Vec<Migration>, Error> {
    let schema = Schema::new(schema)?;
    Ok(rendered(&schema))
}

pub(crate) fn rendered(schema: &Schema) -> Vec<Migration> {
    ALL.iter()
        .map(|&(version, name, sql)| Migration {
            version,
            name,
            sql: schema.render(sql),
        })
        .collect()
}

/// Applies the migrations `pool`'s database lacks, in one transaction. Concurrent callers (every
/// replica starting at once) are serialised by a transaction-scoped advisory lock keyed by the
/// schema, which also covers the first run, when no table exists yet to lock, and which, unlike
/// a session lock, works through PgBouncer in transaction mode. Returns the versions applied.
pub(crate) async fn migrate(pool: &sqlx::PgPool, schema: &Schema) -> Result<Vec<i32>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("worker-postgres migrate {}", schema.name()))
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema.render(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (
           version    integer     PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )))
    .execute(&mut *tx)
    .await?;
    let current: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(
        schema.render("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
    ))
    .fetch_one(&mut *tx)
    .await?;
    let mut applied = Vec::new();
    for migration in rendered(schema) {
        if migration.version <= current {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(schema.render(
            "INSERT INTO {schema}.schema_version (version) VALUES ($1)",
        )))
        .bind(migration.version)
        .execute(&mut *tx)
        .await?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    Ok(applied)
}
