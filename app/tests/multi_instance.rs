//! Several app instances on one database: two pools (= two servers behind a load balancer) serve many
//! concurrent participants; every answer is stored exactly once, ids never collide, and assignment stays
//! even (the fewest-answers-first rule is never broken by a race, so no slot is handed out twice while
//! another item of the design still has fewer). Runs on SQLite and on PostgreSQL.

mod common;

use std::collections::HashMap;

use app::api::Side;
use app::server::fault::AppError;
use app::server::{answer, assign, db};
use common::*;

on_both_backends!(two_instances_many_participants);

const PARTICIPANTS: usize = 40;

/// What a client does with a 503 ("database busy, try again"): try again. Any other error is returned.
/// (On a heavily loaded machine SQLite's busy time-out can run out while 40 writers queue.)
async fn retry<T, F, Fut>(f: F) -> Result<T, AppError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    for _ in 0..20 {
        match f().await {
            Err(AppError::Unavailable(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
    f().await
}

async fn two_instances_many_participants(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.checks_per_hit = 0; // a failed check would (rightly) return items to the pool
        x.hit_timeout_s = 3600;
        x.repetitions = 20; // 40 HITs x 9 pairs over 18 items: exactly the design
        x.max_hits_per_worker = 1;
    })
    .await;
    let second = db::connect(&t.url()).await.unwrap();
    let instances = [t.db.clone(), second];
    let mut tasks = Vec::new();
    for p in 0..PARTICIPANTS {
        let instances = instances.clone();
        let slug = s.slug.clone();
        tasks.push(tokio::spawn(async move {
            let params = mturk(&format!("A{p}"), &format!("W{p}"));
            let hit = retry(|| assign::start(&instances[p % 2], &slug, &params, "", None)).await?;
            let mut stored = Vec::new();
            // Answers alternate between the instances, as a load balancer without sticky sessions would.
            for (i, tr) in hit.trials.iter().enumerate() {
                let side = if (p + i) % 3 == 0 {
                    Side::Left
                } else {
                    Side::Right
                };
                retry(|| answer::answer(&instances[(p + i) % 2], &hit.key, tr.position, side, 700))
                    .await?;
                stored.push((
                    (hit.key.clone(), tr.position as i64),
                    side.as_str().to_string(),
                ));
            }
            Ok::<_, AppError>(stored)
        }));
    }
    let mut answered: HashMap<(String, i64), String> = HashMap::new();
    for task in tasks {
        for (id, side) in task.await.unwrap().expect("every request succeeds") {
            assert!(
                answered.insert(id.clone(), side).is_none(),
                "trial {id:?} handed out twice"
            );
        }
    }
    // Every acknowledged answer is in the database, exactly as given; nothing else is.
    let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT h.token, t.position, t.answer FROM trials t JOIN hits h ON h.id = t.hit_id",
    )
    .fetch_all(&t.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), PARTICIPANTS * 9, "9 pairs per HIT");
    assert_eq!(rows.len(), answered.len());
    for (token, position, answer) in rows {
        assert_eq!(
            answer.as_ref(),
            answered.get(&(token, position)),
            "trial {position}"
        );
    }
    let (completed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE status = 'completed'")
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!(completed, PARTICIPANTS as i64, "no HIT left stuck");
    // 40 HITs x 9 pairs over 18 items = 20 each: fewest-first under the write lock keeps them all equal.
    let loads: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT d.id, COUNT(t.id) FROM design_items d LEFT JOIN trials t ON t.design_item_id = d.id \
         GROUP BY d.id",
    )
    .fetch_all(&t.db)
    .await
    .unwrap();
    assert_eq!(loads.len(), 18);
    let (min, max) = (
        loads.iter().map(|l| l.1).min().unwrap(),
        loads.iter().map(|l| l.1).max().unwrap(),
    );
    assert!(
        min == 20 && max == 20,
        "every item exactly its repetitions (a race would hand out a slot twice): {loads:?}"
    );
}
