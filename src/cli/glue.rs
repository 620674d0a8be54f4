//! `betflow glue …`: BetFlow's Spark job scripts on AWS Glue.

use std::process::ExitCode;

use ::dags::transform::spark::{deploy, news_rules, schemas, scripts};
use anyhow::Result;
use clap::Subcommand;
use orchestrator::setting::ProcessEnv;

use super::{pipeline_settings, usage};
use crate::settings::Settings;

#[derive(Subcommand)]
pub enum GlueCommand {
    /// Upload the job scripts to s3://{lake bucket}/glue/scripts/{version}/ and create or update one Glue job per transform.
    Deploy {
        /// Say what would be uploaded, created and updated; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What is deployed against what this binary carries.
    Status,
    /// Print the table definitions the scripts read (glue/schemas.json).
    Schemas,
    /// Print the team phrases, lexicon and text bounds the news scripts read (glue/news.json).
    NewsRules,
}

pub async fn run(settings: &Settings, cmd: GlueCommand) -> Result<ExitCode> {
    match cmd {
        GlueCommand::Schemas => {
            outln!("{}", schemas::export().trim_end());
            return Ok(ExitCode::SUCCESS);
        }
        GlueCommand::NewsRules => {
            outln!("{}", news_rules::export()?.trim_end());
            return Ok(ExitCode::SUCCESS);
        }
        GlueCommand::Deploy { dry_run } => {
            let lake = pipeline_settings(settings, None)?.lake;
            let steps = deploy::deploy(&lake, &ProcessEnv, dry_run)
                .await
                .map_err(deploy_error)?;
            print(&steps)?;
            if dry_run {
                outln!(
                    "dry run: nothing was changed (scripts {})",
                    scripts::version()
                );
            }
        }
        GlueCommand::Status => {
            let lake = pipeline_settings(settings, None)?.lake;
            let steps = deploy::status(&lake, &ProcessEnv)
                .await
                .map_err(deploy_error)?;
            print(&steps)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(steps: &[deploy::Step]) -> Result<()> {
    let width = steps.iter().map(|s| s.target.len()).max().unwrap_or(0);
    for step in steps {
        outln!("{:<width$}  {}", step.target, step.action);
    }
    Ok(())
}

/// Settings the user must fix are usage errors (exit 2); the rest are
/// failures of S3 or Glue.
fn deploy_error(e: deploy::DeployError) -> anyhow::Error {
    match e {
        deploy::DeployError::Setting(_) | deploy::DeployError::NoBucket => usage(e.to_string()),
        other => other.into(),
    }
}
