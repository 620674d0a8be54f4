//! The `dags` crate against real servers on loopback: source clients
//! against a local server of the recorded payloads, the lake on a local
//! directory and moto's S3, Glue jobs on moto (also with moto checking our
//! signatures, [`moto_auth`]), Iceberg commits read back by pyiceberg, the
//! gold serving load, the news parser and feed client.

mod moto_auth;
mod serving_db;
mod support;

mod alerts;
mod fuzz;
mod glue;
mod glue_deploy;
mod glue_news;
mod glue_transform;
mod gold_serving;
mod iceberg;
mod lake;
mod news;
mod s3_faults;
mod sources;
