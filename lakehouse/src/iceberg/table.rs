//! Table declarations: one `static` per table, read by the writer (schema,
//! partitioning), the reader and the quality gates, so a column exists in
//! one place.

use std::sync::Arc;

use iceberg::spec::{
    NestedField, PrimitiveType, Schema, SchemaRef, Transform, Type, UnboundPartitionSpec,
};
use iceberg::{NamespaceIdent, TableIdent};
use polars::prelude::{DataType, TimeUnit};

use super::{ice, IcebergError};

/// A column's type, as Iceberg stores it and as polars holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// 32-bit integer (scores, periods, seasons).
    Int,
    /// 64-bit integer (counts, attendance).
    Long,
    Double,
    Bool,
    /// Days since the epoch; polars `Date`.
    Date,
    /// UTC instant in microseconds; Iceberg `timestamptz`, polars
    /// `Datetime(us)` without a zone (always UTC by convention here).
    Timestamp,
}

impl Kind {
    fn iceberg(self) -> PrimitiveType {
        match self {
            Kind::Str => PrimitiveType::String,
            Kind::Int => PrimitiveType::Int,
            Kind::Long => PrimitiveType::Long,
            Kind::Double => PrimitiveType::Double,
            Kind::Bool => PrimitiveType::Boolean,
            Kind::Date => PrimitiveType::Date,
            Kind::Timestamp => PrimitiveType::Timestamptz,
        }
    }

    /// The polars dtype a DataFrame column must have (after a cast) to be
    /// written into a column of this kind.
    pub fn polars(self) -> DataType {
        match self {
            Kind::Str => DataType::String,
            Kind::Int => DataType::Int32,
            Kind::Long => DataType::Int64,
            Kind::Double => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date,
            Kind::Timestamp => DataType::Datetime(TimeUnit::Microseconds, None),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Iceberg `required`: a null fails the write.
    pub required: bool,
    pub doc: &'static str,
}

/// A required column.
pub const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        required: true,
        doc,
    }
}

/// An optional (nullable) column.
pub const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        required: false,
        doc,
    }
}

/// A table of the warehouse.
#[derive(Debug)]
pub struct TableDef {
    /// `bronze`, `silver` or `gold`.
    pub namespace: &'static str,
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Identity-partition columns (e.g. `sport`, `sports_date`); a load
    /// replaces exactly the partitions its rows fall into. Empty: the table
    /// is rebuilt whole on every load.
    pub partition_by: &'static [&'static str],
    pub doc: &'static str,
}

impl TableDef {
    /// `namespace.name`, as engines and logs name it.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    pub fn namespace_ident(&self) -> NamespaceIdent {
        NamespaceIdent::new(self.namespace.to_owned())
    }

    pub fn ident(&self) -> TableIdent {
        TableIdent::new(self.namespace_ident(), self.name.to_owned())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column names, in table order.
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// The Iceberg schema: field ids 1.. in declaration order (ids are what
    /// Iceberg tracks, so columns may only ever be appended).
    pub fn schema(&self) -> Result<SchemaRef, IcebergError> {
        let fields = self.columns.iter().enumerate().map(|(i, c)| {
            let id = i as i32 + 1;
            let ty = Type::Primitive(c.kind.iceberg());
            let field = if c.required {
                NestedField::required(id, c.name, ty)
            } else {
                NestedField::optional(id, c.name, ty)
            };
            Arc::new(field.with_doc(c.doc))
        });
        let schema = Schema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()
            .map_err(ice("declare schema of", &self.full_name()))?;
        Ok(Arc::new(schema))
    }

    /// Identity partitioning on [`TableDef::partition_by`].
    pub fn partition_spec(&self) -> Result<UnboundPartitionSpec, IcebergError> {
        let mut spec = UnboundPartitionSpec::builder().with_spec_id(0);
        for name in self.partition_by {
            let source = self
                .columns
                .iter()
                .position(|c| c.name == *name)
                .ok_or_else(|| IcebergError::Column {
                    table: self.full_name(),
                    column: (*name).to_owned(),
                    message: "partition column is not a column of the table".to_owned(),
                })?;
            spec = spec
                .add_partition_field(source as i32 + 1, *name, Transform::Identity)
                .map_err(ice("declare partitioning of", &self.full_name()))?;
        }
        Ok(spec.build())
    }
}
