//! Admin accounts (argon2-hashed passwords), login sessions (random token in an HttpOnly SameSite=Strict
//! cookie, stored hashed) and per-session CSRF tokens for every state-changing form.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use sha2::{Digest, Sha256};

use super::db::{self, Db};

pub const SESSION_COOKIE: &str = "jndlab_admin";
pub const SESSION_HOURS: i64 = 12;

fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing password: {e}"))?
        .to_string())
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn admin_count(db: &Db) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admins")
        .fetch_one(db)
        .await?;
    Ok(n)
}

/// Creates an admin, or resets the password of an existing one.
pub async fn create_admin(db: &Db, username: &str, password: &str) -> anyhow::Result<()> {
    if username.trim().is_empty() || username.len() > 64 {
        bail!("username: must be 1-64 characters");
    }
    if password.len() < 8 {
        bail!("password: must be at least 8 characters");
    }
    let hash = hash_password(password)?;
    let mut tx = db::begin_write(db).await?;
    let id = db::next_id(&mut tx, "admins").await?;
    sqlx::query(
        "INSERT INTO admins (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(id)
    .bind(username)
    .bind(hash)
    .bind(db::now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks the password; on success creates a session and returns its (secret) token.
pub async fn login(db: &Db, username: &str, password: &str) -> anyhow::Result<Option<String>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM admins WHERE username = $1")
            .bind(username)
            .fetch_optional(db)
            .await?;
    let Some((admin_id, hash)) = row else {
        // Spend comparable time so that usernames cannot be probed by timing.
        let _ = hash_password(password);
        return Ok(None);
    };
    let parsed = PasswordHash::new(&hash).map_err(|e| anyhow!("stored hash: {e}"))?;
    if Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Ok(None);
    }
    let token = db::random_token(40);
    let now = db::now_ms();
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(admin_id)
    .bind(db::random_token(32))
    .bind(now)
    .bind(now + SESSION_HOURS * 3_600_000)
    .execute(db)
    .await?;
    Ok(Some(token))
}

/// A logged-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub csrf: String,
    token_hash: String,
}

pub async fn session(db: &Db, token: &str) -> anyhow::Result<Option<Session>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT a.username, s.csrf_token FROM admin_sessions s JOIN admins a ON a.id = s.admin_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(db::now_ms())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(username, csrf)| Session {
        username,
        csrf,
        token_hash: token_hash(token),
    }))
}

impl Session {
    /// Constant-time comparison of a submitted CSRF token.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), submitted.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub async fn logout(&self, db: &Db) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(&self.token_hash)
            .execute(db)
            .await?;
        Ok(())
    }
}

/// Failed logins allowed per (client address, user name) within [`LOGIN_WINDOW`] before 429.
pub const MAX_FAILED_LOGINS: u32 = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Login brute-force limiter: counts failed logins per (client address, user name) in a sliding window of
/// [`LOGIN_WINDOW`] from the first failure. Per process (each app instance limits on its own).
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, String), (u32, Instant)>>,
}

pub static LOGIN_LIMIT: LazyLock<LoginLimiter> = LazyLock::new(|| LoginLimiter {
    failures: Mutex::new(HashMap::new()),
});

impl LoginLimiter {
    /// Ok, or how long to wait.
    pub fn check(&self, ip: &str, user: &str) -> Result<(), Duration> {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, since)| now.duration_since(*since) < LOGIN_WINDOW);
        match m.get(&key(ip, user)) {
            Some((n, since)) if *n >= MAX_FAILED_LOGINS => {
                Err(LOGIN_WINDOW.saturating_sub(now.duration_since(*since)))
            }
            _ => Ok(()),
        }
    }
    pub fn failed(&self, ip: &str, user: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key(ip, user)).or_insert((0, Instant::now())).0 += 1;
    }
    pub fn succeeded(&self, ip: &str, user: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&key(ip, user));
    }
}

fn key(ip: &str, user: &str) -> (String, String) {
    (ip.to_string(), user.chars().take(64).collect())
}
