//! DAGs as Rust values: tasks, their dependencies and groups, and the
//! scheduling settings users know from Airflow.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::alert::{Alerts, Deadline};
use crate::asset::{Asset, AssetCondition, PartitionFn};
use crate::mapping::{MapOver, MapSpec, DEFAULT_MAX_MAP_LENGTH};
use crate::schedule::{DataInterval, RunBounds, Schedule, ScheduleError};
use crate::state::TriggerRule;
use crate::stream::StreamTask;
use crate::task::{Sensor, Task};

#[derive(Debug, thiserror::Error)]
pub enum DagError {
    #[error("DAG `{dag}`: duplicate task id `{task}`")]
    DuplicateTask { dag: String, task: String },
    #[error("DAG `{dag}`: unknown task or group `{node}` in a dependency")]
    UnknownNode { dag: String, node: String },
    #[error("DAG `{dag}`: dependency cycle through `{task}`")]
    Cycle { dag: String, task: String },
    #[error("DAG `{dag}`: {source}")]
    Schedule {
        dag: String,
        #[source]
        source: ScheduleError,
    },
    #[error("invalid DAG id `{0}`: use letters, digits, `_`, `-` and `.`")]
    InvalidId(String),
    #[error("DAG `{0}`: its asset schedule names no asset, so it would never run")]
    EmptyAssetSchedule(String),
    #[error("DAG `{dag}`: task `{task}` maps over {what}")]
    BadMapping {
        dag: String,
        task: String,
        what: String,
    },
    #[error("DAG `{dag}`: mapped group `{group}` {what}")]
    BadMappedGroup {
        dag: String,
        group: String,
        what: String,
    },
}

/// How long to wait before try n+1: `delay * 2^(n-1)` when exponential, never above `max_delay`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
    pub exponential: bool,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            delay: Duration::from_secs(300),
            exponential: false,
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Delay after the failed try number `try_number` (1-based).
    pub fn delay_after(&self, try_number: u32) -> Duration {
        let base = if self.exponential {
            let factor = 2u32.saturating_pow(try_number.saturating_sub(1).min(30));
            self.delay.saturating_mul(factor)
        } else {
            self.delay
        };
        base.min(self.max_delay)
    }
}

/// What runs when the task instance is executed.
#[derive(Clone)]
pub enum TaskKind {
    Operator(Arc<dyn Task>),
    Sensor {
        sensor: Arc<dyn Sensor>,
        poke_interval: Duration,
        timeout: Duration,
    },
}

/// One task as declared: an operator or sensor plus its per-task settings.
#[derive(Clone)]
pub struct TaskSpec {
    id: String,
    kind: TaskKind,
    trigger_rule: TriggerRule,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    pool: String,
    pool_slots: u32,
    priority_weight: i32,
    group: Option<String>,
    doc: String,
    /// Full ids of the tasks whose outputs it reads: each is an edge.
    reads: Vec<String>,
    alerts: Option<Alerts>,
    outlets: Vec<Asset>,
    inlets: Vec<Asset>,
    map: Option<MapSpec>,
}

impl TaskSpec {
    pub fn new(id: impl Into<String>, task: Arc<dyn Task>) -> Self {
        Self::with_kind(id.into(), TaskKind::Operator(task))
    }

    /// A sensor poked every `poke_interval` until it holds or `timeout` passes.
    pub fn sensor(
        id: impl Into<String>,
        sensor: Arc<dyn Sensor>,
        poke_interval: Duration,
        timeout: Duration,
    ) -> Self {
        Self::with_kind(
            id.into(),
            TaskKind::Sensor {
                sensor,
                poke_interval,
                timeout,
            },
        )
    }

    fn with_kind(id: String, kind: TaskKind) -> Self {
        Self {
            id,
            kind,
            trigger_rule: TriggerRule::AllSuccess,
            retry: None,
            timeout: None,
            pool: "default_pool".into(),
            pool_slots: 1,
            priority_weight: 1,
            group: None,
            doc: String::new(),
            reads: Vec::new(),
            alerts: None,
            outlets: Vec::new(),
            inlets: Vec::new(),
            map: None,
        }
    }

    /// This task reads `output`: the writing task runs before it. The edge
    /// follows from the data, so it is stated once.
    pub fn reads<T>(mut self, output: &crate::output::Output<T>) -> Self {
        self.reads.push(output.task_id().to_owned());
        self
    }

    pub fn trigger_rule(mut self, rule: TriggerRule) -> Self {
        self.trigger_rule = rule;
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.retry.get_or_insert_with(RetryPolicy::default).retries = retries;
        self
    }

    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn pool(mut self, pool: impl Into<String>, slots: u32) -> Self {
        self.pool = pool.into();
        self.pool_slots = slots.max(1);
        self
    }

