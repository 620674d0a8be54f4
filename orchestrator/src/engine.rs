//! One `betflow` process's engine: the scheduler loop, the executor loop,
//! heartbeats, the LISTEN/NOTIFY wake-ups and the stream supervisors, with a
//! graceful shutdown that leaves nothing `running` in the database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alert::{self, Notifiers};
use crate::cpus::{EngineCpus, ENGINE_THREAD};
use crate::dag::DagBag;
use crate::executor::{self, Claimed, Finished, UnansweredClaims, WorkerIdentity};
use crate::record::{Handed, Handoff, Recorder};
use crate::scheduler;
use crate::store::write::{Wakeup, WAKEUP_CHANNEL};
use crate::store::{KeptConnection, Store, StoreError};
use crate::stream;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Task instances this process runs at once.
    pub parallelism: usize,
    /// Longest sleep between scheduler passes when nothing wakes it.
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A running try whose heartbeat is older than this is a zombie.
    pub zombie_threshold: Duration,
    /// How long running tries may take to finish on shutdown before they are requeued.
    pub shutdown_grace: Duration,
    pub run_scheduler: bool,
    /// Create runs from cron schedules (off for in-process runs of `--wait` and benchmarks).
    pub create_scheduled_runs: bool,
    pub run_streams: bool,
    /// Where alerts go (docs/alerts.md); none: alerts wait in the table.
    pub notifiers: Notifiers,
    /// First wait before an alert that could not be delivered is retried; it doubles.
    pub alert_backoff: Duration,
    /// Where each scheduler pass's duration is kept, when someone measures
    /// them (`betflow bench scheduler`); `/metrics` has the latest anyway.
    pub pass_times: Option<PassTimes>,
    /// Cores kept for the engine's threads and backends
    /// (`BETFLOW_ENGINE_CPUS`); none: the OS places them. Only the engine
    /// of [`spawn_dedicated`] has threads of its own to place.
    pub cpus: Option<EngineCpus>,
}

/// The durations of the scheduler passes since this was made.
#[derive(Debug, Clone, Default)]
pub struct PassTimes(Arc<std::sync::Mutex<Vec<Duration>>>);

impl PassTimes {
    fn push(&self, pass: Duration) {
        if let Ok(mut v) = self.0.lock() {
            v.push(pass);
        }
    }

    /// The passes so far, in order.
    pub fn take(&self) -> Vec<Duration> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            parallelism: 32,
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(2),
            zombie_threshold: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            run_scheduler: true,
            create_scheduled_runs: true,
            run_streams: true,
            notifiers: Notifiers::default(),
            alert_backoff: Duration::from_secs(5),
            pass_times: None,
            cpus: None,
        }
    }
}

/// Wake-up signals shared by the loops of one process.
#[derive(Default)]
struct Wakeups {
    scheduler: Notify,
    executor: Notify,
}

pub fn new_identity() -> WorkerIdentity {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    WorkerIdentity {
        worker_id: format!(
            "{hostname}-{}-{:06x}",
            std::process::id(),
            nanos & 0xff_ffff
        ),
        hostname,
    }
}

/// Run until `shutdown` fires, then stop cleanly.
/// Runs the engine on a thread and runtime of its own, with a pool of
/// `connections` to `url` created there. A process that also serves pages
/// (`betflow up`) then cannot delay scheduling by queueing web work ahead
/// of it on the same workers or connections: the OS shares the cores
/// between the engine's thread and the web's. Join the handle after
/// cancelling `shutdown`.
/// How long the dedicated engine's pool and runtime may take to close
/// once the engine stopped.
const POOL_CLOSE_WAIT: Duration = Duration::from_millis(500);

