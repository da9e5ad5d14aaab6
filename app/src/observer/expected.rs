//! The observer model's own truth for a study: per scene and condition the quality q (JND) of the condition's
//! image as the observers judge it (fetched over HTTP like theirs, through the same cache), and per
//! condition the mean over scenes, centred to mean 0 over the conditions as the app's scaling centres its
//! scores. The observers cannot see condition keys; the database maps image URLs (`/media/{id}`) to them.

use std::collections::HashMap;
use std::sync::Arc;

use super::judge::Judge;
use super::model::ObserverModel;
use crate::participant::Client;
use crate::server::db::Db;

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedScore {
    pub condition: String,
    /// (scene, q in JND) in scene order.
    pub per_scene: Vec<(String, f64)>,
    /// Mean over scenes of q.
    pub mean_q: f64,
    /// `mean_q` minus the mean over conditions.
    pub centred: f64,
}

/// Centres values to mean 0.
pub fn centre(v: &[f64]) -> Vec<f64> {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.iter().map(|x| x - m).collect()
}

/// Per condition (bundle order) the model's expected scores for study `study_id`, images fetched through
/// `client` and judged through `judge`.
pub async fn expected_scores(
    db: &Db,
    study_id: i64,
    client: &Client,
    judge: &Arc<Judge>,
    model: &ObserverModel,
) -> anyhow::Result<Vec<ExpectedScore>> {
    let conditions: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, key FROM conditions WHERE study_id = $1 ORDER BY position")
            .bind(study_id)
            .fetch_all(db)
            .await?;
    let scenes: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, key FROM scenes WHERE study_id = $1 ORDER BY position")
            .bind(study_id)
            .fetch_all(db)
            .await?;
    let images: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, scene_id, condition_id FROM images WHERE study_id = $1 AND kind IN ('reference', 'condition')",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    let url: HashMap<(i64, Option<i64>), String> = images
        .into_iter()
        .map(|(id, s, c)| ((s, c), format!("/media/{id}")))
        .collect();
    let mut fetched = HashMap::new();
    let mut out = Vec::new();
    for (cid, ckey) in &conditions {
        let mut per_scene = Vec::new();
        for (sid, skey) in &scenes {
            let (Some(r), Some(c)) = (url.get(&(*sid, None)), url.get(&(*sid, Some(*cid)))) else {
                anyhow::bail!("scene {skey}: no image of condition {ckey} or no reference");
            };
            let seen = judge
                .score(client, &mut fetched, r, c)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            per_scene.push((skey.clone(), model.quality(seen.ms_ssim)));
        }
        let mean_q = per_scene.iter().map(|(_, q)| q).sum::<f64>() / per_scene.len().max(1) as f64;
        out.push(ExpectedScore {
            condition: ckey.clone(),
            per_scene,
            mean_q,
            centred: 0.0,
        });
    }
    let c = centre(&out.iter().map(|e| e.mean_q).collect::<Vec<_>>());
    for (e, v) in out.iter_mut().zip(c) {
        e.centred = v;
    }
    Ok(out)
}