    pub fn priority_weight(mut self, weight: i32) -> Self {
        self.priority_weight = weight;
        self
    }

    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = doc.into();
        self
    }

    /// Alerts on this task's tries (Airflow's task-level callbacks):
    /// failure, retry, success; channels unset here come from the
    /// deployment (docs/alerts.md).
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Assets this task writes: each successful try records an update of
    /// each, which DAGs scheduled on them wait for (docs/assets.md).
    pub fn outlets(mut self, assets: impl IntoIterator<Item = Asset>) -> Self {
        self.outlets.extend(assets);
        self
    }

    /// Assets this task reads, for lineage; reading schedules nothing.
    pub fn inlets(mut self, assets: impl IntoIterator<Item = Asset>) -> Self {
        self.inlets.extend(assets);
        self
    }

    /// Maps this task over the list in DAG param `name` (its default or
    /// the run's conf): one task instance per item, which the task reads
    /// with [`crate::TaskContext::item`] (docs/mapping.md).
    pub fn expand_over_param(self, name: &str) -> Self {
        self.expand(MapOver::Param(name.to_owned()))
    }

    /// Maps this task over the list `output`'s task returns (which runs
    /// first): one task instance per item.
    pub fn expand_over<T>(mut self, output: &crate::output::Output<T>) -> Self {
        self.reads.push(output.task_id().to_owned());
        self.expand(MapOver::Output(output.task_id().to_owned()))
    }

    /// Maps this task over `over` (Airflow's `expand`). What the closure
    /// captures is the same for every instance (Airflow's `partial`).
    pub fn expand(mut self, over: MapOver) -> Self {
        let max_length = self
            .map
            .as_ref()
            .map_or(DEFAULT_MAX_MAP_LENGTH, |m| m.max_length);
        self.map = Some(MapSpec { over, max_length });
        self
    }

    /// The most instances this mapped task may expand to (default
    /// [`DEFAULT_MAX_MAP_LENGTH`]); a longer list fails the task.
    pub fn max_map_length(mut self, n: usize) -> Self {
        if let Some(m) = &mut self.map {
            m.max_length = n;
        }
        self
    }
}

/// A task inside a built DAG, with resolved settings and edges.
pub struct TaskNode {
    pub id: String,
    pub kind: TaskKind,
    pub trigger_rule: TriggerRule,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    pub group: Option<String>,
    pub doc: String,
    pub upstream: Vec<String>,
    pub downstream: Vec<String>,
    /// Alerts on this task's tries (failure, retry, success); none unless set.
    pub alerts: Option<Alerts>,
    /// Assets a successful try updates.
    pub outlets: Vec<Asset>,
    /// Assets it reads (lineage only).
    pub inlets: Vec<Asset>,
    /// Set when the task is mapped over a list (docs/mapping.md).
    pub map: Option<MapSpec>,
    /// The task is in a mapped task group: it is mapped over the group's
    /// list, and its instance `i` follows instance `i` of the group's
    /// tasks upstream of it, not all of them (docs/mapping.md).
    pub in_mapped_group: bool,
}

impl TaskNode {
    /// Whether instance `i` of this task depends on instance `i` of
    /// `upstream` alone, and reads that instance's output (both in the
    /// same mapped task group), rather than on all of its instances.
    pub fn follows_index_of(&self, upstream: &TaskNode) -> bool {
        self.in_mapped_group && upstream.in_mapped_group && self.group == upstream.group
    }

    pub fn is_sensor(&self) -> bool {
        matches!(self.kind, TaskKind::Sensor { .. })
    }

    /// The upstream tasks whose outputs a try of this task is given: all of
    /// them but the list a mapped task was expanded over, whose item each
    /// instance already has (`TaskContext::item`), as in Airflow. Loading
    /// that list again for each claim of a 10,000-wide expansion cost a
    /// third of its run (`bench scheduler`, docs/mapping.md).
    pub fn inputs(&self) -> impl Iterator<Item = &String> {
        let source = match self.map.as_ref().map(|m| &m.over) {
            Some(MapOver::Output(task)) => Some(task),
            _ => None,
        };
        self.upstream.iter().filter(move |u| Some(*u) != source)
    }
}

/// A long-running task of a stream task group, supervised by every process.
#[derive(Clone)]
pub struct StreamSpec {
    pub id: String,
    pub task: Arc<dyn StreamTask>,
    pub restart: RetryPolicy,
}

pub struct Dag {
    pub id: String,
    pub description: String,
    pub schedule: Schedule,
    pub bounds: RunBounds,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub tags: Vec<String>,
    pub params: Map<String, Value>,
    pub fileloc: String,
    /// Alerts on this DAG's runs (failure, success, deadline miss).
    pub alerts: Alerts,
    pub deadline: Option<Deadline>,
    /// Runs when these assets are updated (besides any cron schedule).
    pub asset_schedule: Option<AssetCondition>,
    /// Names the partition of the assets its runs update.
    partition_of: Option<PartitionFn>,
    /// Tasks in topological order.
    tasks: Vec<TaskNode>,
    index: HashMap<String, usize>,
    pub streams: Vec<StreamSpec>,
}

