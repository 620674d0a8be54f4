//! AWS Glue's JSON 1.1 API, the few operations BetFlow calls: job runs for
//! [`crate::glue_job`], databases and tables for the Glue Data Catalog
//! (`iceberg/glue_catalog.rs`).
//!
//! The protocol is small enough to speak directly: `POST /` to
//! `https://glue.{region}.amazonaws.com` with `X-Amz-Target:
//! AWSGlue.{Operation}`, a JSON body with Glue's PascalCase member names,
//! SigV4 for service `glue` ([`crate::aws::AwsSigner`]). Errors come back as
//! `{"__type": "…Exception", "message": "…"}`, parsed into a
//! [`GlueApiError`] whose [`GlueErrorKind`] tells callers what to do.
//!
//! The request and response shapes ([`jobs`], [`tables`]) model only the
//! members BetFlow reads or writes; the rest of an answer is ignored.

mod client;
mod error;
pub mod jobs;
pub mod tables;

pub use client::GlueClient;
pub use error::{GlueApiError, GlueErrorKind};
