//! The observer model's own truth for a study: per scene and condition the quality q (JND) of the condition's
//! image as the observers judge it (the same pixels and cache as theirs, read from the study's files rather
//! than over HTTP: participants' URLs name no condition), and per condition the mean over scenes, centred to
//! mean 0 over the conditions as the app's scaling centres its scores.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::judge::{Judge, Picture};
use super::model::ObserverModel;
use crate::server::db::Db;
use crate::server::media;

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

/// Per condition (bundle order) the model's expected scores for study `study_id`, images read from
/// `data_dir` and judged through `judge`.
pub async fn expected_scores(
    db: &Db,
    data_dir: &Path,
    study_id: i64,
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
    let images: Vec<(i64, Option<i64>, String)> = sqlx::query_as(
        "SELECT scene_id, condition_id, file_name FROM images WHERE study_id = $1 AND kind IN ('reference', 'condition')",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    let mut picture: HashMap<(i64, Option<i64>), Picture> = HashMap::new();
    for (scene, condition, file) in images {
        let bytes = media::read_file(data_dir, study_id, &file)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        picture.insert(
            (scene, condition),
            Picture::decode(&file, &bytes).map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    let mut out = Vec::new();
    for (cid, ckey) in &conditions {
        let mut per_scene = Vec::new();
        for (sid, skey) in &scenes {
            let (Some(r), Some(c)) = (picture.get(&(*sid, None)), picture.get(&(*sid, Some(*cid))))
            else {
                anyhow::bail!("scene {skey}: no image of condition {ckey} or no reference");
            };
            let seen = judge
                .score_pictures(r, c)
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
