//! The images participants see, at unguessable URLs.
//!
//! Every image a HIT shows has its own URL `/media/{token}`: a random 128-bit token per (HIT, trial, slot),
//! drawn from the operating system's generator and stored in `media_tokens`, never derived from an id. The
//! reference and the two candidates of a trial have different tokens, also in attention checks (whose
//! undistorted candidate is the reference image itself), and the same image in two HITs has two tokens, so
//! no URL tells a condition, a check, or the bundle's order. `/media/{token}` answers only while the study is
//! live and the token's HIT is in progress (or for the study's preview example); admins view images through
//! `/admin/studies/{id}/images/{image}`.
//!
//! The bytes do not tell the images apart either, short of decoding them: every image is stored as PNG
//! (bundle import re-encodes), so the content type is the same, and each response is padded with a private
//! ancillary PNG chunk of random bytes to the same length for every image of its scene, so file sizes and
//! hashes differ per response and say nothing. A client that decodes the pixels can still see that one
//! candidate equals the reference in an attention check (README "Threat model").

use rand::{RngCore, TryRngCore};

use super::db::{Db, Tx};
use super::study::Study;

/// The preview example's tokens: hit_id NULL, position 0.
const EXAMPLE_POSITION: i64 = 0;

/// Which image of a trial a token shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Reference = 0,
    Left = 1,
    Right = 2,
}

/// A fresh random token: 128 bits from the OS generator, lowercase hex.
pub fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .expect("the operating system's random generator");
    hex::encode(b)
}

/// One token to insert.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: String,
    pub position: i64,
    pub slot: Slot,
    pub image_id: i64,
}

/// Inserts the tokens of one HIT (or the example when `hit_id` is None) in one statement.
pub async fn insert_tokens(
    tx: &mut Tx<'_>,
    study_id: i64,
    hit_id: Option<i64>,
    tokens: &[NewToken],
) -> sqlx::Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO media_tokens (token, study_id, hit_id, position, slot, image_id) VALUES ",
    );
    for i in 0..tokens.len() {
        let b = i * 6;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
    }
    let mut q = sqlx::query(&sql);
    for t in tokens {
        q = q
            .bind(&t.token)
            .bind(study_id)
            .bind(hit_id)
            .bind(t.position)
            .bind(t.slot as i64)
            .bind(t.image_id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// (position, slot) -> token of a HIT's images.
pub async fn hit_tokens(
    db: impl sqlx::Executor<'_, Database = sqlx::Any>,
    hit_id: i64,
) -> sqlx::Result<std::collections::HashMap<(i64, i64), String>> {
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT position, slot, token FROM media_tokens WHERE hit_id = $1")
            .bind(hit_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(p, s, t)| ((p, s), t)).collect())
}

/// Prepares the study's preview example (once): a random pair of a random scene, sides at random, its own
/// tokens. Called when a study goes live.
pub async fn ensure_example(tx: &mut Tx<'_>, study: &Study) -> anyhow::Result<()> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM media_tokens WHERE study_id = $1 AND hit_id IS NULL")
            .bind(study.id)
            .fetch_one(&mut **tx)
            .await?;
    if n > 0 || study.design_size == 0 {
        return Ok(());
    }
    let pick = (rand::random::<u64>() % study.design_size as u64) as i64;
    let item: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT scene_id, condition_a, condition_b FROM design_items WHERE study_id = $1 ORDER BY id LIMIT 1 OFFSET $2",
    )
    .bind(study.id)
    .bind(pick)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((scene, a, b)) = item else {
        return Ok(());
    };
    let images: Vec<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT condition_id, id FROM images WHERE scene_id = $1 AND kind IN ('reference', 'condition') ORDER BY id",
    )
    .bind(scene)
    .fetch_all(&mut **tx)
    .await?;
    let image = |cond: Option<i64>| {
        images
            .iter()
            .find(|(c, _)| *c == cond)
            .map(|(_, id)| *id)
            .ok_or_else(|| anyhow::anyhow!("scene {scene}: no image for condition {cond:?}"))
    };
    let reference = image(None)?;
    let (mut left, mut right) = (image(Some(a))?, image(Some(b))?);
    if rand::random::<bool>() {
        std::mem::swap(&mut left, &mut right);
    }
    let tokens: Vec<NewToken> = [
        (Slot::Reference, reference),
        (Slot::Left, left),
        (Slot::Right, right),
    ]
    .into_iter()
    .map(|(slot, image_id)| NewToken {
        token: new_token(),
        position: EXAMPLE_POSITION,
        slot,
        image_id,
    })
    .collect();
    insert_tokens(tx, study.id, None, &tokens).await?;
    Ok(())
}

/// The example's (reference, left, right) tokens, if the study has one.
pub async fn example_tokens(db: &Db, study_id: i64) -> sqlx::Result<Option<[String; 3]>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT slot, token FROM media_tokens WHERE study_id = $1 AND hit_id IS NULL AND position = $2",
    )
    .bind(study_id)
    .bind(EXAMPLE_POSITION)
    .fetch_all(db)
    .await?;
    let get = |s: Slot| {
        rows.iter()
            .find(|(slot, _)| *slot == s as i64)
            .map(|(_, t)| t.clone())
    };
    Ok(
        match (get(Slot::Reference), get(Slot::Left), get(Slot::Right)) {
            (Some(r), Some(l), Some(x)) => Some([r, l, x]),
            _ => None,
        },
    )
}

