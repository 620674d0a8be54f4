//! Where the lake and the warehouse are, resolved once when the binary
//! starts and handed to every task that opens them, so a bad value stops
//! the start (naming the variable) instead of failing tasks one by one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator::setting::{Lookup, SettingError};

use crate::iceberg::catalog::{GlueCatalogConfig, CATALOG_ENV, WAREHOUSE_DIR};
use crate::iceberg::{IcebergError, Warehouse};
use crate::lake::{LakeError, LocalStore, ObjectStore, S3Config, S3Store};

/// The catalog the warehouse's tables are registered in.
#[derive(Debug, Clone)]
pub enum CatalogSetting {
    /// iceberg-rust's SQL catalog in the deployment's Postgres (default).
    Sql,
    /// The AWS Glue Data Catalog; needs the lake in S3.
    Glue(GlueCatalogConfig),
}

/// The lake and the warehouse of one deployment.
#[derive(Debug, Clone)]
pub struct LakeSettings {
    /// `{home}/lake`: the lake and its warehouse when no bucket is set.
    pub local_dir: PathBuf,
    /// The bucket, when the lake is in S3 (`BETFLOW_S3_BUCKET`).
    pub s3: Option<S3Config>,
    pub catalog: CatalogSetting,
}

impl LakeSettings {
    /// A lake under `{home}/lake` with the SQL catalog: what a laptop gets
    /// with no configuration at all.
    pub fn local(home: &Path) -> Self {
        LakeSettings {
            local_dir: home.join("lake"),
            s3: None,
            catalog: CatalogSetting::Sql,
        }
    }

    /// [`S3Config::resolve`], `BETFLOW_ICEBERG_CATALOG` (`sql` or `glue`)
    /// and, for Glue, [`GlueCatalogConfig::resolve`].
    pub fn resolve(home: &Path, env: &impl Lookup) -> Result<Self, SettingError> {
        let s3: Option<S3Config> = S3Config::resolve(env)?;
        let kind: String = env.get(CATALOG_ENV).unwrap_or_else(|| "sql".to_owned());
        let catalog = match kind.to_ascii_lowercase().as_str() {
            "sql" => CatalogSetting::Sql,
            "glue" if s3.is_none() => {
                return Err(SettingError::invalid(
                    CATALOG_ENV,
                    &kind,
                    "glue needs the lake in S3 (set BETFLOW_S3_BUCKET): Glue tables point at S3 locations",
                ))
            }
            "glue" => CatalogSetting::Glue(GlueCatalogConfig::resolve(env)?),
            _ => {
                return Err(SettingError::invalid(
                    CATALOG_ENV,
                    &kind,
                    "is not a catalog BetFlow knows: use sql or glue",
                ))
            }
        };
        Ok(LakeSettings {
            local_dir: home.join("lake"),
            s3,
            catalog,
        })
    }

    /// The raw lake: the bucket, else the local directory.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, LakeError> {
        match &self.s3 {
            Some(config) => Ok(Arc::new(S3Store::new(config)?)),
            None => Ok(Arc::new(LocalStore::new(self.local_dir.clone()))),
        }
    }

    /// The warehouse beside the lake, in the configured catalog; commits
    /// to one table queue on `pool`'s database.
    pub async fn warehouse(&self, pool: &sqlx::PgPool) -> Result<Warehouse, IcebergError> {
        match (&self.catalog, &self.s3) {
            (CatalogSetting::Sql, Some(s3)) => Warehouse::open_s3(pool, s3).await,
            (CatalogSetting::Sql, None) => {
                Warehouse::open(pool, &self.local_dir.join(WAREHOUSE_DIR)).await
            }
            (CatalogSetting::Glue(glue), Some(s3)) => {
                Ok(Warehouse::open_glue(s3, glue).await?.queued_on(pool))
            }
            (CatalogSetting::Glue(_), None) => Err(IcebergError::Config(format!(
                "{CATALOG_ENV}=glue needs the lake in S3 (set BETFLOW_S3_BUCKET)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator::setting::Vars;

    use super::*;

    #[test]
    fn no_settings_is_a_local_lake_under_home() {
        let lake = LakeSettings::resolve(Path::new("/srv/bf"), &Vars::default()).unwrap();
        assert_eq!(lake.local_dir, Path::new("/srv/bf/lake"));
        assert!(lake.s3.is_none());
        assert!(matches!(lake.catalog, CatalogSetting::Sql));
    }

    #[test]
    fn a_bucket_without_keys_names_the_missing_key() {
        let env = Vars::new([("BETFLOW_S3_BUCKET", "lake"), ("AWS_ACCESS_KEY_ID", "a")]);
        let err = LakeSettings::resolve(Path::new("/h"), &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AWS_SECRET_ACCESS_KEY is not set"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let bad_style = Vars::new([
            ("BETFLOW_S3_BUCKET", "lake"),
            ("BETFLOW_S3_PATH_STYLE", "sometimes"),
        ]);
        let err = LakeSettings::resolve(Path::new("/h"), &bad_style).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BETFLOW_S3_PATH_STYLE=\"sometimes\""),
            "{err}"
        );

        let glue_without_s3 = Vars::new([("BETFLOW_ICEBERG_CATALOG", "glue")]);
        let err = LakeSettings::resolve(Path::new("/h"), &glue_without_s3).unwrap_err();
        assert!(err.to_string().contains("needs the lake in S3"), "{err}");

        let unknown = Vars::new([("BETFLOW_ICEBERG_CATALOG", "hive")]);
        let err = LakeSettings::resolve(Path::new("/h"), &unknown).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BETFLOW_ICEBERG_CATALOG=\"hive\""),
            "{err}"
        );
    }

    #[test]
    fn path_style_defaults_on_with_an_endpoint() {
        let env = Vars::new([
            ("BETFLOW_S3_BUCKET", "lake"),
            ("BETFLOW_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let s3 = LakeSettings::resolve(Path::new("/h"), &env)
            .unwrap()
            .s3
            .unwrap();
        assert!(s3.path_style);
        assert_eq!(s3.region, "eu-west-1");
    }
}
