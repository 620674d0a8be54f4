//! Stand-ins for the real tasks, so the DAGs can have their final shape now.
//!
//! One generic operator ([`Step`]) and one sensor ([`Ready`]) instead of a
//! copy per task: each logs what the real task will do for its data
//! interval and returns a small JSON output computed only from the context
//! (so reruns and tests are deterministic). Downstream steps read their
//! upstreams' outputs, which exercises XCom passing end to end; the
//! `sports` param works already, because a step bound to a sport that the
//! run does not select skips itself.

use std::collections::BTreeSet;

use async_trait::async_trait;
use orchestrator::{Node, Sensor, Task, TaskContext, TaskError, TaskResult, TaskSpec};
use serde_json::{json, Value};

use crate::{sport, sports_day, SPORTS};

/// Whose output a step reads.
#[derive(Debug, Clone)]
enum Input {
    /// One upstream task, by full id.
    Task(String),
    /// `{sport}.{suffix}` of every sport the run selects: the fan-in after
    /// per-sport groups, whose unselected members were skipped and left no output.
    EachSelectedSport(&'static str),
}

/// A placeholder operator: logs `what` it will do and returns
/// `{"sport"?, "sports"?, "date", "records"}` where `records` sums the
/// `records` of its inputs (all zero until real sources arrive).
#[derive(Debug, Clone)]
pub struct Step {
    what: String,
    sport: Option<&'static str>,
    inputs: Vec<Input>,
}

impl Step {
    /// A step that will do `what` (one line, shown in the log and as the task's doc).
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            sport: None,
            inputs: Vec::new(),
        }
    }

    /// Bind the step to one sport: it skips itself when the run's `sports`
    /// param leaves that sport out (and the skip flows down its group).
    pub fn sport(mut self, key: &'static str) -> Self {
        self.sport = Some(key);
        self
    }

    /// Read the output of the upstream task `node`. It must be a direct
    /// upstream: the executor hands a task only its direct upstreams' outputs.
    ///
    /// # Panics
    /// When `node` is a group: read its leaf tasks instead.
    pub fn reads(mut self, node: &Node) -> Self {
        match node {
            Node::Task(id) => self.inputs.push(Input::Task(id.clone())),
            Node::Group(g) => panic!("a step reads tasks, not the group `{g}`: read its leaves"),
        }
        self
    }

    /// Read `{sport}.{suffix}` for every sport the run selects.
    pub fn reads_each_sport(mut self, suffix: &'static str) -> Self {
        self.inputs.push(Input::EachSelectedSport(suffix));
        self
    }

    /// The task spec running this step as task `id`, with `what` as its doc.
    pub fn spec(self, id: &str) -> TaskSpec {
        let doc = self.what.clone();
        TaskSpec::new(id, std::sync::Arc::new(self)).doc(doc)
    }
}

#[async_trait]
impl Task for Step {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let selected = selected_sports(&ctx)?;
        if let Some(key) = self.sport {
            if !selected.iter().any(|s| s == key) {
                return Err(TaskError::skip(format!(
                    "sport `{key}` is not in this run's `sports` param {selected:?}"
                )));
            }
        }
        let mut records: u64 = 0;
        for input in &self.inputs {
            let ids = match input {
                Input::Task(id) => vec![id.clone()],
                Input::EachSelectedSport(suffix) => {
                    selected.iter().map(|s| format!("{s}.{suffix}")).collect()
                }
            };
            for id in ids {
                let output: Value = ctx.upstream(&id)?;
                records += input_records(&output);
            }
        }
        let date = sports_day(ctx.data_interval.start).to_string();
        let scope = self.sport.map_or_else(
            || format!("sports {}", selected.join(",")),
            |s| s.to_owned(),
        );
        ctx.log.info(format!(
            "{} for {scope} on {date} (data interval {} to {}): placeholder, no data moved yet; {records} input records",
            self.what,
            ctx.data_interval.start.to_rfc3339(),
            ctx.data_interval.end.to_rfc3339(),
        ));
        Ok(match self.sport {
            Some(key) => json!({"sport": key, "date": date, "records": records}),
            None => json!({"sports": selected, "date": date, "records": records}),
        })
    }
}

/// The records an upstream output carries: a placeholder's `records`, or a
/// real validate task's `games` (the valid records it passes on).
fn input_records(output: &Value) -> u64 {
    output
        .get("records")
        .or_else(|| output.get("games"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A placeholder sensor: logs what it will wait for and holds at once.
/// The real ones look for the day's partition (or upstream DAG's run) and
/// return `false` until it exists; the orchestrator pokes them again
/// without holding a worker slot.
#[derive(Debug, Clone)]
pub struct Ready {
    what: String,
}

impl Ready {
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }

    /// A sensor task `id` poked every minute for up to two hours (the
    /// original pipeline's settings), with `what` as its doc.
    pub fn spec(self, id: &str) -> TaskSpec {
        let doc = self.what.clone();
        TaskSpec::sensor(id, std::sync::Arc::new(self), POKE_INTERVAL, SENSOR_TIMEOUT).doc(doc)
    }
}

/// How often a sensor pokes.
pub const POKE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a sensor waits before it fails the run.
pub const SENSOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

#[async_trait]
impl Sensor for Ready {
    async fn poke(&self, ctx: TaskContext) -> Result<bool, TaskError> {
        ctx.log.info(format!(
            "waiting for {} on {}: placeholder, the condition holds at once",
            self.what,
            sports_day(ctx.data_interval.start),
        ));
        Ok(true)
    }
}

/// The run's `sports` param, in [`SPORTS`] order, checked against that table
/// so a typo in a run's conf fails loudly instead of silently selecting nothing.
pub fn selected_sports(ctx: &TaskContext) -> Result<Vec<String>, TaskError> {
    let wanted: Vec<String> = ctx.param("sports")?;
    let unknown: BTreeSet<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|s| sport(s).is_none())
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = SPORTS.iter().map(|s| s.key).collect();
        return Err(TaskError::msg(format!(
            "unknown sport(s) {unknown:?} in the `sports` param; known: {}",
            known.join(", ")
        )));
    }
    // Table order and no duplicates, whatever the conf says.
    Ok(SPORTS
        .iter()
        .filter(|s| wanted.iter().any(|w| w == s.key))
        .map(|s| s.key.to_owned())
        .collect())
}
