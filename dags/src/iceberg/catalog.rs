//! The Iceberg catalog: iceberg-rust's SQL catalog on BetFlow's own
//! Postgres (tables `iceberg_tables` and `iceberg_namespace_properties`,
//! the JDBC-catalog layout other engines' SQL catalogs read), with the
//! warehouse on the local filesystem under the lake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use iceberg::io::LocalFsStorageFactory;
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use sqlx::ConnectOptions;

use super::IcebergError;

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
        let url = pool.connect_options().to_url_lossy().to_string();
        let key = format!("{url}|{location}");
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
            .with_storage_factory(Arc::new(LocalFsStorageFactory))
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
