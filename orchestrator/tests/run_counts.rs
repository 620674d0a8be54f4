//! The run counts pages and the runs API read (kept by triggers on
//! `dag_runs`, migration 28) equal a count of the runs themselves after
//! runs are created, change state, are deleted, and after the counts are
//! compacted.

use std::collections::BTreeMap;
use std::sync::Arc;

use orchestrator::schedule::DataInterval;
use orchestrator::store::read::{RunPageFilter, TaskInstancePageFilter};
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DagBag, RunState};

mod common;
use common::{cluster, daily, day, Cluster};

/// Two daily DAGs, `{prefix}_a` and `{prefix}_b`, in a fresh cluster.
async fn two_dags(prefix: &str) -> (DagBag, Cluster, Arc<Dag>, Arc<Dag>) {
    let mut bag = DagBag::new();
    bag.add(daily(&format!("{prefix}_a")));
    bag.add(daily(&format!("{prefix}_b")));
    let c = cluster(&bag).await;
    let a = bag.get(&format!("{prefix}_a")).expect("A").clone();
    let b = bag.get(&format!("{prefix}_b")).expect("B").clone();
    (bag, c, a, b)
}

/// (DAG, state) → runs, counted from `dag_runs` itself.
async fn counted(c: &Cluster) -> BTreeMap<(String, String), i64> {
    sqlx::query_as::<_, (String, String, i64)>(
        "SELECT dag_id, state, count(*) FROM dag_runs GROUP BY dag_id, state",
    )
    .fetch_all(&c.pool)
    .await
    .expect("count runs")
    .into_iter()
    .map(|(d, s, n)| ((d, s), n))
    .collect()
}

