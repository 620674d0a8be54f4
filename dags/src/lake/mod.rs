//! The raw lake: one object-store interface over a local directory or S3.