pub fn spawn_dedicated(
    url: String,
    connections: u32,
    bag: DagBag,
    config: EngineConfig,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<Result<(), StoreError>>> {
    // With cores of its own, a worker per kept core; else as many as
    // cores, as the default runtime has: the engine's stream tasks
    // (consumers) need them as much as the web does.
    let runtime = match &config.cpus {
        Some(placed) => placed.runtime()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .thread_name(ENGINE_THREAD)
            .enable_all()
            .build()?,
    };
    let backends = config
        .cpus
        .as_ref()
        .filter(|placed| placed.backends)
        .map(|placed| placed.placement.engine.clone());
    let block_on_cpus = config
        .cpus
        .as_ref()
        .map(|placed| placed.placement.engine.clone());
    std::thread::Builder::new()
        .name(ENGINE_THREAD.into())
        .spawn(move || {
            if let Some(cpus) = block_on_cpus {
                if let Err(e) = cpus.pin_this_thread() {
                    tracing::warn!("{e}");
                }
            }
            let ran = runtime.block_on(async move {
                let connect = || Store::connect_engine(&url, connections, backends.clone());
                let Some(store) =
                    until_reachable(&shutdown, "connecting the engine's pool", connect).await?
                else {
                    return Ok(());
                };
                let ran = run(store.clone(), bag, config, shutdown).await;
                // A connection an abandoned task still holds must not hold the stop.
                let _ = tokio::time::timeout(POOL_CLOSE_WAIT, store.close()).await;
                ran
            });
            // Nor may a thread blocked in a client library (a Kafka client
            // closing against a broker that is gone).
            runtime.shutdown_timeout(POOL_CLOSE_WAIT);
            ran
        })
}

pub async fn run(
    store: Store,
    bag: DagBag,
    config: EngineConfig,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let me = new_identity();
    let register = || register_worker(&store, &me);
    if until_reachable(&shutdown, "registering the engine", register)
        .await?
        .is_none()
    {
        return Ok(());
    }
    tracing::info!(worker_id = %me.worker_id, parallelism = config.parallelism, "engine started");
    let wake = Arc::new(Wakeups::default());
    let bag = Arc::new(bag);
    let loop_micros = Arc::new(AtomicU64::new(0));

    let mut loops = JoinSet::new();
    loops.spawn(listen(
        store.clone(),
        me.clone(),
        wake.clone(),
        shutdown.clone(),
    ));
    loops.spawn(heartbeat(
        store.clone(),
        me.clone(),
        config.heartbeat_interval,
        loop_micros.clone(),
        shutdown.clone(),
    ));
    if config.run_scheduler {
        loops.spawn(scheduler_loop(
            store.clone(),
            bag.clone(),
            config.clone(),
            wake.clone(),
            loop_micros.clone(),
            shutdown.clone(),
        ));
    }
    if config.run_scheduler || !config.notifiers.is_empty() {
        loops.spawn(alert_loop(
            store.clone(),
            bag.clone(),
            config.clone(),
            shutdown.clone(),
        ));
    }
    if config.run_streams {
        let (store, bag, id, sd) = (
            store.clone(),
            (*bag).clone(),
            me.worker_id.clone(),
            shutdown.clone(),
        );
        let grace: Duration = config.shutdown_grace;
        loops.spawn(async move {
            stream::supervise_all(store, bag, id, sd, grace).await;
        });
    }
    executor_loop(&store, bag, &config, &me, wake, shutdown.clone()).await;
    while loops.join_next().await.is_some() {}
    sqlx::query("UPDATE workers SET stopped_at = now() WHERE worker_id = $1")
        .bind(&me.worker_id)
        .execute(store.pool())
        .await?;
    tracing::info!(worker_id = %me.worker_id, "engine stopped");
    Ok(())
}

/// Deadlines (where this process schedules) and alert deliveries (where
/// it has notifiers), once a second. Deliveries stop with the process; the
/// ones left are another's or the next start's.
async fn alert_loop(
    store: Store,
    bag: Arc<DagBag>,
    config: EngineConfig,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if config.run_scheduler {
            if let Err(e) = alert::check_deadlines(&store, &bag).await {
                tracing::warn!("deadline check failed: {e}");
            }
        }
        if !config.notifiers.is_empty() {
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = alert::deliver_due(&store, &bag, &config.notifiers, config.alert_backoff) => r,
            };
            if let Err(e) = sent {
                tracing::warn!("alert delivery pass failed: {e}");
            }
        }
    }
}