impl std::fmt::Debug for Dag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dag")
            .field("id", &self.id)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl Dag {
    /// A builder for DAG `id`; the file that calls it is the DAG's
    /// `fileloc` (Airflow's "defined in"), unless [`DagBuilder::fileloc`]
    /// says otherwise.
    #[track_caller]
    pub fn builder(id: impl Into<String>) -> DagBuilder {
        let mut b = DagBuilder::new(id.into());
        b.fileloc = std::panic::Location::caller().file().to_owned();
        b
    }

    /// What a version of this DAG is made of: its settings, params, tasks
    /// (kind, rules, retries, timeout, pool, group, doc, upstreams) and
    /// stream tasks, as JSON with sorted keys. Two binaries defining the
    /// same DAG give the same structure; any change to it is a new DAG
    /// version (Airflow 3's DAG versioning).
    pub fn structure(&self) -> Value {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                let mut task = serde_json::json!({
                    "id": t.id,
                    "sensor": t.is_sensor(),
                    "trigger_rule": t.trigger_rule.as_str(),
                    "retries": t.retry.retries,
                    "retry_delay_secs": t.retry.delay.as_secs_f64(),
                    "retry_exponential": t.retry.exponential,
                    "retry_max_delay_secs": t.retry.max_delay.as_secs_f64(),
                    "timeout_secs": t.timeout.map(|d| d.as_secs_f64()),
                    "pool": t.pool,
                    "pool_slots": t.pool_slots,
                    "priority_weight": t.priority_weight,
                    "group": t.group,
                    "doc": t.doc,
                    "upstream": t.upstream,
                });
                // Only when declared, so DAGs without assets keep their versions.
                for (key, assets) in [("outlets", &t.outlets), ("inlets", &t.inlets)] {
                    if !assets.is_empty() {
                        let uris: Vec<&str> = assets.iter().map(|a| a.uri.as_str()).collect();
                        task[key] = serde_json::json!(uris);
                    }
                }
                if let Some(m) = &t.map {
                    task["expand"] = m.over.describe();
                    task["max_map_length"] = serde_json::json!(m.max_length);
                }
                if t.in_mapped_group {
                    task["mapped_group"] = serde_json::json!(true);
                }
                task
            })
            .collect();
        let mut structure = serde_json::json!({
            "schedule": self.schedule.expression(),
            "timezone": self.schedule.timezone().name(),
            "start_date": self.bounds.start_date,
            "end_date": self.bounds.end_date,
            "catchup": self.bounds.catchup,
            "max_active_runs": self.max_active_runs,
            "max_active_tasks": self.max_active_tasks,
            "params": self.params,
            "tasks": tasks,
            "streams": self.streams.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        });
        if let Some(c) = &self.asset_schedule {
            structure["asset_schedule"] = c.expression();
        }
        structure
    }

    /// SHA-256 of [`Dag::structure`], hex: equal structures, equal hashes.
    pub fn structure_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(&self.structure()).expect("JSON of plain values");
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The partition of the assets a run over `interval` updates; `""`
    /// when the DAG names none.
    pub fn asset_partition(&self, interval: DataInterval) -> String {
        self.partition_of
            .as_ref()
            .map_or_else(String::new, |f| f(interval))
    }

    /// Tasks in topological order (every task after its upstreams).
    pub fn tasks(&self) -> &[TaskNode] {
        &self.tasks
    }

    pub fn task(&self, id: &str) -> Option<&TaskNode> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }

    /// `task_id` and every task downstream of it, transitively.
    pub fn downstream_closure(&self, task_id: &str) -> Vec<String> {
        self.closure(task_id, |t| &t.downstream)
    }

    /// `task_id` and every task upstream of it, transitively.
    pub fn upstream_closure(&self, task_id: &str) -> Vec<String> {
        self.closure(task_id, |t| &t.upstream)
    }

    /// `task_id` and every task reached by following `next`, in task order.
    fn closure(&self, task_id: &str, next: fn(&TaskNode) -> &Vec<String>) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([task_id.to_owned()]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(t) = self.task(&id) {
                queue.extend(next(t).iter().cloned());
            }
        }
        let mut out: Vec<String> = seen.into_iter().collect();
        out.sort_by_key(|id| self.index.get(id).copied().unwrap_or(usize::MAX));
        out
    }

    /// Groups and their task ids, in task order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &self.tasks {
            if let Some(g) = &t.group {
                groups.entry(g.clone()).or_default().push(t.id.clone());
            }
        }
        groups
    }

    /// Merge run conf over the DAG's param defaults.
    pub fn resolve_params(&self, conf: &Value) -> Map<String, Value> {
        let mut params = self.params.clone();
        if let Value::Object(overrides) = conf {
            for (k, v) in overrides {
                params.insert(k.clone(), v.clone());
            }
        }
        params
    }
}

