//! Appending columns to a table whose definition grew.
//!
//! A [`TableDef`] numbers its columns 1.. in declaration order, and Iceberg
//! tracks columns by those ids, so a definition may only ever append
//! optional columns. When it has, the table gets the longer schema as a
//! new current schema (a metadata-only commit, swapped in with the same
//! compare-and-set as data commits); data files written before read the
//! new columns as null. Anything else — a renamed, removed, retyped or
//! required new column — is refused with the column named, before any data
//! is written.

use iceberg::spec::{NestedFieldRef, Schema};
use iceberg::table::Table;

use super::catalog::Warehouse;
use super::commit::swap_metadata;
use super::table::TableDef;
use super::{ice, IcebergError};

/// What a definition's schema is to the table's current one.
#[derive(Debug, PartialEq)]
pub(crate) enum Change {
    Same,
    /// The definition appends these columns (all optional).
    Appends(Vec<String>),
}

/// Compares the table's `current` schema with the definition's `wanted`.
pub(crate) fn change(
    def: &TableDef,
    current: &Schema,
    wanted: &Schema,
) -> Result<Change, IcebergError> {
    let have: &[NestedFieldRef] = current.as_struct().fields();
    let want: &[NestedFieldRef] = wanted.as_struct().fields();
    let refuse = |column: &str, message: String| IcebergError::Column {
        table: def.full_name(),
        column: column.to_owned(),
        message,
    };
    for (i, h) in have.iter().enumerate() {
        let Some(w) = want.get(i) else {
            return Err(refuse(
                &h.name,
                "the table has this column and the definition does not; columns can only be appended".to_owned(),
            ));
        };
        if w.id != h.id
            || w.name != h.name
            || w.field_type != h.field_type
            || w.required != h.required
        {
            return Err(refuse(
                &h.name,
                format!(
                    "the table has it as #{} {} {}, the definition as #{} `{}` {} {}; columns can only be appended",
                    h.id,
                    h.field_type,
                    if h.required { "required" } else { "optional" },
                    w.id,
                    w.name,
                    w.field_type,
                    if w.required { "required" } else { "optional" },
                ),
            ));
        }
    }
    let added: &[NestedFieldRef] = &want[have.len()..];
    if let Some(required) = added.iter().find(|f| f.required) {
        return Err(refuse(
            &required.name,
            "a column added to an existing table must be optional (its older rows have no value)"
                .to_owned(),
        ));
    }
    Ok(if added.is_empty() {
        Change::Same
    } else {
        Change::Appends(added.iter().map(|f| f.name.clone()).collect())
    })
}

/// Swaps attempts before giving up on a table other writers keep changing.
const ATTEMPTS: u32 = 3;

/// `table` with `def`'s schema current, committing it first when `def`
/// appends columns.
pub(crate) async fn to_definition(
    wh: &Warehouse,
    def: &TableDef,
    mut table: Table,
) -> Result<Table, IcebergError> {
    let name = def.full_name();
    let wanted = def.schema()?;
    for _ in 0..ATTEMPTS {
        let meta = table.metadata();
        let added = match change(def, meta.current_schema(), &wanted)? {
            Change::Same => return Ok(table),
            Change::Appends(added) => added,
        };
        let swapped = swap_metadata(wh, def, &table, |b| {
            b.add_current_schema(wanted.as_ref().clone())
                .map_err(ice("add columns to", &name))
        })
        .await?;
        if swapped {
            tracing::info!(table = %name, columns = ?added, "appended columns to the table's schema");
        }
        table = wh
            .load_table(&def.ident())
            .await
            .map_err(ice("load", &name))?;
    }
    match change(def, table.metadata().current_schema(), &wanted)? {
        Change::Same => Ok(table),
        Change::Appends(_) => Err(IcebergError::Conflict {
            table: name,
            attempts: ATTEMPTS,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iceberg::table::{opt, req, Kind};

    fn def(columns: &'static [crate::iceberg::table::Column]) -> TableDef {
        TableDef {
            namespace: "gold",
            name: "t",
            columns,
            partition_by: &[],
            doc: "test",
        }
    }

    static V1: [crate::iceberg::table::Column; 2] =
        [req("a", Kind::Str, "a"), opt("b", Kind::Double, "b")];

    #[test]
    fn appended_optional_columns_evolve_the_schema() {
        static V2: [crate::iceberg::table::Column; 3] = [
            req("a", Kind::Str, "a"),
            opt("b", Kind::Double, "b"),
            opt("c", Kind::Long, "c"),
        ];
        let old = def(&V1).schema().unwrap();
        let new = def(&V2).schema().unwrap();
        assert_eq!(change(&def(&V2), &old, &old).unwrap(), Change::Same);
        assert_eq!(
            change(&def(&V2), &old, &new).unwrap(),
            Change::Appends(vec!["c".to_owned()])
        );
    }

    #[test]
    fn anything_but_appending_optional_columns_is_refused_naming_the_column() {
        static RENAMED: [crate::iceberg::table::Column; 2] =
            [req("a", Kind::Str, "a"), opt("bb", Kind::Double, "b")];
        static REQUIRED: [crate::iceberg::table::Column; 3] = [
            req("a", Kind::Str, "a"),
            opt("b", Kind::Double, "b"),
            req("c", Kind::Long, "c"),
        ];
        static SHORTER: [crate::iceberg::table::Column; 1] = [req("a", Kind::Str, "a")];
        let old = def(&V1).schema().unwrap();
        for (columns, column) in [
            (&RENAMED[..], "b"),
            (&REQUIRED[..], "c"),
            (&SHORTER[..], "b"),
        ] {
            let d = def(Box::leak(columns.to_vec().into_boxed_slice()));
            let err = change(&d, &old, &d.schema().unwrap()).unwrap_err();
            assert!(
                matches!(&err, IcebergError::Column { column: c, .. } if c == column),
                "{err}"
            );
        }
    }
}
