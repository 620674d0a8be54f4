//! The streams page through the real binary: `betflow up` against a
//! throwaway Postgres, with a Kafka consumer's health written straight into
//! `stream_tasks` (as the supervisor would) so its lag and throughput are
//! known exactly, beside the ticker the process really runs.

use crate::common::viewer::Viewer;
use crate::common::TestEnv;

/// The markup of one stream task's row: from its `<tr>` to the next row or
/// the end of the first table after it (its own lag table, if it has one).
fn row<'a>(html: &'a str, stream: &str) -> &'a str {
    let start = html
        .find(&format!(r#"<tr data-stream="{stream}">"#))
        .unwrap_or_else(|| panic!("no row for {stream}:\n{html}"));
    let rest = &html[start + 1..];
    let end = [rest.find("<tr data-stream="), rest.find("</table>")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    &html[start..start + 1 + end]
}

const PARTITION_0: &str = r#"<tr data-partition="betflow.odds.nfl/0"><td>betflow.odds.nfl</td><td>0</td><td class="num">7</td></tr>"#;
const PARTITION_2: &str = r#"<tr data-partition="betflow.odds.nfl/2"><td>betflow.odds.nfl</td><td>2</td><td class="num">0</td></tr>"#;
const PARTITION_10: &str = r#"<tr data-partition="betflow.odds.nfl/10"><td>betflow.odds.nfl</td><td>10</td><td class="num">5</td></tr>"#;
const TOTAL: &str = r#"<td class="num lag-total">12</td>"#;

#[test]
fn consumers_show_lag_per_partition_and_throughput_between_samples() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND task_id = 'ticker' \
         AND (health->>'ticks')::int >= 1",
        "running",
        30,
    );
    // A consumer's health as the Kafka consumer loop reports it, written 8 s
    // ago so the next sample can be exactly 4 s later.
    env.sql(
        "INSERT INTO stream_tasks (dag_id, task_id, worker_id, state, health, started_at, heartbeat_at) \
         VALUES ('live_streams', 'odds_consumer', 'w-test', 'running', \
          '{\"messages\": 1000, \"lag\": {\"betflow.odds.nfl/0\": 7, \"betflow.odds.nfl/10\": 5, \
            \"betflow.odds.nfl/2\": 0}, \"lag_total\": 12}', \
          now() - interval '1 minute', now() - interval '8 seconds')",
    );

    let page = viewer.get("/streams");
    assert!(
        page.contains(r#"hx-get="/streams/live""#) && page.contains(r#"hx-trigger="every 5s""#),
        "the table polls its fragment:\n{page}"
    );
    let consumer = row(&page, "live_streams.odds_consumer");
    for want in [PARTITION_0, PARTITION_2, PARTITION_10, TOTAL] {
        assert!(consumer.contains(want), "missing {want} in:\n{consumer}");
    }
    // Partitions in numeric order, not the JSON keys' text order.
    assert!(consumer.find(PARTITION_2) < consumer.find(PARTITION_10));
    // One sample is a counter, not a rate.
    assert!(consumer.contains("measuring…"), "{consumer}");
    assert!(!consumer.contains("msg/s"), "{consumer}");

    // The ticker is no consumer: no lag table and no throughput.
    let ticker = row(&page, "live_streams.ticker");
    assert!(!ticker.contains(r#"class="lag""#), "{ticker}");
    assert!(!ticker.contains("msg/s") && !ticker.contains("measuring"));

    // The supervisor writes the next health 4 s later with 600 more messages.
    env.sql(
        "UPDATE stream_tasks SET heartbeat_at = heartbeat_at + interval '4 seconds', \
         health = jsonb_set(jsonb_set(health, '{messages}', '1600'), '{lag,betflow.odds.nfl/0}', '9') \
         WHERE worker_id = 'w-test'",
    );
    let fragment = viewer.get("/streams/live");
    assert!(
        fragment.trim_start().starts_with(r#"<div id="streams""#),
        "the fragment is the table alone:\n{fragment}"
    );
    assert!(!fragment.contains("<html"));
    let consumer = row(&fragment, "live_streams.odds_consumer");
    assert!(
        consumer.contains(r#"<span class="rate">150 msg/s</span>"#),
        "600 messages over 4 s:\n{consumer}"
    );
    assert!(
        consumer.contains(r#"<td class="num lag-total">14</td>"#),
        "{consumer}"
    );

    // Seen again before the next heartbeat: the same rate, on the page too.
    let page = viewer.get("/streams");
    assert!(row(&page, "live_streams.odds_consumer").contains("150 msg/s"));

    // Restarted: the counter started over, so there is no rate until the
    // next sample (never a negative one).
    env.sql(
        "UPDATE stream_tasks SET started_at = now(), heartbeat_at = heartbeat_at + interval '2 seconds', \
         health = jsonb_set(health, '{messages}', '10') WHERE worker_id = 'w-test'",
    );
    let fragment = viewer.get("/streams/live");
    let consumer = row(&fragment, "live_streams.odds_consumer");
    assert!(consumer.contains("measuring…"), "{consumer}");
    assert!(!consumer.contains("msg/s"), "{consumer}");

    // `/metrics` reads the lag with the same parsing.
    // (Without a metrics token the worker id is an opaque tag.)
    let metrics = viewer.get("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"betflow_consumer_lag{dag_id="live_streams",task_id="odds_consumer",worker_id="worker-"#
        ) && l.ends_with(r#"topic="betflow.odds.nfl",partition="10"} 5"#)),
        "{metrics}"
    );
}
