//! Admin accounts (argon2-hashed passwords, hashed off the async runtime), login sessions (random token in an
//! HttpOnly SameSite=Strict cookie, stored hashed; all of an admin's sessions end when the password
//! changes; expired ones are purged), per-session CSRF tokens for every state-changing form, and login
//! throttling after OWASP's authentication guidance: exponential backoff per user name and per address
//! instead of a hard lockout, and device cookies, so that failed logins from elsewhere (a shared address, an
//! attacker guessing the admin's password) never lock the real admin out of a browser that logged in before.

use std::collections::HashMap;
use std::net::IpAddr;
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
/// The trusted-device cookie of a browser an admin logged in from.
pub const DEVICE_COOKIE: &str = "jndlab_device";
pub const SESSION_HOURS: i64 = 12;
pub const DEVICE_DAYS: i64 = 90;

/// Argon2 costs ~50 ms of CPU: never on the async executor's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("password hashing task failed: {e}"))
}

async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("hashing password: {e}"))
    })
    .await?
}

async fn verify_password(password: &str, hash: &str) -> anyhow::Result<bool> {
    let (password, hash) = (password.to_string(), hash.to_string());
    blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow!("stored hash: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
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

/// Creates an admin, or resets the password of an existing one; a reset ends all of that admin's sessions
/// and forgets their trusted devices.
pub async fn create_admin(db: &Db, username: &str, password: &str) -> anyhow::Result<()> {
    if username.trim().is_empty() || username.len() > 64 {
        bail!("username: must be 1-64 characters");
    }
    if password.len() < 8 {
        bail!("password: must be at least 8 characters");
    }
    let hash = hash_password(password).await?;
    let mut tx = db::begin_write(db).await?;
    let id = db::next_id(&mut tx, "admins").await?;
    let (admin_id,): (i64,) = sqlx::query_as(
        "INSERT INTO admins (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash RETURNING id",
    )
    .bind(id)
    .bind(username)
    .bind(hash)
    .bind(db::now_ms())
    .fetch_one(&mut *tx)
    .await?;
    for table in ["admin_sessions", "admin_devices"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE admin_id = $1"))
            .bind(admin_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A successful login: the session token and the (new or renewed) device token, both secret.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub session: String,
    pub device: String,
}

/// Whether `device` is a trusted-device token of admin `username`.
pub async fn is_trusted_device(db: &Db, username: &str, device: &str) -> anyhow::Result<bool> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM admin_devices d JOIN admins a ON a.id = d.admin_id \
         WHERE a.username = $1 AND d.token_hash = $2 AND d.created_at > $3",
    )
    .bind(username)
    .bind(token_hash(device))
    .bind(db::now_ms() - DEVICE_DAYS * 86_400_000)
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}

/// Checks the password; on success creates a session (and purges expired ones) and returns the tokens.
pub async fn login(db: &Db, username: &str, password: &str) -> anyhow::Result<Option<LoggedIn>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM admins WHERE username = $1")
            .bind(username)
            .fetch_optional(db)
            .await?;
    let Some((admin_id, hash)) = row else {
        // Spend comparable time so that user names cannot be probed by timing.
        let _ = hash_password(password).await;
        return Ok(None);
    };
    if !verify_password(password, &hash).await? {
        return Ok(None);
    }
    let session = db::random_token(40);
    let device = db::random_token(40);
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&session))
    .bind(admin_id)
    .bind(db::random_token(32))
    .bind(now)
    .bind(now + SESSION_HOURS * 3_600_000)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO admin_devices (token_hash, admin_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(token_hash(&device))
    .bind(admin_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(LoggedIn { session, device }))
}

/// Deletes expired sessions and devices (also done at every login).
pub async fn purge_expired(db: &Db) -> anyhow::Result<u64> {
    let now = db::now_ms();
    let s = sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db)
        .await?;
    let d = sqlx::query("DELETE FROM admin_devices WHERE created_at <= $1")
        .bind(now - DEVICE_DAYS * 86_400_000)
        .execute(db)
        .await?;
    Ok(s.rows_affected() + d.rows_affected())
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
    /// A session that exists only in a test (templates).
    #[cfg(test)]
    pub fn for_test(username: &str, csrf: &str) -> Session {
        Session {
            username: username.into(),
            csrf: csrf.into(),
            token_hash: String::new(),
        }
    }

    /// Constant-time comparison of a submitted CSRF token.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf.as_bytes().ct_eq(submitted.as_bytes()).into()
    }

    pub async fn logout(&self, db: &Db) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(&self.token_hash)
            .execute(db)
            .await?;
        Ok(())
    }
}

