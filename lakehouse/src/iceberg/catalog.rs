//! The Iceberg catalog, with the warehouse beside the raw lake:
//! `{lake}/warehouse` on the local filesystem, or `s3://{bucket}/warehouse`
//! when the lake is in S3.
//!
//! By default it is iceberg-rust's SQL catalog on BetFlow's own Postgres
//! (tables `iceberg_tables` and `iceberg_namespace_properties`, the
//! JDBC-catalog layout other engines' SQL catalogs read). With
//! `BETFLOW_ICEBERG_CATALOG=glue` it is the AWS Glue Data Catalog (one Glue
//! database per namespace), which Athena, EMR and Glue jobs read; it needs
//! the lake in S3, since Glue tables point at S3 locations.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use iceberg::io::FileIOBuilder;
use iceberg::io::{
    LocalFsStorageFactory, StorageFactory, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS,
    S3_REGION, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN,
};
use iceberg::table::Table;
use iceberg::Runtime;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalStorageFactory;
use sqlx::ConnectOptions;

use super::glue_catalog::GlueCatalog;
use super::IcebergError;
use crate::aws::{self, AwsCredentials};
use crate::glue_api::{GlueApiError, GlueClient};
use crate::lake::S3Config;
use orchestrator::setting::{Lookup, SettingError};

/// `BETFLOW_ICEBERG_CATALOG`: `sql` (default) or `glue`.
pub const CATALOG_ENV: &str = "BETFLOW_ICEBERG_CATALOG";
/// `BETFLOW_GLUE_ENDPOINT`: a custom Glue endpoint (moto, a VPC endpoint),
/// shared with the Glue job tasks.
pub const GLUE_ENDPOINT_ENV: &str = "BETFLOW_GLUE_ENDPOINT";
/// `BETFLOW_GLUE_CATALOG_ID`: the account whose Data Catalog holds the
/// tables, when it is not the credentials' own.
pub const GLUE_CATALOG_ID_ENV: &str = "BETFLOW_GLUE_CATALOG_ID";

/// Where the AWS Glue Data Catalog is and who signs the requests.
#[derive(Debug, Clone)]
pub struct GlueCatalogConfig {
    /// `None` for AWS's own endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: AwsCredentials,
    pub catalog_id: Option<String>,
}

/// The catalog name every BetFlow table is registered under.
pub const CATALOG_NAME: &str = "betflow";

/// Connections the catalog keeps open per process: commits are short and
/// few, and the scheduler's own pool must not be starved.
const POOL_SIZE: &str = "4";

/// Where the tables live: the catalog (in Postgres) and the warehouse
/// directory the data and metadata files go to.
#[derive(Clone)]
pub struct Warehouse {
    catalog: TableCatalog,
    /// `file:///…/lake/warehouse`, the root table locations derive from.
    pub location: String,
    /// The deployment's database, where commits to one table queue
    /// ([`super::commit`]); `None` for a warehouse opened without one.
    pub(crate) queue: Option<sqlx::PgPool>,
}

