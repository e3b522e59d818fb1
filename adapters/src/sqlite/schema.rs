//! Schema migrations: the numbered files of `migrations/`, embedded in the binary and
//! applied in order at open, all pending ones in one transaction.
//!
//! A database written by a newer binary (a version above the last one known here) is
//! refused before anything is written to it; a migration that fails rolls back whole, so
//! the file is left as it was.

use rusqlite::{Connection, OptionalExtension};

/// One numbered schema change. `version` is the number its file name starts with.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, in order. Released entries are never edited.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../../migrations/0001_init.sql") },
    Migration {
        version: 2,
        name: "0002_queue_counts.sql",
        sql: include_str!("../../../migrations/0002_queue_counts.sql"),
    },
    Migration {
        version: 3,
        name: "0003_lean_indexes.sql",
        sql: include_str!("../../../migrations/0003_lean_indexes.sql"),
    },
    Migration {
        version: 4,
        name: "0004_queue_controls.sql",
        sql: include_str!("../../../migrations/0004_queue_controls.sql"),
    },
    Migration { version: 5, name: "0005_wall_times.sql", sql: include_str!("../../../migrations/0005_wall_times.sql") },
    Migration {
        version: 6,
        name: "0006_index_predicates.sql",
        sql: include_str!("../../../migrations/0006_index_predicates.sql"),
    },
    Migration { version: 7, name: "0007_hot_rows.sql", sql: include_str!("../../../migrations/0007_hot_rows.sql") },
    Migration {
        version: 8,
        name: "0008_finished_predicates.sql",
        sql: include_str!("../../../migrations/0008_finished_predicates.sql"),
    },
    Migration { version: 9, name: "0009_node.sql", sql: include_str!("../../../migrations/0009_node.sql") },
    Migration {
        version: 10,
        name: "0010_released_events.sql",
        sql: include_str!("../../../migrations/0010_released_events.sql"),
    },
];

/// Why a database could not be brought to this binary's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationError {
    /// The database was written by a newer binary; it was not touched.
    TooNew { found: u32, known: u32 },
    /// A migration failed and was rolled back; the database stays at `at_version`.
    Failed { migration: &'static str, at_version: u32, detail: String },
    /// The file's tables, indexes, views or triggers are not the ones the migrations
    /// make: another program's database, or one edited by hand. Refused as it is.
    Foreign { detail: String },
    /// SQLite could not read or write the database.
    Sqlite(String),
}

impl std::fmt::Display for MigrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationError::TooNew { found, known } => write!(
                f,
                "the database has schema version {found} but this binary knows only up to {known}: \
                 it was written by a newer Semantica; the file was not changed"
            ),
            MigrationError::Failed { migration, at_version, detail } => write!(
                f,
                "migration {migration} failed and was rolled back; the database stays at schema version \
                 {at_version}: {detail}"
            ),
            MigrationError::Foreign { detail } => write!(
                f,
                "the database's schema is not the one Semantica's migrations make ({detail}); \
                 the file was not used"
            ),
            MigrationError::Sqlite(detail) => write!(f, "could not read or write the schema: {detail}"),
        }
    }
}

impl std::error::Error for MigrationError {}

fn sqlite(error: rusqlite::Error) -> MigrationError {
    MigrationError::Sqlite(error.to_string())
}

/// The schema version recorded in the database; 0 for a new (empty) one.
pub fn current_version(conn: &Connection) -> Result<u32, MigrationError> {
    let has_table: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", [], |row| row.get(0))
        .optional()
        .map_err(sqlite)?;
    if has_table.is_none() {
        return Ok(0);
    }
    let version: Option<i64> =
        conn.query_row("SELECT max(version) FROM schema_version", [], |row| row.get(0)).map_err(sqlite)?;
    let version = version.unwrap_or(0);
    u32::try_from(version).map_err(|_| MigrationError::Sqlite(format!("schema_version holds {version}")))
}

/// Refuses a database newer than `migrations` without writing to it.
pub fn check_not_newer(conn: &Connection, migrations: &[Migration]) -> Result<u32, MigrationError> {
    let known = migrations.last().map_or(0, |m| m.version);
    let found = current_version(conn)?;
    if found > known {
        return Err(MigrationError::TooNew { found, known });
    }
    Ok(found)
}

/// Applies every migration above the database's version, in one transaction.
/// Returns the version reached.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, MigrationError> {
    assert!(migrations.windows(2).all(|w| w[0].version < w[1].version), "migrations out of order");
    // Outside the transaction first: a newer database must not even be locked for write.
    let found = check_not_newer(conn, migrations)?;
    if migrations.iter().all(|m| m.version <= found) {
        return Ok(found);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sqlite)?;
    // Again inside: another process may have migrated in between.
    let found = check_not_newer(&tx, migrations)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version  INTEGER PRIMARY KEY NOT NULL,
             name     TEXT    NOT NULL
         ) STRICT;",
    )
    .map_err(sqlite)?;
    let mut reached = found;
    for migration in migrations.iter().filter(|m| m.version > found) {
        let failed = |detail: String| MigrationError::Failed { migration: migration.name, at_version: found, detail };
        tx.execute_batch(migration.sql).map_err(|e| failed(e.to_string()))?;
        tx.execute("INSERT INTO schema_version (version, name) VALUES (?1, ?2)", (migration.version, migration.name))
            .map_err(|e| failed(e.to_string()))?;
        reached = migration.version;
    }
    // Dropping `tx` on an error above rolls every migration of this call back.
    tx.commit().map_err(sqlite)?;
    Ok(reached)
}

/// `(type, name, table, sql)` of one table, index, view or trigger.
type SchemaObject = (String, String, String, Option<String>);

/// Every table, index, view and trigger, SQLite's own left out, in a fixed order.
fn schema_objects(conn: &Connection) -> Result<Vec<SchemaObject>, MigrationError> {
    let mut statement = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
        )
        .map_err(sqlite)?;
    let rows =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))).map_err(sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
}

/// Refuses a database whose schema is not exactly what `migrations` make (checked after
/// migrating, so at the last version). The store trusts its schema: a view, trigger or
/// collation of someone else's could change what a query returns, make a write change
/// other rows, or never end.
pub fn check_schema(conn: &Connection, migrations: &[Migration]) -> Result<(), MigrationError> {
    let mut reference = Connection::open_in_memory().map_err(sqlite)?;
    migrate(&mut reference, migrations)?;
    let expected = schema_objects(&reference)?;
    let found = schema_objects(conn)?;
    if found == expected {
        return Ok(());
    }
    let describe = |(kind, name, _, _): &SchemaObject| format!("{kind} {name}");
    let detail = match found.iter().zip(&expected).find(|(f, e)| f != e) {
        Some((f, e)) if f.0 == e.0 && f.1 == e.1 => format!("{} is defined differently", describe(f)),
        Some((f, e)) => format!("found {} where {} belongs", describe(f), describe(e)),
        None if found.len() > expected.len() => format!("unexpected {}", describe(&found[expected.len()])),
        None => format!("{} is missing", describe(&expected[found.len()])),
    };
    Err(MigrationError::Foreign { detail })
}