/// What a token may show.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Served {
    pub image_id: i64,
    pub study_id: i64,
    pub file_name: String,
    pub served_bytes: i64,
}

/// The image behind `token` if it may be shown now: the study is live and the token is the example's or
/// belongs to a HIT in progress. Anything else (unknown, finished, draft, closed) is None: a 404 that does
/// not say which.
pub async fn lookup(db: &Db, token: &str) -> sqlx::Result<Option<Served>> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT i.id AS image_id, i.study_id, i.file_name, sc.served_bytes FROM media_tokens m \
         JOIN images i ON i.id = m.image_id JOIN scenes sc ON sc.id = i.scene_id \
         JOIN studies s ON s.id = m.study_id \
         LEFT JOIN hits h ON h.id = m.hit_id \
         WHERE m.token = $1 AND s.state = 'live' \
           AND (m.hit_id IS NULL OR (h.status = 'active' AND h.abandoned_at IS NULL))",
    )
    .bind(token)
    .fetch_optional(db)
    .await
}

/// Length every image of a scene is padded to: the largest file plus room for the padding chunk.
pub fn padded_length(largest_file: usize) -> i64 {
    (largest_file + PAD_OVERHEAD + MIN_PAD) as i64
}

/// A PNG chunk's length, type and CRC fields.
const PAD_OVERHEAD: usize = 12;
/// Random bytes every response carries at least (so even the largest image's bytes differ per response).
const MIN_PAD: usize = 16;
/// Private ancillary, safe-to-copy chunk type: decoders skip it.
const PAD_CHUNK: &[u8; 4] = b"jnDp";
const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// `png` with a chunk of random bytes inserted after IHDR so that the result is `target` bytes long
/// (`png` unchanged when it is not a PNG or already too long to pad).
pub fn pad_png(png: &[u8], target: usize) -> Vec<u8> {
    // IHDR is always the first chunk: signature (8) + length (4) + "IHDR" (4) + 13 data bytes + CRC (4).
    const IHDR_END: usize = 33;
    if png.len() < IHDR_END || &png[..8] != PNG_SIGNATURE || &png[12..16] != b"IHDR" {
        return png.to_vec();
    }
    let Some(fill) = target.checked_sub(png.len() + PAD_OVERHEAD) else {
        return png.to_vec();
    };
    let mut data = vec![0u8; fill];
    rand::rng().fill_bytes(&mut data);
    let mut out = Vec::with_capacity(target);
    out.extend_from_slice(&png[..IHDR_END]);
    out.extend_from_slice(&(fill as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(PAD_CHUNK);
    crc.update(&data);
    out.extend_from_slice(PAD_CHUNK);
    out.extend_from_slice(&data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&png[IHDR_END..]);
    out
}

/// Fills in `scenes.served_bytes` for scenes imported before padding existed (reads the files' sizes).
pub async fn backfill_padding(db: &Db, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let scenes: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, study_id FROM scenes WHERE served_bytes = 0")
            .fetch_all(db)
            .await?;
    for (scene, study) in scenes {
        let files: Vec<(String,)> =
            sqlx::query_as("SELECT file_name FROM images WHERE scene_id = $1")
                .bind(scene)
                .fetch_all(db)
                .await?;
        let dir = super::bundle::study_dir(data_dir, study);
        let largest = files
            .iter()
            .filter_map(|(f,)| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len() as usize)
            .max()
            .unwrap_or(0);
        sqlx::query("UPDATE scenes SET served_bytes = $1 WHERE id = $2")
            .bind(padded_length(largest))
            .bind(scene)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// Reads an image file of a study.
pub async fn read_file(
    data_dir: &std::path::Path,
    study_id: i64,
    file: &str,
) -> std::io::Result<Vec<u8>> {
    tokio::fs::read(super::bundle::study_dir(data_dir, study_id).join(file)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_png() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn padding_reaches_the_target_keeps_the_pixels_and_differs_per_call() {
        let png = tiny_png();
        let target = padded_length(png.len() + 300) as usize;
        let a = pad_png(&png, target);
        let b = pad_png(&png, target);
        assert_eq!(a.len(), target);
        assert_eq!(b.len(), target);
        assert_ne!(a, b, "random padding");
        let decode = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().to_rgb8();
        assert_eq!(decode(&a), decode(&png));
        assert_eq!(decode(&b), decode(&png));
    }

    #[test]
    fn not_a_png_or_too_long_is_served_unchanged() {
        assert_eq!(pad_png(b"GIF89a....", 100), b"GIF89a....");
        let png = tiny_png();
        assert_eq!(pad_png(&png, png.len()), png);
    }

    #[test]
    fn tokens_are_128_bit_hex_and_distinct() {
        let a = new_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_token());
    }
}
