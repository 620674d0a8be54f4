//! Run and task-instance states, named and stored exactly as Airflow's so its
//! users read our tables, CLI output and API without a glossary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// State of a DAG run: queued → running → success | failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 4] = [Self::Queued, Self::Running, Self::Success, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

/// State of one task instance. `None` is Airflow's "no status": created with
/// the run, not yet considered by the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    None,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    UpForReschedule,
    UpstreamFailed,
    Skipped,
    Removed,
}

impl TaskState {
    pub const ALL: [TaskState; 11] = [
        Self::None,
        Self::Scheduled,
        Self::Queued,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::UpForRetry,
        Self::UpForReschedule,
        Self::UpstreamFailed,
        Self::Skipped,
        Self::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::UpForRetry => "up_for_retry",
            Self::UpForReschedule => "up_for_reschedule",
            Self::UpstreamFailed => "upstream_failed",
            Self::Skipped => "skipped",
            Self::Removed => "removed",
        }
    }

    /// A finished task instance never changes state again unless cleared.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::UpstreamFailed | Self::Skipped | Self::Removed
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

/// State of one process's supervision of a long-running stream task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Starting,
    Running,
    /// Failed; the supervisor restarts it after a backoff.
    Restarting,
    /// Its process shut down (or gave up); the row is kept as history.
    Stopped,
}

impl StreamState {
    pub const ALL: [StreamState; 4] = [
        Self::Starting,
        Self::Running,
        Self::Restarting,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Stopped => "stopped",
        }
    }
}

/// Each state enum reads from and prints as its `as_str` name. States are
/// stored as `TEXT` columns spelled by `as_str` (the migrations'
/// `CHECK` constraints list the same names), so read models decode them
/// straight into the enums, and queries may bind them, as plain text: no
/// Postgres enum type to migrate, and no `"running"` literals to misspell
/// in the callers. A name the enum does not know is a decode error rather
/// than a state silently read as something else.
macro_rules! text_column {
    ($state:ty) => {
        impl FromStr for $state {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| UnknownState(s.to_owned()))
            }
        }

        impl fmt::Display for $state {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $state {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $state {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $state {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let name = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(name.parse::<$state>()?)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $state {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'_, sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}

text_column!(RunState);
text_column!(TaskState);
text_column!(StreamState);

/// When a task may run, given the states of its direct upstream tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    OneSuccess,
    OneFailed,
    NoneFailed,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllSuccess => "all_success",
            Self::AllFailed => "all_failed",
            Self::AllDone => "all_done",
            Self::OneSuccess => "one_success",
            Self::OneFailed => "one_failed",
            Self::NoneFailed => "none_failed",
            Self::NoneSkipped => "none_skipped",
            Self::Always => "always",
        }
    }
}

/// What the scheduler does with a waiting task instance after looking at its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Upstreams are not settled yet.
    Wait,
    /// Ready: queue it.
    Run,
    /// Will never run because an upstream was skipped (or, for failure rules, nothing failed).
    Skip,
    /// Will never run because an upstream failed.
    UpstreamFailed,
}

/// Counts of the direct upstream task instances by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamSummary {
    pub total: usize,
    pub success: usize,
    pub skipped: usize,
    pub failed: usize,
    pub upstream_failed: usize,
}

impl UpstreamSummary {
    pub fn from_states<I: IntoIterator<Item = TaskState>>(states: I) -> Self {
        let mut s = Self::default();
        for st in states {
            s.total += 1;
            match st {
                TaskState::Success => s.success += 1,
                TaskState::Skipped => s.skipped += 1,
                TaskState::Failed => s.failed += 1,
                TaskState::UpstreamFailed => s.upstream_failed += 1,
                // `removed` counts as done-and-harmless, like a skip without propagation.
                TaskState::Removed => s.success += 1,
                _ => {}
            }
        }
        s
    }

    fn done(&self) -> usize {
        self.success + self.skipped + self.failed + self.upstream_failed
    }

    fn failures(&self) -> usize {
        self.failed + self.upstream_failed
    }

    fn all_done(&self) -> bool {
        self.done() == self.total
    }
}

