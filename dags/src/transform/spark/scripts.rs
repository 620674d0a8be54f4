//! The job scripts this binary carries, and their version: the first 12
//! hex digits of a SHA-256 over every file, so a deployment and a binary
//! agree exactly when their scripts do.

use sha2::{Digest, Sha256};

/// The module every job imports.
pub const COMMON: &str = include_str!("../../../../glue/betflow_glue.py");
pub const COMMON_NAME: &str = "betflow_glue.py";

/// The news jobs' parsing, team matching and scoring: plain Python (no
/// Spark), so a test can hold it against the Rust code directly.
pub const NEWS: &str = include_str!("../../../../glue/betflow_news.py");
pub const NEWS_NAME: &str = "betflow_news.py";

/// The modules beside the job scripts (`--py-files` / `--extra-py-files`).
pub const MODULES: [&str; 2] = [COMMON_NAME, NEWS_NAME];

/// `glue/schemas.json` ([`super::schemas::export`]).
pub const SCHEMAS: &str = include_str!("../../../../glue/schemas.json");
pub const SCHEMAS_NAME: &str = "schemas.json";

/// `glue/news.json` ([`super::news_rules::export`]), read from beside
/// the schemas.
pub const NEWS_RULES: &str = include_str!("../../../../glue/news.json");
pub const NEWS_RULES_NAME: &str = "news.json";

/// One transform's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The transform task it runs (`bronze_weather`), also its Glue job key.
    pub key: &'static str,
    pub text: &'static str,
    /// The tables it stages, committed in this order.
    pub tables: &'static [&'static str],
}

impl Job {
    /// Its path under a scripts prefix: `jobs/{key}.py`.
    pub fn path(&self) -> String {
        format!("jobs/{}.py", self.key)
    }
}

/// Every transform with a script. Transforms missing here run in polars
/// under `BETFLOW_TRANSFORM_ENGINE=spark` (and as a Glue job of the user's
/// under `glue`): see docs/glue.md#coverage.
pub const JOBS: &[Job] = &[
    Job {
        key: "bronze_games",
        text: include_str!("../../../../glue/jobs/bronze_games.py"),
        tables: &["bronze.games"],
    },
    Job {
        key: "silver_games",
        text: include_str!("../../../../glue/jobs/silver_games.py"),
        tables: &["silver.games", "silver.game_periods"],
    },
    Job {
        key: "bronze_odds",
        text: include_str!("../../../../glue/jobs/bronze_odds.py"),
        tables: &["bronze.odds"],
    },
    Job {
        key: "silver_odds",
        text: include_str!("../../../../glue/jobs/silver_odds.py"),
        tables: &["silver.odds"],
    },
    Job {
        key: "bronze_weather",
        text: include_str!("../../../../glue/jobs/bronze_weather.py"),
        tables: &["bronze.weather"],
    },
    Job {
        key: "silver_weather",
        text: include_str!("../../../../glue/jobs/silver_weather.py"),
        tables: &["silver.weather"],
    },
    Job {
        key: "bronze_news",
        text: include_str!("../../../../glue/jobs/bronze_news.py"),
        tables: &["bronze.news"],
    },
    Job {
        key: "silver_news",
        text: include_str!("../../../../glue/jobs/silver_news.py"),
        tables: &["silver.news"],
    },
];

/// The script of transform `key`, if BetFlow ships one.
pub fn job(key: &str) -> Option<&'static Job> {
    JOBS.iter().find(|j| j.key == key)
}

/// Every file of a scripts prefix: (path under it, contents).
pub fn files() -> Vec<(String, &'static str)> {
    let mut files = vec![
        (COMMON_NAME.to_owned(), COMMON),
        (NEWS_NAME.to_owned(), NEWS),
        (SCHEMAS_NAME.to_owned(), SCHEMAS),
        (NEWS_RULES_NAME.to_owned(), NEWS_RULES),
    ];
    files.extend(JOBS.iter().map(|j| (j.path(), j.text)));
    files
}

/// The scripts' version (see the module's doc).
pub fn version() -> String {
    let mut hash = Sha256::new();
    for (path, text) in files() {
        hash.update(path.as_bytes());
        hash.update([0]);
        hash.update(text.len().to_le_bytes());
        hash.update(text.as_bytes());
    }
    let digest = hash.finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Where a version's files live in the lake (`glue/scripts/{version}/`).
pub fn prefix(version: &str) -> String {
    format!("glue/scripts/{version}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_twelve_hex_digits_and_stable() {
        let v = version();
        assert_eq!(v.len(), 12);
        assert!(v.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(v, version());
    }

    #[test]
    fn every_job_stages_tables_the_schemas_know() {
        let schemas: serde_json::Value = serde_json::from_str(SCHEMAS).unwrap();
        for job in JOBS {
            for table in job.tables {
                assert!(
                    schemas["tables"].get(*table).is_some(),
                    "{}: {table}",
                    job.key
                );
            }
        }
    }
}