/// The catalog a warehouse's tables are registered in.
#[derive(Clone)]
enum TableCatalog {
    Sql {
        catalog: Arc<SqlCatalog>,
        /// Its database, for the commits' pointer swap.
        pool: sqlx::PgPool,
    },
    Glue(GlueCatalog),
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The warehouse's directory inside a local lake.
pub const WAREHOUSE_DIR: &str = "warehouse";

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
        let props: HashMap<String, String> = s3_props(s3);
        let factory = Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        });
        let location = format!("s3://{}/warehouse", s3.bucket);
        Warehouse::connect(pool, location, factory, props).await
    }

    /// Open the AWS Glue Data Catalog with its warehouse at
    /// `s3://{bucket}/warehouse`, the files reached with the lake's S3
    /// settings.
    pub async fn open_glue(
        s3: &S3Config,
        glue: &GlueCatalogConfig,
    ) -> Result<Warehouse, IcebergError> {
        let location = format!("s3://{}/warehouse", s3.bucket);
        let key = format!(
            "glue|{}|{location}|{}",
            glue.endpoint.as_deref().unwrap_or_default(),
            s3.endpoint.as_deref().unwrap_or_default()
        );
        if let Some(w) = cached(&key) {
            return Ok(w);
        }
        let file_io = FileIOBuilder::new(Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }))
        .with_props(s3_props(s3))
        .build();
        let warehouse = Warehouse {
            catalog: TableCatalog::Glue(GlueCatalog {
                client: glue.client().map_err(|e| {
                    IcebergError::Catalog(format!("cannot open the Glue catalog: {e}"))
                })?,
                catalog_id: glue.catalog_id.clone(),
                file_io,
                warehouse: location.clone(),
                runtime: Runtime::try_current().map_err(|e| {
                    IcebergError::Catalog(format!("the Glue catalog needs a tokio runtime: {e}"))
                })?,
            }),
            location,
            queue: None,
        };
        remember(key, &warehouse);
        Ok(warehouse)
    }

    /// This warehouse with its commits queued per table in `pool`'s
    /// database, so the writers of one deployment take turns instead of
    /// redoing commits that lost a race.
    pub fn queued_on(mut self, pool: &sqlx::PgPool) -> Warehouse {
        self.queue = Some(pool.clone());
        self
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
        if let Some(w) = cached(&key) {
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
            catalog: TableCatalog::Sql {
                catalog: Arc::new(catalog),
                pool: pool.clone(),
            },
            location,
            queue: Some(pool.clone()),
        };
        remember(key, &warehouse);
        Ok(warehouse)
    }

    pub async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        match &self.catalog {
            TableCatalog::Sql { catalog, .. } => catalog.namespace_exists(namespace).await,
            TableCatalog::Glue(glue) => glue.namespace_exists(namespace).await,
        }
    }

    pub async fn create_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        match &self.catalog {
            TableCatalog::Sql { catalog, .. } => catalog
                .create_namespace(namespace, HashMap::new())
                .await
                .map(drop),
            TableCatalog::Glue(glue) => glue.create_namespace(namespace).await,
        }
    }

    pub async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        match &self.catalog {
            TableCatalog::Sql { catalog, .. } => catalog.table_exists(table).await,
            TableCatalog::Glue(glue) => glue.table_exists(table).await,
        }
    }

    pub async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        match &self.catalog {
            TableCatalog::Sql { catalog, .. } => catalog.load_table(table).await,
            TableCatalog::Glue(glue) => glue.load_table(table).await,
        }
    }

    pub async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        match &self.catalog {
            TableCatalog::Sql { catalog, .. } => catalog.create_table(namespace, creation).await,
            TableCatalog::Glue(glue) => glue.create_table(namespace, creation).await,
        }
    }

    /// Points `table` at the metadata file `new` if it still points at
    /// `current`, as the catalog's own commits do; `false` when another
    /// writer moved it first. (iceberg-rust 0.10 cannot express a replace
    /// commit through its catalogs; [`super::commit`] builds it.)
    pub(super) async fn swap_metadata(
        &self,
        table: &TableIdent,
        current: &str,
        new: &str,
    ) -> Result<bool, IcebergError> {
        let failed = |e: String| IcebergError::Catalog(format!("cannot commit {table}: {e}"));
        match &self.catalog {
            TableCatalog::Sql { pool, .. } => {
                let swapped = sqlx::query(SWAP_METADATA)
                    .bind(new)
                    .bind(current)
                    .bind(CATALOG_NAME)
                    .bind(table.namespace().join("."))
                    .bind(table.name())
                    .execute(pool)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Ok(swapped.rows_affected() == 1)
            }
            TableCatalog::Glue(glue) => glue
                .swap_metadata(table, current, new)
                .await
                .map_err(|e| failed(e.to_string())),
        }
    }
}

/// The SQL catalog's own compare-and-set of a table's metadata pointer.
const SWAP_METADATA: &str = "UPDATE iceberg_tables \
     SET metadata_location = $1, previous_metadata_location = $2 \
     WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 \
       AND metadata_location = $2";

/// Catalogs opened by this process, by what they were opened on: each
/// holds a connection pool or client worth reusing across tasks.
fn open_catalogs() -> &'static Mutex<HashMap<String, Warehouse>> {
    static OPEN: OnceLock<Mutex<HashMap<String, Warehouse>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

fn cached(key: &str) -> Option<Warehouse> {
    open_catalogs().lock().ok()?.get(key).cloned()
}

fn remember(key: String, warehouse: &Warehouse) {
    if let Ok(mut open) = open_catalogs().lock() {
        open.insert(key, warehouse.clone());
    }
}

/// iceberg's S3 file-IO properties for the lake's S3 settings.
fn s3_props(s3: &S3Config) -> HashMap<String, String> {
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
    props
}

impl GlueCatalogConfig {
    /// `BETFLOW_GLUE_ENDPOINT`, `BETFLOW_GLUE_CATALOG_ID`, the region
    /// ([`aws::region`]) and the AWS keys.
    pub fn resolve(env: &impl Lookup) -> Result<Self, SettingError> {
        let why = format!("{CATALOG_ENV}=glue needs AWS credentials");
        Ok(GlueCatalogConfig {
            endpoint: env.get(GLUE_ENDPOINT_ENV),
            region: aws::region(env),
            credentials: AwsCredentials::resolve(env, &why)?,
            catalog_id: env.get(GLUE_CATALOG_ID_ENV),
        })
    }

    /// A Glue client for this catalog; fails on an endpoint that is not an
    /// http(s) URL.
    pub fn client(&self) -> Result<GlueClient, GlueApiError> {
        GlueClient::new(
            self.endpoint.as_deref(),
            &self.region,
            &self.credentials,
            Duration::from_secs(30),
        )
    }
}
