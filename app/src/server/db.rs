//! Database connection, migrations, write transactions, and the small helpers every query module shares.
//!
//! Two backends run the *same* queries and the *same* migrations: SQLite (the default, one file in WAL mode)
//! and PostgreSQL (`DATABASE_URL=postgres://...`, so several app instances can serve one study behind a load
//! balancer). We use sqlx's `Any` driver rather than an enum of pools: every query module stays written once
//! against one pool type (`Db`), and the queries are portable SQL with `$n` placeholders and BIGINT columns,
//! which both drivers accept. The only backend-specific code is here: how a connection is configured and how
//! a write transaction takes its lock.
//!
//! Concurrency model (the same guarantee on both backends):
//! - [`begin_write`] serialises the transactions that allocate ids or assign trials. On SQLite it is
//!   `BEGIN IMMEDIATE` (the database's single writer lock); on PostgreSQL it takes one transaction-scoped
//!   advisory lock, so writers in *different processes* exclude each other just as SQLite writers do. Inside
//!   it `MAX(id) + 1` ([`next_id`]) never collides and the design loads read by assignment cannot change
//!   under it, so no slot is handed out beyond the design.
//! - [`begin_answer`] is for answers: on PostgreSQL a plain transaction whose first statement locks only the
//!   answered trial's and then its HIT's rows (`answer.rs`), so answers to different HITs proceed in
//!   parallel; on SQLite again the writer lock. Answers never touch the design counters, which only the
//!   write-locked transactions change, so the two kinds never wait on each other's rows in a cycle.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub type Db = AnyPool;
pub type Tx<'a> = Transaction<'a, Any>;

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The advisory-lock key of [`begin_write`] on PostgreSQL ("jndlab" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x6a6e_646c_6162;

pub fn backend(db: &Db) -> Backend {
    if db
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
    {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Opens (creating if needed) the SQLite database file at `path` in WAL mode and runs the migrations.
pub async fn open(path: &Path) -> anyhow::Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    connect(&sqlite_url(path))
        .await
        .with_context(|| format!("opening database {}", path.display()))
}

/// `sqlite://PATH?mode=rwc` with the characters a URL would misread percent-encoded.
pub fn sqlite_url(path: &Path) -> String {
    let mut p = String::new();
    for c in path.display().to_string().chars() {
        match c {
            '%' | '?' | '#' | ' ' => p.push_str(&format!("%{:02X}", c as u32)),
            c => p.push(c),
        }
    }
    format!("sqlite://{p}?mode=rwc")
}

/// Connects to `url` (`sqlite://FILE?mode=rwc` or `postgres://...`) and runs the migrations.
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let opts: AnyConnectOptions = url
        .parse()
        .with_context(|| format!("database URL \"{}\" is not valid", redact(url)))?;
    let sqlite = opts.database_url.scheme().starts_with("sqlite");
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 8 } else { 16 })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers run beside the writer; NORMAL sync is durable in WAL mode except for
                    // the last transactions on power loss (not on a process crash).
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .context("running migrations")?;
    Ok(pool)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Next id for `table` (ids are application-assigned so the schema stays portable). Call only inside a
/// [`begin_write`] transaction: that lock serialises all id allocations, on both backends.
pub async fn next_id(tx: &mut Tx<'_>, table: &str) -> sqlx::Result<i64> {
    debug_assert!(table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let (max,): (Option<i64>,) = sqlx::query_as(&format!("SELECT MAX(id) FROM {table}"))
        .fetch_one(&mut **tx)
        .await?;
    Ok(max.unwrap_or(0) + 1)
}

/// Starts a transaction holding the database-wide write lock (see the module doc): SQLite `BEGIN IMMEDIATE`,
/// PostgreSQL a transaction-scoped advisory lock, released at commit or rollback.
pub async fn begin_write(db: &Db) -> sqlx::Result<Tx<'static>> {
    match backend(db) {
        Backend::Sqlite => db.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            let mut tx = db.begin().await?;
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

/// Starts a transaction for one answer (see the module doc): SQLite `BEGIN IMMEDIATE` (taking the writer
/// lock up front, so the transaction never has to upgrade a read lock), PostgreSQL a plain transaction.
pub async fn begin_answer(db: &Db) -> sqlx::Result<Tx<'static>> {
    match backend(db) {
        Backend::Sqlite => db.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => db.begin().await,
    }
}

/// A random lowercase alphanumeric token of `len` characters.
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // ThreadRng is a cryptographically secure generator seeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