/// A reference to a task or a whole group, for declaring dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Task(String),
    Group(String),
}

pub struct DagBuilder {
    id: String,
    description: String,
    schedule: Option<(String, String)>,
    start_date: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    default_retry: RetryPolicy,
    default_timeout: Option<Duration>,
    tags: Vec<String>,
    params: Map<String, Value>,
    fileloc: String,
    specs: Vec<TaskSpec>,
    edges: Vec<(Node, Node)>,
    streams: Vec<StreamSpec>,
    alerts: Alerts,
    deadline: Option<Deadline>,
    asset_schedule: Option<AssetCondition>,
    partition_of: Option<PartitionFn>,
    /// Of a DAG without a cron (a cron names its own).
    timezone: String,
    /// Mapped task groups: group name → the list its tasks map over.
    mapped_groups: BTreeMap<String, MapSpec>,
}

impl DagBuilder {
    fn new(id: String) -> Self {
        Self {
            id,
            description: String::new(),
            schedule: None,
            start_date: DateTime::<Utc>::UNIX_EPOCH,
            end_date: None,
            catchup: false,
            max_active_runs: 16,
            max_active_tasks: 16,
            default_retry: RetryPolicy::default(),
            default_timeout: None,
            tags: Vec::new(),
            params: Map::new(),
            fileloc: String::new(),
            specs: Vec::new(),
            edges: Vec::new(),
            streams: Vec::new(),
            alerts: Alerts::default(),
            deadline: None,
            asset_schedule: None,
            partition_of: None,
            timezone: "UTC".to_owned(),
            mapped_groups: BTreeMap::new(),
        }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    /// Cron expression (5 fields or a preset) in an IANA timezone.
    pub fn schedule(mut self, cron: &str, timezone: &str) -> Self {
        self.schedule = Some((cron.to_owned(), timezone.to_owned()));
        self
    }

    /// Run when `condition` holds over the assets' updates since the last
    /// such run (Airflow's `schedule=[asset, …]`). With a cron schedule as
    /// well, both make runs (Airflow's `AssetOrTimeSchedule`).
    pub fn schedule_on(mut self, condition: AssetCondition) -> Self {
        self.asset_schedule = Some(condition);
        self
    }

    /// How this DAG's runs name the partition of the assets they update,
    /// from the run's data interval: a consumer's run then takes the
    /// updates of one partition at a time.
    pub fn asset_partition(
        mut self,
        partition: impl Fn(DataInterval) -> String + Send + Sync + 'static,
    ) -> Self {
        self.partition_of = Some(Arc::new(partition));
        self
    }

    /// The timezone of a DAG without a cron (UTC unless set): a date
    /// without a time given to its trigger or backfill is midnight there.
    pub fn timezone(mut self, timezone: &str) -> Self {
        self.timezone = timezone.to_owned();
        self
    }

    pub fn start_date(mut self, d: DateTime<Utc>) -> Self {
        self.start_date = d;
        self
    }

    pub fn end_date(mut self, d: DateTime<Utc>) -> Self {
        self.end_date = Some(d);
        self
    }

    pub fn catchup(mut self, on: bool) -> Self {
        self.catchup = on;
        self
    }

    pub fn max_active_runs(mut self, n: u32) -> Self {
        self.max_active_runs = n.max(1);
        self
    }

    pub fn max_active_tasks(mut self, n: u32) -> Self {
        self.max_active_tasks = n.max(1);
        self
    }

    /// Retries and backoff for tasks that do not set their own.
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.default_retry = policy;
        self
    }

    /// Execution timeout for tasks that do not set their own.
    pub fn execution_timeout(mut self, t: Duration) -> Self {
        self.default_timeout = Some(t);
        self
    }

    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    pub fn param(mut self, name: &str, default: Value) -> Self {
        self.params.insert(name.to_owned(), default);
        self
    }

