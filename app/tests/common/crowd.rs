//! Simulated participants with known truth, answering through the app's own assignment and answer path
//! (in-process, truth by condition key): for the tests of the results (`jndlab-app simulate` instead runs
//! the metric-driven observers of `app::observer` over HTTP).
//! An honest participant answers attention checks right and each pair as a Thurstone case V observer
//! (left chosen with probability Phi((q_left - q_right) / 1.4826), so 1 JND = 75%); an adversarial one
//! fails the checks and picks the worse image of every pair.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use app::api::{EntryParams, Side};
use app::server::db::Db;
use app::server::{answer, assign};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    Adversarial,
}

/// The MTurk-style entry parameters of simulated HIT `h` (assignment `{prefix}A{h}`, worker `{prefix}W{h}`).
pub fn params(prefix: &str, h: usize) -> EntryParams {
    EntryParams {
        assignment_id: Some(format!("{prefix}A{h}")),
        hit_id: Some("SIMULATED".into()),
        worker_id: Some(format!("{prefix}W{h}")),
        turk_submit_to: Some("https://workersandbox.mturk.com".into()),
        ..Default::default()
    }
}

/// Who answers: `hits` distinct workers `{prefix}W{h}` behaving alike.
#[derive(Debug, Clone, Copy)]
pub struct Crowd<'a> {
    pub prefix: &'a str,
    pub hits: usize,
    pub behaviour: Behaviour,
}

/// Runs the crowd's whole HITs in study `slug`. `truth` maps a condition key to its true score in JND; the
/// choices come from `rng`. `on_hit` is called after each HIT (progress bars). Answers come back to back:
/// give the study a `min_response_ms` of 0 or they are flagged as too fast.
pub async fn run(
    db: &Db,
    slug: &str,
    crowd: &Crowd<'_>,
    truth: &(dyn Fn(&str) -> f64 + Sync),
    rng: &mut ChaCha8Rng,
    on_hit: &(dyn Fn() + Sync),
) -> anyhow::Result<()> {
    let Crowd {
        prefix,
        hits,
        behaviour,
    } = *crowd;
    for h in 0..hits {
        let p = params(prefix, h);
        // seeded from the crowd's stream, so a test's design (and its results) are the same every run
        let view = assign::start(db, slug, &p, "", Some(rng.random())).await?;
        let trials: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT t.position, t.kind, COALESCE(t.correct_side, ''), COALESCE(cl.key, ''), COALESCE(cr.key, '') \
             FROM trials t JOIN hits h ON h.id = t.hit_id \
             LEFT JOIN conditions cl ON cl.id = t.left_condition_id \
             LEFT JOIN conditions cr ON cr.id = t.right_condition_id \
             WHERE h.token = $1 ORDER BY t.position",
        )
        .bind(&view.key)
        .fetch_all(db)
        .await?;
        for (position, kind, correct, left, right) in trials {
            let left_chosen = match kind.as_str() {
                "pair" => {
                    let (ql, qr) = (truth(&left), truth(&right));
                    match behaviour {
                        Behaviour::Honest => {
                            rng.random::<f64>() < scaling::normal::cdf((ql - qr) / scaling::SIGMA)
                        }
                        Behaviour::Adversarial => ql < qr,
                    }
                }
                _ => {
                    let right_is_correct = correct == "right";
                    (behaviour == Behaviour::Honest) != right_is_correct
                }
            };
            let side = if left_chosen { Side::Left } else { Side::Right };
            answer::answer(db, &view.key, position as u32, side, 900).await?;
        }
        on_hit();
    }
    Ok(())
}