/// Failed logins per user name (from untrusted browsers) before backoff starts.
pub const FREE_FAILURES_PER_USER: u32 = 5;
/// Failed logins per address (any user name) before backoff starts.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The longest wait backoff asks for.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long to wait before the next attempt: nothing for the free attempts, then 5 s, 10 s, 20 s, ...
    /// since the last failure, at most [`MAX_BACKOFF`].
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if self.count < free {
            return Duration::ZERO;
        }
        let step = Duration::from_secs(5u64 << (self.count - free).min(20)).min(MAX_BACKOFF);
        step.saturating_sub(now.duration_since(self.last))
    }
}

/// Login throttling per process (each app instance throttles on its own): per user name for untrusted
/// browsers, per client address for everyone without a trusted-device cookie. A browser with a valid device
/// cookie for the user name is never slowed by other clients' failures.
#[derive(Default)]
pub struct LoginThrottle {
    users: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<Option<IpAddr>, Failures>>,
}

pub static LOGIN_THROTTLE: LazyLock<LoginThrottle> = LazyLock::new(LoginThrottle::default);

fn user_key(user: &str) -> String {
    user.chars().take(64).collect::<String>().to_lowercase()
}

impl LoginThrottle {
    /// Ok, or how long this client must wait before trying again.
    pub fn check(&self, ip: Option<IpAddr>, user: &str, trusted: bool) -> Result<(), Duration> {
        if trusted {
            return Ok(());
        }
        let now = Instant::now();
        let wait_user = Self::wait(&self.users, &user_key(user), FREE_FAILURES_PER_USER, now);
        let wait_ip = Self::wait(&self.addresses, &ip, FREE_FAILURES_PER_ADDRESS, now);
        let wait = wait_user.max(wait_ip);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    fn wait<K: std::hash::Hash + Eq>(
        m: &Mutex<HashMap<K, Failures>>,
        k: &K,
        free: u32,
        now: Instant,
    ) -> Duration {
        let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        m.get(k).map(|f| f.wait(free, now)).unwrap_or_default()
    }

    /// Records a failed login. A trusted browser's failure counts for neither the user nor the address.
    pub fn failed(&self, ip: Option<IpAddr>, user: &str, trusted: bool) {
        if trusted {
            return;
        }
        let now = Instant::now();
        let bump = |f: &mut Failures| {
            f.count += 1;
            f.last = now;
        };
        let fresh = Failures {
            count: 0,
            last: now,
        };
        bump(
            self.users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(user_key(user))
                .or_insert(fresh),
        );
        bump(
            self.addresses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(ip)
                .or_insert(fresh),
        );
    }

    /// A successful login clears the address's failures (not the user's: those are someone else's).
    pub fn succeeded(&self, ip: Option<IpAddr>) {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_attempts_and_trusted_browsers_pass() {
        let t = LoginThrottle::default();
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..FREE_FAILURES_PER_USER {
            t.check(ip, "admin", false).unwrap();
            t.failed(ip, "admin", false);
        }
        let w1 = t.check(ip, "admin", false).unwrap_err();
        assert!(w1 <= Duration::from_secs(5) && w1 > Duration::from_secs(4));
        t.failed(ip, "admin", false);
        let w2 = t.check(ip, "Admin", false).unwrap_err();
        assert!(
            w2 > Duration::from_secs(5) && w2 <= Duration::from_secs(10),
            "{w2:?}"
        );
        // Another address is slowed too (per user name), but a trusted device is not.
        assert!(
            t.check(Some("192.0.2.9".parse().unwrap()), "admin", false)
                .is_err()
        );
        t.check(ip, "admin", true).unwrap();
        // Another user from the same address is fine until the address's own budget runs out.
        t.check(ip, "bob", false).unwrap();
    }

    #[test]
    fn backoff_is_capped() {
        let f = Failures {
            count: 200,
            last: Instant::now(),
        };
        assert!(f.wait(5, Instant::now()) <= MAX_BACKOFF);
    }
}