    /// Alerts on this DAG's runs (Airflow's DAG-level callbacks): failure,
    /// success, deadline miss. What is left unset comes from the
    /// deployment (docs/alerts.md).
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = alerts;
        self
    }

    /// The time each run must finish by; a miss alerts once and is marked
    /// on the run.
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Where the DAG is defined, shown in the UI (pass `file!()`).
    pub fn fileloc(mut self, loc: &str) -> Self {
        self.fileloc = loc.to_owned();
        self
    }

    /// Add a task; returns a node for dependencies.
    pub fn task(&mut self, spec: TaskSpec) -> Node {
        let node = Node::Task(spec.id.clone());
        for upstream in &spec.reads {
            self.edges
                .push((Node::Task(upstream.clone()), node.clone()));
        }
        self.specs.push(spec);
        node
    }

    /// Add a task inside a group: its id becomes `group.id`.
    pub fn group_task(&mut self, group: &str, mut spec: TaskSpec) -> Node {
        spec.id = format!("{group}.{}", spec.id);
        spec.group = Some(group.to_owned());
        self.task(spec)
    }

    /// Makes `group` a mapped task group (Airflow's `@task_group(...).expand`):
    /// each of its tasks is mapped over `over`, one instance per item, and
    /// instance `i` of a task waits only for instance `i` of the group's
    /// tasks upstream of it and reads their outputs; tasks after the group
    /// wait for every instance and read each task's outputs as one list
    /// (docs/mapping.md). A group mapped over an upstream's output runs
    /// after that upstream.
    pub fn mapped_group(&mut self, group: &str, over: MapOver, max_map_length: usize) {
        if let MapOver::Output(up) = &over {
            self.edges
                .push((Node::Task(up.clone()), Node::Group(group.to_owned())));
        }
        self.mapped_groups.insert(
            group.to_owned(),
            MapSpec {
                over,
                max_length: max_map_length,
            },
        );
    }

    /// A whole group as one node: upstream of its roots, downstream of its leaves.
    pub fn group(&self, group: &str) -> Node {
        Node::Group(group.to_owned())
    }

    /// `upstream >> downstream`.
    pub fn edge(&mut self, upstream: &Node, downstream: &Node) {
        self.edges.push((upstream.clone(), downstream.clone()));
    }

    /// `a >> b >> c …`.
    pub fn chain(&mut self, nodes: &[&Node]) {
        for pair in nodes.windows(2) {
            self.edge(pair[0], pair[1]);
        }
    }

    pub fn stream(&mut self, id: &str, task: Arc<dyn StreamTask>, restart: RetryPolicy) {
        self.streams.push(StreamSpec {
            id: id.to_owned(),
            task,
            restart,
        });
    }

    pub fn build(self) -> Result<Dag, DagError> {
        let dag_id = self.id.clone();
        if dag_id.is_empty()
            || !dag_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(DagError::InvalidId(dag_id));
        }
        let schedule = match &self.schedule {
            None => Schedule::manual(&self.timezone),
            Some((expr, tz)) => Schedule::cron(expr, tz),
        }
        .map_err(|source| DagError::Schedule {
            dag: dag_id.clone(),
            source,
        })?;
        if let Some(c) = &self.asset_schedule {
            if c.assets().is_empty() {
                return Err(DagError::EmptyAssetSchedule(dag_id));
            }
        }

        let mut upstream: HashMap<String, Vec<String>> = HashMap::new();
        let mut ids = HashSet::new();
        for s in &self.specs {
            if !ids.insert(s.id.clone()) {
                return Err(DagError::DuplicateTask {
                    dag: dag_id,
                    task: s.id.clone(),
                });
            }
            upstream.insert(s.id.clone(), Vec::new());
        }
        let in_group = |g: &str| -> Vec<&TaskSpec> {
            self.specs
                .iter()
                .filter(|s| s.group.as_deref() == Some(g))
                .collect()
        };
        // Edges between tasks only; groups expanded below.
        let mut task_edges: Vec<(String, String)> = Vec::new();
        let expand = |n: &Node| -> Result<Vec<String>, DagError> {
            match n {
                Node::Task(id) if ids.contains(id) => Ok(vec![id.clone()]),
                Node::Group(g) if !in_group(g).is_empty() => {
                    Ok(in_group(g).iter().map(|s| s.id.clone()).collect())
                }
                Node::Task(id) | Node::Group(id) => Err(DagError::UnknownNode {
                    dag: dag_id.clone(),
                    node: id.clone(),
                }),
            }
        };
        // Edges inside groups first, to know each group's roots and leaves.
        let mut intra: Vec<(String, String)> = Vec::new();
        for (a, b) in &self.edges {
            if let (Node::Task(a), Node::Task(b)) = (a, b) {
                expand(&Node::Task(a.clone()))?;
                expand(&Node::Task(b.clone()))?;
                intra.push((a.clone(), b.clone()));
            }
        }
        let group_of: HashMap<&str, &str> = self
            .specs
            .iter()
            .filter_map(|s| s.group.as_deref().map(|g| (s.id.as_str(), g)))
            .collect();
        let members_with = |g: &str, has_up: bool| -> Vec<String> {
            in_group(g)
                .iter()
                .filter(|s| {
                    let linked = intra.iter().any(|(a, b)| {
                        let (me, other) = if has_up { (b, a) } else { (a, b) };
                        me == &s.id && group_of.get(other.as_str()) == Some(&g)
                    });
                    !linked
                })
                .map(|s| s.id.clone())
                .collect()
        };
        for (a, b) in &self.edges {
            let ups = match a {
                Node::Group(g) => {
                    expand(a)?;
                    members_with(g, false) // leaves: no downstream inside the group
                }
                Node::Task(_) => expand(a)?,
            };
            let downs = match b {
                Node::Group(g) => {
                    expand(b)?;
                    members_with(g, true) // roots: no upstream inside the group
                }
                Node::Task(_) => expand(b)?,
            };
            for u in &ups {
                for d in &downs {
                    if !task_edges.contains(&(u.clone(), d.clone())) {
                        task_edges.push((u.clone(), d.clone()));
                    }
                }
            }
        }
        for (u, d) in &task_edges {
            if let Some(v) = upstream.get_mut(d) {
                v.push(u.clone());
            }
        }
        // A mapped group's tasks take its list; none may map on its own.
        for (g, spec) in &self.mapped_groups {
            let bad = |what: String| DagError::BadMappedGroup {
                dag: dag_id.clone(),
                group: g.clone(),
                what,
            };
            let members = in_group(g);
            if members.is_empty() {
                return Err(bad("has no task".into()));
            }
            if let Some(s) = members.iter().find(|s| s.map.is_some()) {
                return Err(bad(format!(
                    "has task `{}` mapped on its own: the tasks of a mapped group are mapped over the group's list",
                    s.id
                )));
            }
            match &spec.over {
                MapOver::Param(name) if !self.params.contains_key(name) => {
                    return Err(bad(format!(
                        "maps over param `{name}`, which the DAG does not declare"
                    )));
                }
                MapOver::Output(up) if group_of.get(up.as_str()) == Some(&g.as_str()) => {
                    return Err(bad(format!("maps over the output of its own task `{up}`")));
                }
                _ => {}
            }
            if spec.max_length == 0 {
                return Err(bad(
                    "may have at most 0 items (max_map_length must be at least 1)".into(),
                ));
            }
        }
        let group_map =
            |s: &TaskSpec| -> Option<&MapSpec> { self.mapped_groups.get(s.group.as_deref()?) };
        for s in &self.specs {
            let Some(m) = &s.map else { continue };
            let bad = |what: String| DagError::BadMapping {
                dag: dag_id.clone(),
                task: s.id.clone(),
                what,
            };
            match &m.over {
                MapOver::Param(name) if !self.params.contains_key(name) => {
                    return Err(bad(format!(
                        "param `{name}`, which the DAG does not declare"
                    )));
                }
                MapOver::Output(up) if !upstream[&s.id].contains(up) => {
                    return Err(bad(format!(
                        "the output of `{up}`, which is not one of its upstream tasks"
                    )));
                }
                _ => {}
            }
            if m.max_length == 0 {
                return Err(bad(
                    "at most 0 items (max_map_length must be at least 1)".into()
                ));
            }
        }

        // Kahn's algorithm, keeping declaration order among ready tasks.
        let order: Vec<&TaskSpec> = {
            let mut indegree: HashMap<&str, usize> = upstream
                .iter()
                .map(|(k, v)| (k.as_str(), v.len()))
                .collect();
            let mut out = Vec::new();
            let mut done = HashSet::new();
            loop {
                let ready: Vec<&TaskSpec> = self
                    .specs
                    .iter()
                    .filter(|s| !done.contains(&s.id) && indegree[s.id.as_str()] == 0)
                    .collect();
                if ready.is_empty() {
                    break;
                }
                for s in ready {
                    done.insert(s.id.clone());
                    for (u, d) in &task_edges {
                        if u == &s.id {
                            if let Some(n) = indegree.get_mut(d.as_str()) {
                                *n -= 1;
                            }
                        }
                    }
                    out.push(s);
                }
            }
            if out.len() != self.specs.len() {
                let stuck = self
                    .specs
                    .iter()
                    .find(|s| !done.contains(&s.id))
                    .map(|s| s.id.clone());
                return Err(DagError::Cycle {
                    dag: dag_id,
                    task: stuck.unwrap_or_default(),
                });
            }
            out
        };

        let mut tasks = Vec::with_capacity(order.len());
        let mut index = HashMap::new();
        for s in order {
            index.insert(s.id.clone(), tasks.len());
            tasks.push(TaskNode {
                id: s.id.clone(),
                kind: s.kind.clone(),
                trigger_rule: s.trigger_rule,
                retry: s.retry.unwrap_or(self.default_retry),
                timeout: s.timeout.or(self.default_timeout),
                pool: s.pool.clone(),
                pool_slots: s.pool_slots,
                priority_weight: s.priority_weight,
                group: s.group.clone(),
                doc: s.doc.clone(),
                upstream: upstream[&s.id].clone(),
                downstream: task_edges
                    .iter()
                    .filter(|(u, _)| u == &s.id)
                    .map(|(_, d)| d.clone())
                    .collect(),
                alerts: s.alerts.clone(),
                outlets: s.outlets.clone(),
                inlets: s.inlets.clone(),
                map: s.map.clone().or_else(|| group_map(s).cloned()),
                in_mapped_group: group_map(s).is_some(),
            });
        }
        Ok(Dag {
            id: self.id,
            description: self.description,
            schedule,
            bounds: RunBounds {
                start_date: self.start_date,
                end_date: self.end_date,
                catchup: self.catchup,
            },
            max_active_runs: self.max_active_runs,
            max_active_tasks: self.max_active_tasks,
            tags: self.tags,
            params: self.params,
            fileloc: self.fileloc,
            alerts: self.alerts,
            deadline: self.deadline,
            asset_schedule: self.asset_schedule,
            partition_of: self.partition_of,
            tasks,
            index,
            streams: self.streams,
        })
    }
}