/// (DAG, state) → runs, as the store reports them.
async fn reported(c: &Cluster) -> BTreeMap<(String, String), i64> {
    c.store
        .run_counts_per_dag(None)
        .await
        .expect("run counts")
        .into_iter()
        .map(|r| ((r.dag_id, r.state.as_str().to_owned()), r.count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_counts_follow_every_change_and_survive_compaction() {
    let (_bag, c, a, b) = two_dags("counts").await;

    // 30 runs of A and 20 of B, created in one statement.
    let runs: Vec<(&Dag, DataInterval)> = (0..30)
        .map(|i| (a.as_ref(), day(i)))
        .chain((0..20).map(|i| (b.as_ref(), day(i))))
        .collect();
    assert_eq!(
        c.store
            .create_runs(RunType::Scheduled, &runs)
            .await
            .expect("create runs"),
        50
    );
    assert_eq!(reported(&c).await, counted(&c).await);

    // Some succeed, some fail, one is deleted; an update that changes no
    // state (a note) leaves the counts alone.
    sqlx::query(
        "UPDATE dag_runs SET state = CASE WHEN logical_date < '2024-01-11' THEN 'success' ELSE 'failed' END
         WHERE dag_id = 'counts_a' AND logical_date < '2024-01-16'",
    )
    .execute(&c.pool)
    .await
    .expect("finish runs");
    sqlx::query("UPDATE dag_runs SET note = 'seen' WHERE dag_id = 'counts_b'")
        .execute(&c.pool)
        .await
        .expect("note runs");
    let first_b = c
        .store
        .list_runs_page(&RunPageFilter {
            dag_id: Some("counts_b".into()),
            limit: 1,
            ..RunPageFilter::default()
        })
        .await
        .expect("runs of B")
        .0
        .remove(0);
    assert!(c
        .store
        .delete_run("counts_b", &first_b.run_id)
        .await
        .expect("delete run"));

    let expected = counted(&c).await;
    assert_eq!(
        expected.get(&("counts_a".into(), "success".into())),
        Some(&10)
    );
    assert_eq!(
        expected.get(&("counts_a".into(), "failed".into())),
        Some(&5)
    );
    assert_eq!(
        expected.get(&("counts_b".into(), "queued".into())),
        Some(&19)
    );
    assert_eq!(reported(&c).await, expected);

    // The runs API's total for a DAG, for states, and for every DAG.
    let total = |f: RunPageFilter| {
        let store = c.store.clone();
        async move { store.list_runs_page(&f).await.expect("runs page").1 }
    };
    assert_eq!(
        total(RunPageFilter {
            dag_id: Some("counts_a".into()),
            limit: 5,
            ..RunPageFilter::default()
        })
        .await,
        30
    );
    assert_eq!(
        total(RunPageFilter {
            states: vec![RunState::Success, RunState::Failed],
            limit: 5,
            ..RunPageFilter::default()
        })
        .await,
        15
    );
    assert_eq!(
        total(RunPageFilter {
            limit: 5,
            ..RunPageFilter::default()
        })
        .await,
        49
    );

    // Compaction folds the appended rows into one per (DAG, state) and
    // changes no count.
    let folded = c.store.compact_run_counts().await.expect("compact");
    assert!(folded > 4, "folded {folded} rows");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_run_counts")
        .fetch_one(&c.pool)
        .await
        .expect("count rows");
    assert_eq!(rows, expected.len() as i64);
    assert_eq!(reported(&c).await, expected);

    // The newest scheduled interval's end rides along for the next run.
    let a_rows: Vec<_> = c
        .store
        .run_counts_per_dag(Some(&["counts_a".to_owned()]))
        .await
        .expect("counts of A");
    assert!(a_rows
        .iter()
        .all(|r| r.last_scheduled_end == Some(day(29).end)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_instance_totals_follow_inserts_and_deletes() {
    let (_bag, c, a, b) = two_dags("ti_counts").await;
    let runs: Vec<(&Dag, DataInterval)> = (0..10)
        .map(|i| (a.as_ref(), day(i)))
        .chain((0..4).map(|i| (b.as_ref(), day(i))))
        .collect();
    c.store
        .create_runs(RunType::Scheduled, &runs)
        .await
        .expect("create runs");
    // Three instances per run of A (one of them as a mapped task's would
    // be), two per run of B, in one statement.
    sqlx::query(
        "INSERT INTO task_instances (dag_id, run_id, task_id, map_index)
         SELECT r.dag_id, r.run_id, t.task_id, t.map_index FROM dag_runs r,
                (VALUES ('only', -1), ('mapped', 0), ('mapped', 1)) AS t(task_id, map_index)
         WHERE r.dag_id = 'ti_counts_a' OR t.map_index >= 0 AND r.dag_id = 'ti_counts_b'",
    )
    .execute(&c.pool)
    .await
    .expect("insert instances");
    // A run of A deleted takes its instances with it (the cascade).
    let run_of_a: String = sqlx::query_scalar(
        "SELECT run_id FROM dag_runs WHERE dag_id = 'ti_counts_a' ORDER BY logical_date LIMIT 1",
    )
    .fetch_one(&c.pool)
    .await
    .expect("a run of A");
    assert!(c
        .store
        .delete_run("ti_counts_a", &run_of_a)
        .await
        .expect("delete run"));

    let total = |dag_id: Option<&str>| {
        let store = c.store.clone();
        let f = TaskInstancePageFilter {
            dag_id: dag_id.map(str::to_owned),
            limit: 5,
            ..TaskInstancePageFilter::default()
        };
        async move { store.list_task_instances_page(&f).await.expect("page").1 }
    };
    assert_eq!(total(Some("ti_counts_a")).await, 27);
    assert_eq!(total(Some("ti_counts_b")).await, 8);
    assert_eq!(total(None).await, 35);
    c.store
        .compact_task_instance_counts()
        .await
        .expect("compact");
    assert_eq!(total(Some("ti_counts_a")).await, 27);
    assert_eq!(total(None).await, 35);
    // A filter beyond the DAG still counts the matching rows.
    let f = TaskInstancePageFilter {
        dag_id: Some("ti_counts_a".into()),
        task_id: Some("mapped".into()),
        limit: 5,
        ..TaskInstancePageFilter::default()
    };
    assert_eq!(
        c.store.list_task_instances_page(&f).await.expect("page").1,
        18
    );
}
