//! Job-run shapes: StartJobRun, GetJobRun and BatchStopJobRun, with Glue's
//! member names (botocore's `glue/2017-03-31/service-2.json`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartJobRunRequest<'a> {
    pub job_name: &'a str,
    /// Over the job's DefaultArguments, for this run only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartJobRunResponse {
    pub job_run_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetJobRunRequest<'a> {
    pub job_name: &'a str,
    pub run_id: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetJobRunResponse {
    pub job_run: Option<JobRun>,
}

/// One run of a job, as far as BetFlow reports on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRun {
    pub id: Option<String>,
    /// Glue's own retry count of this run (the job's MaxRetries).
    #[serde(default)]
    pub attempt: i32,
    /// STARTING, RUNNING, STOPPING, STOPPED, SUCCEEDED, FAILED, TIMEOUT,
    /// ERROR, WAITING or EXPIRED. Kept as text so a state Glue adds later
    /// still shows in logs instead of failing the poll.
    pub job_run_state: Option<String>,
    /// Epoch seconds, fractional ([`epoch_seconds`]).
    pub started_on: Option<f64>,
    pub completed_on: Option<f64>,
    /// The run's arguments: the job's defaults with StartJobRun's on top.
    pub arguments: Option<HashMap<String, String>>,
    pub error_message: Option<String>,
    /// Seconds the run consumed resources.
    #[serde(default)]
    pub execution_time: i32,
    /// Billed DPU-seconds, for flexible and auto-scaled runs only.
    #[serde(rename = "DPUSeconds")]
    pub dpu_seconds: Option<f64>,
}

/// The one state a run succeeds in.
pub const SUCCEEDED: &str = "SUCCEEDED";

/// Whether a run in `state` is over. STOPPING and WAITING are not: the
/// first ends in STOPPED, the second is a queued run that will start.
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "SUCCEEDED" | "FAILED" | "ERROR" | "TIMEOUT" | "STOPPED" | "EXPIRED"
    )
}

/// A Glue timestamp (JSON epoch seconds, fractional) to the millisecond.
pub fn epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis((seconds * 1000.0).round() as i64)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStopJobRunRequest<'a> {
    pub job_name: &'a str,
    pub job_run_ids: Vec<&'a str>,
}

/// Glue answers 200 even when it refuses to stop a run: the refusals are
/// listed here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStopJobRunResponse {
    #[serde(default)]
    pub errors: Vec<BatchStopJobRunError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStopJobRunError {
    pub job_run_id: Option<String>,
    pub error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDetail {
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{epoch_seconds, is_terminal, GetJobRunResponse, StartJobRunRequest};
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A GetJobRun answer as moto 5.2 and Glue send it: fractional epoch
    /// seconds, `DPUSeconds`, members BetFlow does not read.
    #[test]
    fn job_runs_decode_from_glue_json() {
        let answer = json!({"JobRun": {
            "Id": "jr_1", "Attempt": 1, "JobName": "j", "JobRunState": "SUCCEEDED",
            "StartedOn": 1_725_768_000.25, "CompletedOn": 1_725_768_060,
            "ExecutionTime": 60, "DPUSeconds": 120.5, "WorkerType": "G.1X",
            "Arguments": {"--run_id": "r1"}, "PredecessorRuns": []
        }});
        let run = serde_json::from_value::<GetJobRunResponse>(answer)
            .expect("decodes")
            .job_run
            .expect("run");
        assert_eq!(run.job_run_state.as_deref(), Some("SUCCEEDED"));
        assert_eq!((run.attempt, run.execution_time), (1, 60));
        assert_eq!(run.dpu_seconds, Some(120.5));
        let started = run.started_on.and_then(epoch_seconds).expect("started");
        assert_eq!(started.to_rfc3339(), "2024-09-08T04:00:00.250+00:00");
        assert_eq!(run.arguments.expect("arguments")["--run_id"], "r1");
        // A run still starting has almost nothing.
        let starting =
            serde_json::from_value::<GetJobRunResponse>(json!({"JobRun": {"Id": "jr_2"}}))
                .expect("decodes")
                .job_run
                .expect("run");
        assert_eq!((starting.attempt, starting.dpu_seconds), (0, None));
    }

    #[test]
    fn only_final_states_are_terminal() {
        for state in [
            "SUCCEEDED",
            "FAILED",
            "ERROR",
            "TIMEOUT",
            "STOPPED",
            "EXPIRED",
        ] {
            assert!(is_terminal(state), "{state}");
        }
        for state in ["STARTING", "RUNNING", "STOPPING", "WAITING", "NEW_STATE"] {
            assert!(!is_terminal(state), "{state}");
        }
    }

    #[test]
    fn requests_use_glues_member_names() {
        let request = StartJobRunRequest {
            job_name: "j",
            arguments: BTreeMap::from([("--run_id".to_owned(), "r1".to_owned())]),
        };
        assert_eq!(
            serde_json::to_value(&request).expect("encodes"),
            json!({"JobName": "j", "Arguments": {"--run_id": "r1"}})
        );
    }
}

/// A job's definition as BetFlow deploys it (CreateJob, UpdateJob's
/// JobUpdate, GetJob's Job share these members).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub role: String,
    pub command: JobCommand,
    #[serde(default)]
    pub default_arguments: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glue_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_workers: Option<i32>,
    /// Minutes before Glue stops a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobCommand {
    /// `glueetl` for Spark jobs.
    pub name: String,
    pub script_location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJobRequest<'a> {
    pub name: &'a str,
    #[serde(flatten)]
    pub definition: &'a JobDefinition,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateJobRequest<'a> {
    pub job_name: &'a str,
    pub job_update: &'a JobDefinition,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetJobRequest<'a> {
    pub job_name: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetJobResponse {
    pub job: Option<JobDefinition>,
}

/// CreateJob's and UpdateJob's answers (the job's name); read to check
/// the call, not used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobNameResponse {
    #[serde(alias = "JobName")]
    pub name: Option<String>,
}