/// Airflow's trigger-rule semantics, including how skips propagate: a skipped
/// upstream skips an `all_success` task, a failed one marks it `upstream_failed`.
pub fn evaluate(rule: TriggerRule, up: UpstreamSummary) -> Decision {
    if up.total == 0 {
        return Decision::Run;
    }
    match rule {
        TriggerRule::Always => Decision::Run,
        TriggerRule::AllSuccess => {
            if up.failures() > 0 {
                Decision::UpstreamFailed
            } else if up.skipped > 0 {
                Decision::Skip
            } else if up.success == up.total {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::AllFailed => {
            if up.success + up.skipped > 0 {
                Decision::Skip
            } else if up.failures() == up.total {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::AllDone => {
            if up.all_done() {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::OneSuccess => {
            if up.success > 0 {
                Decision::Run
            } else if !up.all_done() {
                Decision::Wait
            } else if up.skipped == up.total {
                Decision::Skip
            } else {
                Decision::UpstreamFailed
            }
        }
        TriggerRule::OneFailed => {
            if up.failures() > 0 {
                Decision::Run
            } else if up.all_done() {
                Decision::Skip
            } else {
                Decision::Wait
            }
        }
        TriggerRule::NoneFailed => {
            if up.failures() > 0 {
                Decision::UpstreamFailed
            } else if up.all_done() {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
        TriggerRule::NoneSkipped => {
            if up.skipped > 0 {
                Decision::Skip
            } else if up.all_done() {
                Decision::Run
            } else {
                Decision::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    fn decide(rule: TriggerRule, states: &[TaskState]) -> Decision {
        evaluate(rule, UpstreamSummary::from_states(states.iter().copied()))
    }

    #[test]
    fn tasks_without_upstreams_run_at_once() {
        assert_eq!(decide(TriggerRule::AllSuccess, &[]), Decision::Run);
    }

    #[test]
    fn all_success_waits_then_runs_and_propagates_skips_and_failures() {
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Running]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Success]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Skipped]),
            Decision::Skip
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Skipped, Failed]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Running, UpstreamFailed]),
            Decision::UpstreamFailed
        );
    }

    #[test]
    fn all_failed_runs_only_when_every_upstream_failed() {
        assert_eq!(
            decide(TriggerRule::AllFailed, &[Failed, UpstreamFailed]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::AllFailed, &[Failed, Running]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::AllFailed, &[Failed, Success]),
            Decision::Skip
        );
    }

    #[test]
    fn all_done_ignores_outcomes() {
        assert_eq!(
            decide(TriggerRule::AllDone, &[Failed, Skipped, Success]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::AllDone, &[Failed, UpForRetry]),
            Decision::Wait
        );
    }

    #[test]
    fn one_success_and_one_failed_fire_early() {
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Success, Running]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Failed, Skipped]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Skipped, Skipped]),
            Decision::Skip
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Failed, Running]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Success, Skipped]),
            Decision::Skip
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Success, Queued]),
            Decision::Wait
        );
    }

    #[test]
    fn none_failed_tolerates_skips_and_none_skipped_tolerates_failures() {
        assert_eq!(
            decide(TriggerRule::NoneFailed, &[Success, Skipped]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::NoneFailed, &[Failed, Skipped]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            decide(TriggerRule::NoneSkipped, &[Success, Failed]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::NoneSkipped, &[Success, Skipped]),
            Decision::Skip
        );
    }

    #[test]
    fn always_runs_even_while_upstreams_run() {
        assert_eq!(
            decide(TriggerRule::Always, &[Running, Failed]),
            Decision::Run
        );
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for st in TaskState::ALL {
            assert_eq!(st.as_str().parse::<TaskState>().unwrap(), st);
        }
        for st in RunState::ALL {
            assert_eq!(st.as_str().parse::<RunState>().unwrap(), st);
        }
        for st in StreamState::ALL {
            assert_eq!(st.as_str().parse::<StreamState>().unwrap(), st);
        }
        assert!("bogus".parse::<TaskState>().is_err());
    }

    #[test]
    fn serde_spells_states_as_stored() {
        // API clients and `--json` output read these exact strings.
        for st in TaskState::ALL {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
            assert_eq!(st.to_string(), st.as_str());
        }
        for st in RunState::ALL {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
            assert_eq!(st.to_string(), st.as_str());
        }
        for st in StreamState::ALL {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert_eq!(TaskState::UpForRetry.as_str(), "up_for_retry");
    }

    #[test]
    fn states_are_text_columns() {
        use sqlx::postgres::PgHasArrayType;
        use sqlx::{Postgres, Type};
        assert!(<TaskState as Type<Postgres>>::compatible(
            &<String as Type<Postgres>>::type_info()
        ));
        assert_eq!(
            <RunState as Type<Postgres>>::type_info(),
            <&str as Type<Postgres>>::type_info()
        );
        assert_eq!(
            <StreamState as PgHasArrayType>::array_type_info(),
            <&str as PgHasArrayType>::array_type_info()
        );
    }
}
