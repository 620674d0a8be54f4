//! A claim whose COMMIT goes unanswered (the connection breaks). When the
//! COMMIT reached Postgres, the claim committed and its rows are `running`
//! under this worker, which does not know it claimed them: it must return
//! them to the queue rather than leave them `running` under its own
//! heartbeat for as long as it lives. When the COMMIT never arrived, the
//! claim was rolled back, and the worker may claim the same tries again
//! (the recorder's retry of its batch does): those must run, once. Either
//! way each task runs once, as its first try.
//!
//! The engine talks to the real (embedded) Postgres through a TCP relay
//! that, once, cuts a claim's connection: after Postgres has answered its
//! COMMIT, or instead of passing the COMMIT on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orchestrator::{task_fn, Dag, DagBag, EngineConfig, Node, Store, TaskSpec};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod common;
use common::{cluster, run_once_through, Cluster};

/// Text only a claim's UPDATE sends (`executor::claim_in`); its statement
/// is parsed each time, so the text comes with every claim.
const CLAIM: &[u8] = b"try_number = ti.try_number + 1";

/// Where the relay cuts a claim's connection.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    /// After Postgres has answered the COMMIT: the claim committed.
    Answer,
    /// Instead of passing the COMMIT on: the claim is rolled back.
    Commit,
    /// As `Commit`, and every other connection open then is cut too, as
    /// when Postgres restarts: the executor's next requeue fails, and it
    /// asks again only after the recorder has claimed the tries again.
    Everything,
}

/// Cuts the connection of the `nth` transaction that claims tries.
struct Relay {
    addr: std::net::SocketAddr,
    /// How many connections it has cut: one at most.
    cut: Arc<AtomicUsize>,
}

impl Relay {
    /// A relay to the server of `url` (postgres://user:pw@host:port/db).
    async fn start(url: &str, nth: usize, at: Cut) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let upstream = host_port(url).to_owned();
        let countdown = Arc::new(AtomicUsize::new(nth));
        let cut = Arc::new(AtomicUsize::new(0));
        let (c, k) = (countdown.clone(), cut.clone());
        // Cancelled to cut every connection open at the time.
        let open = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.expect("Postgres");
                let (c, k, open) = (c.clone(), k.clone(), open.clone());
                tokio::spawn(relay(client, server, at, c, k, open));
            }
        });
        Relay { addr, cut }
    }

    /// `url` (the server's) with the relay's address instead.
    fn url(&self, url: &str) -> String {
        url.replacen(host_port(url), &self.addr.to_string(), 1)
    }

    fn cuts(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    at: Cut,
    countdown: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    open: Arc<std::sync::Mutex<CancellationToken>>,
) {
    let severed = open.lock().expect("token").clone();
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let cutting = std::sync::atomic::AtomicBool::new(false);
    let up = async {
        let mut claiming = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let bytes = &buf[..n];
            claiming |= contains(bytes, CLAIM);
            if claiming && contains(bytes, b"COMMIT") {
                claiming = false;
                let left = countdown.fetch_sub(1, Ordering::SeqCst);
                if left == 1 && at != Cut::Answer {
                    cut.fetch_add(1, Ordering::SeqCst);
                    if at == Cut::Everything {
                        let mut open = open.lock().expect("token");
                        open.cancel();
                        *open = CancellationToken::new();
                    }
                    return;
                }
                if left == 1 {
                    cutting.store(true, Ordering::SeqCst);
                }
            }
            if to_server.write_all(bytes).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from_server.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if cutting.load(Ordering::SeqCst) {
                // Postgres has answered the COMMIT: it committed.
                cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending closes both connections.
    tokio::select! {
        () = up => {}
        () = down => {}
        () = severed.cancelled() => {}
    }
}

fn host_port(url: &str) -> &str {
    let after = url.split_once('@').expect("user@host").1;
    after.split('/').next().expect("host:port")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `first → second`, each counting its runs in `runs`; `second` takes `nap`.
fn chain(runs: Arc<[AtomicUsize; 2]>, nap: Duration) -> Dag {
    let mut b = Dag::builder("lost_commit_chain");
    let nodes: Vec<Node> = ["first", "second"]
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let runs = runs.clone();
            b.task(TaskSpec::new(
                id,
                task_fn(move |_| {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    async move {
                        if i == 1 {
                            tokio::time::sleep(nap).await;
                        }
                        Ok(Value::Null)
                    }
                }),
            ))
        })
        .collect();
    b.chain(&nodes.iter().collect::<Vec<_>>());
    b.build().expect("DAG builds")
}

/// Runs the chain once through an engine whose every connection goes
/// through a relay cutting the `nth` claim's connection `at`, and checks
/// that the relay cut one and each task ran once, as its first try.
async fn each_task_runs_once_cutting(nth: usize, at: Cut, nap: Duration) {
    let runs = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut bag = DagBag::new();
    bag.add(chain(runs.clone(), nap));
    let c: Cluster = cluster(&bag).await;
    let relay = Relay::start(&c.url, nth, at).await;
    let pool = orchestrator::store::connect_pool(&relay.url(&c.url), 10)
        .await
        .expect("connect through the relay");
    let config = EngineConfig {
        run_streams: false,
        create_scheduled_runs: false,
        ..EngineConfig::default()
    };
    let (run_id, state) = run_once_through(
        &c,
        &Store::new(pool),
        &bag,
        "lost_commit_chain",
        json!({}),
        config,
    )
    .await;
    assert_eq!(relay.cuts(), 1, "the relay cut one claim's connection");
    assert_eq!(state, "success");
    let counts = [
        runs[0].load(Ordering::SeqCst),
        runs[1].load(Ordering::SeqCst),
    ];
    assert_eq!(counts, [1, 1], "each task ran once");
    let tries: Vec<i32> = sqlx::query_scalar(
        "SELECT try_number FROM task_instances WHERE run_id = $1 ORDER BY task_id",
    )
    .bind(&run_id)
    .fetch_all(&c.pool)
    .await
    .expect("tries");
    assert_eq!(tries, vec![1, 1], "the cut claim did not count as a try");
}

// The first claim is the executor's, of `first` (the scheduler queued it).
// The second is the recorder's: it records `first`, queues `second` and
// claims it for its executor in one transaction; when that is rolled back,
// its retry records `first` again and claims `second` again, with the same
// try number.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_claim_whose_commit_goes_unanswered_is_requeued_and_run_once() {
    each_task_runs_once_cutting(1, Cut::Answer, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_claim_whose_commit_goes_unanswered_is_requeued_and_run_once() {
    each_task_runs_once_cutting(2, Cut::Answer, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_claim_whose_commit_never_arrives_runs_its_task_once() {
    each_task_runs_once_cutting(1, Cut::Commit, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_claim_whose_commit_never_arrives_runs_its_task_once() {
    each_task_runs_once_cutting(2, Cut::Commit, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_claim_is_not_requeued_once_its_tries_run_again() {
    // Every connection is cut with the recorder's COMMIT: the executor's
    // first requeue fails, and by its next turn the recorder's retry has
    // claimed `second` again under the same try number; it is running.
    each_task_runs_once_cutting(2, Cut::Everything, Duration::from_millis(2500)).await;
}
