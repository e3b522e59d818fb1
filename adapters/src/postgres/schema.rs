//! Schema migrations of the Postgres store: the numbered files of `migrations/postgres/`,
//! embedded in the binary and applied in order at open.
//!
//! Daemons that start together on one database must not race to migrate it: the whole
//! check-and-apply runs under a session advisory lock (one key per schema), so the first
//! opener applies what is pending and every other one waits, then finds nothing left to
//! do. All pending migrations apply in one transaction; a database written by a newer
//! binary is refused before anything is written to it.

use postgres::Client;

use crate::sqlite::{Migration, MigrationError};

/// Every Postgres migration this binary knows, in order. Released entries are never edited.
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "0002_nodes.sql", sql: include_str!("../../../migrations/postgres/0002_nodes.sql") },
    Migration {
        version: 3,
        name: "0003_job_logs.sql",
        sql: include_str!("../../../migrations/postgres/0003_job_logs.sql"),
    },
    Migration {
        version: 4,
        name: "0004_queue_counts.sql",
        sql: include_str!("../../../migrations/postgres/0004_queue_counts.sql"),
    },
    Migration {
        version: 5,
        name: "0005_released_events.sql",
        sql: include_str!("../../../migrations/postgres/0005_released_events.sql"),
    },
];

/// The advisory lock's key: one per schema, so that stores in different schemas (the
/// tests, one schema each) do not wait for each other.
const LOCK_KEY_SQL: &str = "hashtextextended('semantica.migrate:' || current_schema(), 0)";

fn pg(error: postgres::Error) -> MigrationError {
    MigrationError::Sqlite(error.to_string())
}

/// The schema version recorded in the database; 0 for a new (empty) one.
pub fn current_version(client: &mut Client) -> Result<u32, MigrationError> {
    let has_table: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .and_then(|row| row.try_get(0))
        .map_err(pg)?;
    if !has_table {
        return Ok(0);
    }
    let version: Option<i32> =
        client.query_one("SELECT max(version) FROM schema_version", &[]).and_then(|row| row.try_get(0)).map_err(pg)?;
    let version = version.unwrap_or(0);
    u32::try_from(version).map_err(|_| MigrationError::Sqlite(format!("schema_version holds {version}")))
}

/// Brings the database up to `migrations` under the advisory lock; returns the version
/// reached. The lock is released on every path (and by Postgres if the connection dies).
pub fn migrate(client: &mut Client, migrations: &[Migration]) -> Result<u32, MigrationError> {
    assert!(migrations.windows(2).all(|w| w[0].version < w[1].version), "migrations out of order");
    client.execute(&format!("SELECT pg_advisory_lock({LOCK_KEY_SQL})"), &[]).map_err(pg)?;
    let result = migrate_locked(client, migrations);
    let unlocked = client.execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY_SQL})"), &[]).map_err(pg);
    let reached = result?;
    unlocked?;
    Ok(reached)
}

fn migrate_locked(client: &mut Client, migrations: &[Migration]) -> Result<u32, MigrationError> {
    let known = migrations.last().map_or(0, |m| m.version);
    let found = current_version(client)?;
    if found > known {
        return Err(MigrationError::TooNew { found, known });
    }
    if migrations.iter().all(|m| m.version <= found) {
        return Ok(found);
    }
    let mut tx = client.transaction().map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version     INTEGER PRIMARY KEY,
             name        TEXT    NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )
    .map_err(pg)?;
    let mut reached = found;
    for migration in migrations.iter().filter(|m| m.version > found) {
        let failed = |detail: String| MigrationError::Failed { migration: migration.name, at_version: found, detail };
        tx.batch_execute(migration.sql).map_err(|e| failed(e.to_string()))?;
        let version = i32::try_from(migration.version).expect("a migration number fits an INTEGER");
        tx.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)", &[&version, &migration.name])
            .map_err(|e| failed(e.to_string()))?;
        reached = migration.version;
    }
    // Dropping `tx` on an error above rolls every migration of this call back.
    tx.commit().map_err(pg)?;
    Ok(reached)
}
