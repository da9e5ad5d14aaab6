//! API tokens for the results JSON API: random secrets shown once, stored only as SHA-256 hashes.

use super::auth::token_hash;
use super::db::{self, Db};

/// Prefix that makes a jndlab token recognisable (e.g. to secret scanners).
pub const PREFIX: &str = "jndl_";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub label: String,
    pub created_by: String,
    pub created_at: i64,
    /// 0 when never used.
    pub last_used_at: i64,
}

/// Creates a token; returns the secret (only this once).
pub async fn create(db: &Db, label: &str, created_by: &str) -> anyhow::Result<String> {
    let label = label.trim();
    if label.is_empty() || label.len() > 100 {
        anyhow::bail!("label: must be 1-100 characters");
    }
    let token = format!("{PREFIX}{}", db::random_token(40));
    let mut tx = db::begin_write(db).await?;
    let id = db::next_id(&mut tx, "api_tokens").await?;
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, label, created_by, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(id)
    .bind(token_hash(&token))
    .bind(label)
    .bind(created_by)
    .bind(db::now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Is this a valid token? Records its use.
pub async fn verify(db: &Db, token: &str) -> anyhow::Result<bool> {
    if !token.starts_with(PREFIX) {
        return Ok(false);
    }
    let done = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
        .bind(db::now_ms())
        .bind(token_hash(token))
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<TokenRow>> {
    Ok(sqlx::query_as(
        "SELECT id, label, created_by, created_at, last_used_at FROM api_tokens ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

pub async fn revoke(db: &Db, id: i64) -> anyhow::Result<()> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        anyhow::bail!("no API token {id}");
    }
    Ok(())
}
