//! Database connection (SQLite in WAL mode), migrations, and the small helpers every query module shares.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub type Db = SqlitePool;
pub type Tx<'a> = Transaction<'a, Sqlite>;

/// Opens (creating if needed) the SQLite database at `path` in WAL mode and runs the migrations.
pub async fn open(path: &Path) -> anyhow::Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening database {}", path.display()))?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .context("running migrations")?;
    Ok(pool)
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Next id for `table` (ids are application-assigned so the schema stays portable). Call inside the write
/// transaction that inserts the row: SQLite serialises writers, so two callers never get the same id.
pub async fn next_id(tx: &mut Tx<'_>, table: &str) -> sqlx::Result<i64> {
    debug_assert!(table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let (max,): (Option<i64>,) = sqlx::query_as(&format!("SELECT MAX(id) FROM {table}"))
        .fetch_one(&mut **tx)
        .await?;
    Ok(max.unwrap_or(0) + 1)
}

/// Starts a transaction that already holds SQLite's write lock, so read-then-write sequences (assignment)
/// cannot fail half-way with SQLITE_BUSY_SNAPSHOT.
pub async fn begin_write(db: &Db) -> sqlx::Result<Tx<'static>> {
    db.begin_with("BEGIN IMMEDIATE").await
}

/// A random lowercase alphanumeric token of `len` characters.
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}