/// `attempt`, retried with backoff while the database cannot be reached,
/// until `shutdown` (then `None`): an engine starting while its database
/// restarts (an embedded cluster `up` is reviving, a failover) waits for
/// it instead of ending the process. Other errors end it.
async fn until_reachable<T, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Result<Option<T>, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.is_connection() => {
                tracing::warn!("{what} failed: {e}; trying again in {wait:?}");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn register_worker(store: &Store, me: &WorkerIdentity) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workers (worker_id, hostname, pid, kind) VALUES ($1, $2, $3, 'engine')",
    )
    .bind(&me.worker_id)
    .bind(&me.hostname)
    .bind(std::process::id() as i32)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// LISTEN for wake-ups from other processes (and this one's own commits).
async fn listen(store: Store, me: WorkerIdentity, wake: Arc<Wakeups>, shutdown: CancellationToken) {
    loop {
        let mut listener = match PgListener::connect_with(store.pool()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("LISTEN connection failed: {e}; polling until it is back");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        if let Err(e) = listener.listen(WAKEUP_CHANNEL).await {
            tracing::warn!("LISTEN failed: {e}");
            continue;
        }
        loop {
            tokio::select! {
                msg = listener.recv() => match msg {
                    Ok(n) => {
                        let to = Wakeup::of(n.payload(), &me.worker_id);
                        if to.executor {
                            wake.executor.notify_one();
                        }
                        if to.scheduler {
                            wake.scheduler.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::warn!("LISTEN connection lost: {e}");
                        break;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Heartbeat this process and its running tries; also records how long the
/// latest scheduler pass took (`loop_micros`), for `/metrics`.
async fn heartbeat(
    store: Store,
    me: WorkerIdentity,
    every: Duration,
    loop_micros: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let res = async {
            let micros = loop_micros.load(Ordering::Relaxed);
            let loop_secs = (micros > 0).then(|| micros as f64 / 1e6);
            sqlx::query("UPDATE workers SET heartbeat_at = now(), scheduler_loop_seconds = $2 WHERE worker_id = $1")
                .bind(&me.worker_id)
                .bind(loop_secs)
                .execute(store.pool())
                .await?;
            executor::heartbeat_tries(&store, &me).await.map(|_| ())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!("heartbeat failed: {e}");
        }
    }
}

/// How often a scheduler tidies the tables only ever appended to: it folds
/// the run and task-instance counts the triggers added (each statement
/// that moves runs or instances adds a row per DAG, and readers sum them)
/// and drops requests for a pass whose run has ended.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

async fn scheduler_loop(
    store: Store,
    bag: Arc<DagBag>,
    config: EngineConfig,
    wake: Arc<Wakeups>,
    loop_micros: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    let mut last_runs_check = tokio::time::Instant::now() - Duration::from_secs(60);
    let mut last_zombie_check = tokio::time::Instant::now();
    let mut last_backfill_check = tokio::time::Instant::now();
    let mut last_housekeeping = tokio::time::Instant::now();
    let mut turns = scheduler::Turns::default();
    loop {
        // Creating runs from schedules only needs to happen about once a second.
        let create =
            config.create_scheduled_runs && last_runs_check.elapsed() >= Duration::from_secs(1);
        let pass_started = std::time::Instant::now();
        let mut steps = PassSteps::default();
        // Set when a step left work for the next pass: run it at once.
        let mut again = false;
        let res: Result<(), StoreError> = async {
            if create {
                last_runs_check = tokio::time::Instant::now();
                let created = scheduler::create_due_runs(&store, &bag, chrono::Utc::now()).await?;
                if created.more {
                    // Not once a second: until the backlog is created.
                    last_runs_check -= Duration::from_secs(1);
                    again = true;
                }
                crate::asset::create_triggered_runs(&store, &bag).await?;
                steps.created = created.runs;
            }
            steps.create = pass_started.elapsed();
            if last_backfill_check.elapsed() >= Duration::from_secs(1) {
                last_backfill_check = tokio::time::Instant::now();
                crate::backfill::complete_finished(&store).await?;
            }
            let step = std::time::Instant::now();
            let started = scheduler::start_queued_runs(&store, &bag).await?;
            (steps.start, steps.started) = (step.elapsed(), started.runs);
            again |= started.more;
            let step = std::time::Instant::now();
            let advanced = scheduler::advance_runs(&store, &bag, &mut turns).await?;
            steps.advance = step.elapsed();
            again |= advanced.more;
            if advanced.finished > 0 {
                // A backfill whose last run just ended is complete now, not
                // at the next periodic check; a DAG's next run may start.
                crate::backfill::complete_finished(&store).await?;
                again = true;
            }
            if advanced.queued > 0 {
                wake.executor.notify_one();
            }
            if last_zombie_check.elapsed() >= config.heartbeat_interval {
                last_zombie_check = tokio::time::Instant::now();
                if scheduler::reap_zombies(&store, &bag, config.zombie_threshold).await? > 0 {
                    wake.scheduler.notify_one();
                }
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = tokio::time::Instant::now();
                store.compact_run_counts().await?;
                store.compact_task_instance_counts().await?;
                store.drop_stale_schedule_requests().await?;
            }
            Ok(())
        }
        .await;
        let took = pass_started.elapsed();
        if took >= SLOW_PASS {
            tracing::debug!(
                took_ms = took.as_millis() as u64,
                create_ms = steps.create.as_millis() as u64,
                created = steps.created,
                start_ms = steps.start.as_millis() as u64,
                started = steps.started,
                advance_ms = steps.advance.as_millis() as u64,
                "slow scheduler pass"
            );
        }
        loop_micros.store(took.as_micros().max(1) as u64, Ordering::Relaxed);
        if let Some(times) = &config.pass_times {
            times.push(took);
        }
        if let Err(e) = res {
            tracing::warn!("scheduler pass failed: {e}");
        } else if again {
            wake.scheduler.notify_one();
        }
        tokio::select! {
            _ = wake.scheduler.notified() => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Where a scheduler pass spent its time, logged (at debug) when the pass
/// took [`SLOW_PASS`] or more: creating runs, starting them, advancing them.
#[derive(Default)]
struct PassSteps {
    create: Duration,
    created: usize,
    start: Duration,
    started: usize,
    advance: Duration,
}

/// A pass this long is logged with its steps (`BETFLOW_LOG=orchestrator=debug`).
const SLOW_PASS: Duration = Duration::from_millis(100);

async fn executor_loop(
    store: &Store,
    bag: Arc<DagBag>,
    config: &EngineConfig,
    me: &WorkerIdentity,
    wake: Arc<Wakeups>,
    shutdown: CancellationToken,
) {
    let abort = CancellationToken::new();
    // A try holds a slot while it executes and gives it back before its
    // outcome is recorded (`executor::Slot`); at most `parallelism` more
    // tries may be waiting for the recorder.
    let slots = Arc::new(Semaphore::new(config.parallelism));
    let freed = Arc::new(Notify::new());
    let (to_executor, mut handed) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicBool::new(false));
    let unanswered = UnansweredClaims::default();
    let handoff = Handoff {
        bag: bag.clone(),
        slots: slots.clone(),
        to_executor,
        backlog: backlog.clone(),
        unanswered: unanswered.clone(),
    };
    let (recorder, recording) =
        Recorder::spawn(store.clone(), me.clone(), abort.clone(), Some(handoff));
    let mut running: JoinSet<Result<Finished, StoreError>> = JoinSet::new();
    let mut lookahead = executor::Lookahead::default();
    let mut db = KeptConnection::new(store.clone());
    let start = |running: &mut JoinSet<_>, c: Claimed, inputs, permit| {
        let Some(dag) = bag.get(&c.dag_id).cloned() else {
            return;
        };
        let slot = executor::Slot::new(permit, freed.clone());
        let (store, me, abort) = (store.clone(), me.clone(), abort.clone());
        let recorder = recorder.clone();
        running.spawn(async move {
            executor::run_claimed(&store, dag, &me, c, inputs, &recorder, abort, slot).await
        });
    };
    // Whether something may be queued for this executor: a claim is a
    // transaction, and a chain's next task comes handed over by the
    // recorder (`record::Handoff`), so the loop claims only when woken for
    // it, when its last claim left work behind, or once a poll interval.
    let mut may_claim = true;
    let mut given: Vec<Handed> = Vec::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        while let Ok(h) = handed.try_recv() {
            given.push(h);
        }
        if !unanswered.is_empty() {
            match unanswered.requeue(&mut db, me).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        "returned {n} tries to the queue whose claim's commit went unanswered"
                    );
                    may_claim = true;
                }
                Err(e) => tracing::warn!("returning unanswered claims to the queue failed: {e}"),
            }
        }
        if !given.is_empty() {
            // Those whose inputs came with them start at once; the others'
            // are read in one query.
            let mut unread: (Vec<Claimed>, Vec<OwnedSemaphorePermit>) = Default::default();
            for h in given.drain(..) {
                match h.inputs {
                    Some(inputs) => start(&mut running, h.claimed, Some(inputs), h.permit),
                    None => {
                        unread.0.push(h.claimed);
                        unread.1.push(h.permit);
                    }
                }
            }
            let (claimed, permits) = unread;
            let inputs = read_inputs(&mut db, &bag, &claimed).await;
            for ((c, inputs), permit) in claimed.into_iter().zip(inputs).zip(permits) {
                start(&mut running, c, inputs, permit);
            }
        }
        // The slots are taken before the claim: the recorder takes free
        // ones too, for the tries it claims on this loop's behalf.
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
        if may_claim {
            let free = (2 * config.parallelism).saturating_sub(running.len());
            permits
                .extend(std::iter::from_fn(|| slots.clone().try_acquire_owned().ok()).take(free));
        }
        // Every slot busy and more may be queued.
        let mut saturated = may_claim && slots.available_permits() == 0 && permits.is_empty();
        if !permits.is_empty() {
            let free = permits.len();
            match executor::claim(&mut db, &bag, me, free, &mut lookahead, &unanswered).await {
                Ok(claimed) => {
                    saturated = !claimed.is_empty() && claimed.len() == free;
                    backlog.store(saturated, Ordering::Relaxed);
                    // What the claim had to step over may fit once a try ends.
                    may_claim = saturated || lookahead.is_crowded();
                    let inputs = read_inputs(&mut db, &bag, &claimed).await;
                    for ((c, inputs), permit) in claimed.into_iter().zip(inputs).zip(permits) {
                        start(&mut running, c, inputs, permit);
                    }
                }
                Err(e) => tracing::warn!("claiming tasks failed: {e}"),
            }
        }
        if saturated {
            // Maybe more is queued: wait for a free slot, then briefly for
            // the tries that ended with it to give theirs back too, so the
            // next claim fills many slots in one transaction instead of one.
            tokio::select! {
                _ = freed.notified() => {}
                // Tries the recorder claimed with the slots waited for.
                Some(h) = handed.recv() => {
                    given.push(h);
                    continue;
                }
                _ = shutdown.cancelled() => break,
            }
            let until = tokio::time::Instant::now() + CLAIM_GATHER;
            while slots.available_permits() < config.parallelism / 2 {
                tokio::select! {
                    _ = freed.notified() => {}
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        } else {
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    may_claim |= after_try(done, &wake) || lookahead.is_crowded();
                }
                Some(h) = handed.recv() => given.push(h),
                _ = wake.executor.notified() => may_claim = true,
                _ = tokio::time::sleep(config.poll_interval) => may_claim = true,
                _ = shutdown.cancelled() => break,
            }
        }
        // Collect every try that has already ended, so one claim fills all
        // free slots: tries recorded in one batch end together, and a yield
        // lets the others the batch woke finish first.
        tokio::task::yield_now().await;
        while let Some(done) = running.try_join_next() {
            may_claim |= after_try(done, &wake) || lookahead.is_crowded();
        }
    }
    // The recorder hands no more tries over; those it did and the loop did
    // not start are requeued below, as unfinished.
    handed.close();
    // Graceful: let running tries finish within the grace period, then
    // tell the rest to stop, then requeue them; all within the grace.
    if !running.is_empty() {
        let (drain, stop) = split_grace(config.shutdown_grace);
        tracing::info!(
            "waiting up to {:?} for {} running tasks",
            config.shutdown_grace,
            running.len()
        );
        let drained = tokio::time::timeout(drain, async {
            while let Some(done) = running.join_next().await {
                let _ = after_try(done, &wake);
            }
        })
        .await;
        if drained.is_err() {
            abort.cancel();
            let _ =
                tokio::time::timeout(stop, async { while running.join_next().await.is_some() {} })
                    .await;
            running.abort_all();
        }
    }
    // The recorder ends with its last handle, once the batch it writes is in.
    drop(recorder);
    let _ = tokio::time::timeout(RECORDER_STOP_WAIT, recording).await;
    match executor::requeue_own(store, me).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("returned {n} unfinished tries to the queue"),
        Err(e) => tracing::warn!("could not requeue unfinished tries: {e}"),
    }
}

/// How long a saturated executor waits, after a slot frees, for more to
/// free before it claims: a claim is a transaction whatever its size.
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// How long a stop waits for the recorder's last batch: recording retries
/// an unreachable database until told to abort, which a stop past its grace has.
const RECORDER_STOP_WAIT: Duration = Duration::from_secs(1);

/// The shutdown grace as (time for running tries to finish, then time for
/// the ones told to stop to return): a quarter of it, at most 5 s, for the
/// second, so the whole drain fits in the grace.
fn split_grace(grace: Duration) -> (Duration, Duration) {
    let stop: Duration = (grace / 4).min(Duration::from_secs(5));
    (grace - stop, stop)
}

/// Wakes the scheduler for a try that left its run to it; returns whether
/// the try left queued tasks for the executor's loop, which calls this, to
/// claim (a wake-up for them only made it claim twice, the second time for
/// nothing).
fn after_try(
    done: Result<Result<Finished, StoreError>, tokio::task::JoinError>,
    wake: &Wakeups,
) -> bool {
    match done {
        Ok(Ok(f)) => {
            if f.needs_scheduler {
                wake.scheduler.notify_one();
            }
            f.queued
        }
        Ok(Err(e)) => {
            tracing::warn!("recording a task try failed: {e}");
            wake.scheduler.notify_one();
            true
        }
        Err(e) => {
            tracing::warn!("task supervisor panicked: {e}");
            true
        }
    }
}

/// The upstream outputs of tries about to start, read here in one query;
/// on failure each try reads its own.
async fn read_inputs(
    db: &mut KeptConnection,
    bag: &DagBag,
    claimed: &[Claimed],
) -> Vec<Option<executor::Inputs>> {
    if claimed.is_empty() {
        return Vec::new();
    }
    match executor::load_inputs(db, bag, claimed).await {
        Ok(inputs) => inputs.into_iter().map(Some).collect(),
        Err(e) => {
            tracing::warn!("reading the claimed tries' inputs failed: {e}");
            vec![None; claimed.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_drain_fits_in_the_grace() {
        let secs = Duration::from_secs;
        assert_eq!(split_grace(secs(30)), (secs(25), secs(5)));
        assert_eq!(split_grace(secs(8)), (secs(6), secs(2)));
        assert_eq!(
            split_grace(Duration::ZERO),
            (Duration::ZERO, Duration::ZERO)
        );
    }
}