/// Every DAG this binary knows, by id, plus the pools they use.
#[derive(Default, Clone)]
pub struct DagBag {
    dags: BTreeMap<String, Arc<Dag>>,
    pools: BTreeMap<String, u32>,
    default_alerts: Alerts,
    /// The source text of the files DAGs are defined in, by `fileloc`.
    sources: BTreeMap<&'static str, &'static str>,
}

impl DagBag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, mut dag: Dag) {
        dag.alerts = dag.alerts.or(&self.default_alerts);
        for t in &mut dag.tasks {
            if let Some(a) = &mut t.alerts {
                *a = a.or(&self.default_alerts);
            }
        }
        self.dags.insert(dag.id.clone(), Arc::new(dag));
    }

    /// The deployment's alerts: what every DAG of the bag, already added
    /// or added later, uses where its own definition is silent
    /// ([`Alerts::or`]). Call it before the bag is shared.
    pub fn default_alerts(&mut self, alerts: Alerts) {
        self.default_alerts = alerts;
        let dags = std::mem::take(&mut self.dags);
        for (_, dag) in dags {
            match Arc::try_unwrap(dag) {
                Ok(dag) => self.add(dag),
                Err(shared) => {
                    self.dags.insert(shared.id.clone(), shared);
                }
            }
        }
    }

    /// The source of the file at `fileloc` (as [`Dag::fileloc`] names it),
    /// carried in the binary so the API can show a DAG's code.
    pub fn source(&mut self, fileloc: &'static str, text: &'static str) {
        self.sources.insert(fileloc, text);
    }

    /// The source of a DAG's file, when the binary carries it.
    pub fn source_of(&self, dag: &Dag) -> Option<&'static str> {
        self.sources.get(dag.fileloc.as_str()).copied()
    }

    /// Declare a pool and its slot count; synced to the database at start-up.
    pub fn pool(&mut self, name: &str, slots: u32) {
        self.pools.insert(name.to_owned(), slots);
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Dag>> {
        self.dags.get(id)
    }

    pub fn dags(&self) -> impl Iterator<Item = &Arc<Dag>> {
        self.dags.values()
    }

    pub fn pools(&self) -> &BTreeMap<String, u32> {
        &self.pools
    }

    /// A bag with just one DAG (and every pool), for running it alone.
    pub fn only(&self, id: &str) -> DagBag {
        DagBag {
            dags: self
                .dags
                .iter()
                .filter(|(k, _)| k.as_str() == id)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pools: self.pools.clone(),
            default_alerts: self.default_alerts.clone(),
            sources: self.sources.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::task_fn;

    fn noop(id: &str) -> TaskSpec {
        TaskSpec::new(id, task_fn(|_| async { Ok(Value::Null) }))
    }

    #[test]
    fn a_dag_is_defined_where_its_builder_is_called() {
        let dag = Dag::builder("here").build().expect("valid");
        assert!(
            dag.fileloc.ends_with("orchestrator/src/dag.rs"),
            "{}",
            dag.fileloc
        );
        let moved = Dag::builder("there")
            .fileloc("elsewhere.rs")
            .build()
            .unwrap();
        assert_eq!(moved.fileloc, "elsewhere.rs");
    }

    #[test]
    fn a_mapped_groups_tasks_take_its_list_and_follow_each_other_by_index() {
        let mut b = Dag::builder("d").param("sports", serde_json::json!(["nfl"]));
        let list = b.task(noop("list"));
        b.mapped_group("per_sport", MapOver::Output("list".into()), 8);
        let fetch = b.group_task("per_sport", noop("fetch"));
        let check = b.group_task("per_sport", noop("check"));
        b.edge(&fetch, &check);
        let after = b.task(noop("after"));
        b.edge(&b.group("per_sport"), &after);
        let alone = b.task(noop("alone").expand_over_param("sports"));
        b.edge(&list, &alone);
        let dag = b.build().expect("valid");

        let fetch = dag.task("per_sport.fetch").unwrap();
        let check = dag.task("per_sport.check").unwrap();
        let expected = MapSpec {
            over: MapOver::Output("list".into()),
            max_length: 8,
        };
        assert_eq!(fetch.map.as_ref(), Some(&expected));
        assert_eq!(check.map.as_ref(), Some(&expected));
        // The list's task runs before the group's roots; the rest by index.
        assert_eq!(fetch.upstream, ["list"]);
        assert_eq!(check.upstream, ["per_sport.fetch"]);
        assert!(check.follows_index_of(fetch));
        assert!(!fetch.follows_index_of(dag.task("list").unwrap()));
        let after = dag.task("after").unwrap();
        assert_eq!(after.upstream, ["per_sport.check"]);
        assert!(!after.follows_index_of(check));
        // Two mapped tasks outside a group wait for each other as wholes.
        assert!(!dag.task("alone").unwrap().follows_index_of(fetch));
        assert_eq!(dag.structure()["tasks"][1]["mapped_group"], true);
    }

    #[test]
    fn a_mapped_group_is_refused_when_it_cannot_be_expanded() {
        let build = |f: fn(&mut DagBuilder)| {
            let mut b = Dag::builder("d").param("sports", serde_json::json!([]));
            f(&mut b);
            b.build().unwrap_err().to_string()
        };
        assert_eq!(
            build(|b| {
                b.mapped_group("g", MapOver::Param("sports".into()), 4);
                b.group_task("g", noop("t").expand_over_param("sports"));
            }),
            "DAG `d`: mapped group `g` has task `g.t` mapped on its own: the tasks of a mapped group are mapped over the group's list"
        );
        assert_eq!(
            build(|b| {
                b.mapped_group("g", MapOver::Param("teams".into()), 4);
                b.group_task("g", noop("t"));
            }),
            "DAG `d`: mapped group `g` maps over param `teams`, which the DAG does not declare"
        );
        assert_eq!(
            build(|b| b.mapped_group("g", MapOver::Param("sports".into()), 4)),
            "DAG `d`: mapped group `g` has no task"
        );
        assert_eq!(
            build(|b| {
                b.mapped_group("g", MapOver::Param("sports".into()), 0);
                b.group_task("g", noop("t"));
            }),
            "DAG `d`: mapped group `g` may have at most 0 items (max_map_length must be at least 1)"
        );
    }

    #[test]
    fn tasks_come_out_in_dependency_order() {
        let mut b = Dag::builder("d");
        let c = b.task(noop("c"));
        let a = b.task(noop("a"));
        let bb = b.task(noop("b"));
        b.chain(&[&a, &bb, &c]);
        let dag = b.build().unwrap();
        let ids: Vec<_> = dag.tasks().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(dag.task("c").unwrap().upstream, ["b"]);
    }

    #[test]
    fn group_edges_connect_to_the_groups_roots_and_leaves() {
        let mut b = Dag::builder("d");
        let start = b.task(noop("start"));
        let x = b.group_task("g", noop("x"));
        let y = b.group_task("g", noop("y"));
        let end = b.task(noop("end"));
        b.edge(&x, &y);
        let g = b.group("g");
        b.edge(&start, &g);
        b.edge(&g, &end);
        let dag = b.build().unwrap();
        assert_eq!(dag.task("g.x").unwrap().upstream, ["start"]);
        assert_eq!(dag.task("g.y").unwrap().upstream, ["g.x"]);
        assert_eq!(dag.task("end").unwrap().upstream, ["g.y"]);
        assert_eq!(dag.groups()["g"], ["g.x", "g.y"]);
    }

    #[test]
    fn cycles_unknown_nodes_and_duplicates_are_rejected() {
        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        let c = b.task(noop("c"));
        b.chain(&[&a, &c, &a]);
        assert!(matches!(b.build(), Err(DagError::Cycle { .. })));

        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        b.edge(&a, &Node::Task("ghost".into()));
        assert!(b.build().unwrap_err().to_string().contains("ghost"));

        let mut b = Dag::builder("d");
        b.task(noop("a"));
        b.task(noop("a"));
        assert!(matches!(b.build(), Err(DagError::DuplicateTask { .. })));
    }

    #[test]
    fn downstream_closure_includes_the_task_itself() {
        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        let x = b.task(noop("x"));
        let y = b.task(noop("y"));
        b.chain(&[&a, &x, &y]);
        let dag = b.build().unwrap();
        assert_eq!(dag.downstream_closure("x"), ["x", "y"]);
    }

    #[test]
    fn exponential_backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            retries: 5,
            delay: Duration::from_secs(1),
            exponential: true,
            max_delay: Duration::from_secs(5),
        };
        let delays: Vec<_> = (1..=5).map(|n| p.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn run_conf_overrides_param_defaults() {
        let dag = Dag::builder("d")
            .param("sport", Value::from("nfl"))
            .param("days", Value::from(1))
            .build()
            .unwrap();
        let p = dag.resolve_params(&serde_json::json!({"days": 7}));
        assert_eq!(p["sport"], "nfl");
        assert_eq!(p["days"], 7);
    }
}
