//! The Iceberg catalog: iceberg-rust's SQL catalog on BetFlow's own
//! Postgres (tables `iceberg_tables` and `iceberg_namespace_properties`,
//! the JDBC-catalog layout other engines' SQL catalogs read), with the
//! warehouse beside the raw lake: `{lake}/warehouse` on the local
//! filesystem, or `s3://{bucket}/warehouse` when the lake is in S3.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use iceberg::io::{
    LocalFsStorageFactory, StorageFactory, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS,
    S3_REGION, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN,
};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalStorageFactory;
use sqlx::ConnectOptions;

use super::IcebergError;
use crate::lake::S3Config;

/// The catalog name every BetFlow table is registered under.
pub const CATALOG_NAME: &str = "betflow";

/// Connections the catalog keeps open per process: commits are short and
/// few, and the scheduler's own pool must not be starved.
const POOL_SIZE: &str = "4";

/// Where the tables live: the catalog (in Postgres) and the warehouse
/// directory the data and metadata files go to.
#[derive(Clone)]
pub struct Warehouse {
    pub catalog: Arc<SqlCatalog>,
    /// `file:///…/lake/warehouse`, the root table locations derive from.
    pub location: String,
    /// The catalog's database, for commits that go through its tables
    /// directly ([`super::commit`]).
    pub pool: sqlx::PgPool,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The default warehouse directory: `{betflow_home}/lake/warehouse`.
pub fn default_dir(betflow_home: &Path) -> PathBuf {
    betflow_home.join("lake").join("warehouse")
}

impl Warehouse {
    /// The warehouse beside the lake `betflow` uses ([`crate::lake::open_from_env`]):
    /// in S3 when `BETFLOW_S3_BUCKET` is set, else under `{betflow_home}/lake`.
    pub async fn for_lake(
        pool: &sqlx::PgPool,
        betflow_home: &Path,
    ) -> Result<Warehouse, IcebergError> {
        match S3Config::from_env().map_err(|e| IcebergError::Catalog(e.to_string()))? {
            Some(s3) => Warehouse::open_s3(pool, &s3).await,
            None => Warehouse::open(pool, &default_dir(betflow_home)).await,
        }
    }

    /// Open (once per process and database) the catalog on `pool`'s
    /// database with its warehouse in `dir`.
    pub async fn open(pool: &sqlx::PgPool, dir: &Path) -> Result<Warehouse, IcebergError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            IcebergError::Catalog(format!("cannot create warehouse {}: {e}", dir.display()))
        })?;
        let dir = dir.canonicalize().map_err(|e| {
            IcebergError::Catalog(format!("cannot resolve warehouse {}: {e}", dir.display()))
        })?;
        let location = format!("file://{}", dir.display());
        Warehouse::connect(
            pool,
            location,
            Arc::new(LocalFsStorageFactory),
            HashMap::new(),
        )
        .await
    }

    /// Open the catalog with its warehouse at `s3://{bucket}/warehouse`,
    /// reaching S3 (or MinIO, moto) with the lake's own settings.
    pub async fn open_s3(pool: &sqlx::PgPool, s3: &S3Config) -> Result<Warehouse, IcebergError> {
        let mut props = HashMap::from([
            (S3_REGION.to_owned(), s3.region.clone()),
            (S3_ACCESS_KEY_ID.to_owned(), s3.access_key_id.clone()),
            (
                S3_SECRET_ACCESS_KEY.to_owned(),
                s3.secret_access_key.clone(),
            ),
            (S3_PATH_STYLE_ACCESS.to_owned(), s3.path_style.to_string()),
        ]);
        if let Some(endpoint) = &s3.endpoint {
            props.insert(S3_ENDPOINT.to_owned(), endpoint.clone());
        }
        if let Some(token) = &s3.session_token {
            props.insert(S3_SESSION_TOKEN.to_owned(), token.clone());
        }
        let factory = Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        });
        let location = format!("s3://{}/warehouse", s3.bucket);
        Warehouse::connect(pool, location, factory, props).await
    }

    async fn connect(
        pool: &sqlx::PgPool,
        location: String,
        factory: Arc<dyn StorageFactory>,
        props: HashMap<String, String>,
    ) -> Result<Warehouse, IcebergError> {
        let url = pool.connect_options().to_url_lossy().to_string();
        // Tests open several endpoints with one bucket name: key on it too.
        let endpoint = props.get(S3_ENDPOINT).cloned().unwrap_or_default();
        let key = format!("{url}|{location}|{endpoint}");
        static OPEN: OnceLock<Mutex<HashMap<String, Warehouse>>> = OnceLock::new();
        let cache = OPEN.get_or_init(Default::default);
        if let Some(w) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(w);
        }
        let catalog = SqlCatalogBuilder::default()
            .uri(url)
            .warehouse_location(location.clone())
            .sql_bind_style(SqlBindStyle::DollarNumeric)
            .prop("pool.max-connections", POOL_SIZE)
            .props(props)
            .with_storage_factory(factory)
            .load(CATALOG_NAME, HashMap::new())
            .await
            .map_err(|e| IcebergError::Catalog(format!("cannot open the SQL catalog: {e}")))?;
        let warehouse = Warehouse {
            catalog: Arc::new(catalog),
            location,
            pool: pool.clone(),
        };
        if let Ok(mut c) = cache.lock() {
            c.insert(key, warehouse.clone());
        }
        Ok(warehouse)
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }
}
