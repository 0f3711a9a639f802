//! Schema evolution, on purpose: what to do when the incoming columns differ from the target
//! table's.
//!
//! - `fail` (the default): any added, removed or changed column stops the load with a list of
//!   the differences.
//! - `add_columns`: new columns are added (nullable), and a column whose type is safely
//!   widened (int16→int32→int64, float32→float64, a decimal with more digits) is altered.
//! - `ignore_extra`: columns the table does not have are not loaded.
//!
//! Under every policy, a column the incoming data lacks is loaded as NULL when the table allows
//! it (except under `fail`, which reports it), and a value that fits the table's type as it is
//! (int32 into int64) is not a change at all.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::IoError;
use crate::rows::type_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Fail,
    AddColumns,
    IgnoreExtra,
}

impl Policy {
    pub const NAMES: &'static [&'static str] = &["fail", "add_columns", "ignore_extra"];

    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "fail" => Policy::Fail,
            "add_columns" => Policy::AddColumns,
            "ignore_extra" => Policy::IgnoreExtra,
            _ => return None,
        })
    }
}

/// What a load does to the target's schema, and which incoming columns it inserts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The table does not exist: create it with these columns.
    pub create: Option<Vec<Field>>,
    /// Columns to add (nullable).
    pub add: Vec<Field>,
    /// Columns to widen: (name, from, to).
    pub widen: Vec<(String, DataType, DataType)>,
    /// Incoming columns to insert, in the incoming order.
    pub insert: Vec<String>,
}

impl Plan {
    /// The changes to record, described with `type_of` (the target system's type names).
    pub fn changes(
        &self,
        target: &str,
        type_of: impl Fn(&DataType) -> String,
    ) -> Vec<sluice_core::SchemaChange> {
        let added = self.add.iter().map(|f| sluice_core::SchemaChange {
            target: target.to_string(),
            change: "add_column".into(),
            column: f.name().clone(),
            from_type: None,
            to_type: type_of(f.data_type()),
        });
        let widened = self
            .widen
            .iter()
            .map(|(name, from, to)| sluice_core::SchemaChange {
                target: target.to_string(),
                change: "widen_column".into(),
                column: name.clone(),
                from_type: Some(type_of(from)),
                to_type: type_of(to),
            });
        added.chain(widened).collect()
    }
}

/// How the incoming columns differ from the table's.
struct Differences<'a> {
    /// Incoming columns the table does not have.
    added: Vec<Field>,
    /// Table columns the incoming data lacks.
    removed: Vec<&'a Field>,
    /// Columns whose incoming type does not fit the table's: (the table's, the incoming).
    changed: Vec<(Field, Field)>,
}

/// Plans a load of `incoming` into a table with `target` columns (`None`: no table yet).
pub fn plan(
    target: Option<&[Field]>,
    incoming: &Schema,
    policy: Policy,
    shown_target: &str,
) -> Result<Plan, IoError> {
    let Some(target) = target else {
        return Ok(create(incoming));
    };
    let (plan, differences) = compare(target, incoming, policy);
    let required_missing = differences.removed.iter().any(|f| !f.is_nullable());
    let unsafe_changes: Vec<&(Field, Field)> = differences
        .changed
        .iter()
        .filter(|(t, _)| !plan.widen.iter().any(|(n, ..)| n == t.name()))
        .collect();
    let fails = match policy {
        Policy::Fail => {
            !differences.added.is_empty()
                || !differences.removed.is_empty()
                || !differences.changed.is_empty()
        }
        Policy::AddColumns | Policy::IgnoreExtra => !unsafe_changes.is_empty() || required_missing,
    };
    if !fails {
        return Ok(plan);
    }
    let lines = refused_lines(policy, &differences, &unsafe_changes);
    Err(IoError::invalid(format!(
        "the incoming columns do not match {shown_target} (schema_evolution: {}):\n{}\n{}",
        Policy::NAMES[policy as usize],
        lines.join("\n"),
        hint(policy)
    )))
}

/// A new table with every incoming column, nullable.
fn create(incoming: &Schema) -> Plan {
    Plan {
        create: Some(
            incoming
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect(),
        ),
        insert: incoming.fields().iter().map(|f| f.name().clone()).collect(),
        ..Plan::default()
    }
}

/// What the policy does with each incoming column, and every difference found (whether the
/// policy accepts it or not).
fn compare<'a>(target: &'a [Field], incoming: &Schema, policy: Policy) -> (Plan, Differences<'a>) {
    let mut plan = Plan::default();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for field in incoming.fields() {
        match target.iter().find(|t| t.name() == field.name()) {
            None => {
                added.push(field.as_ref().clone());
                match policy {
                    Policy::AddColumns => {
                        plan.add.push(field.as_ref().clone().with_nullable(true));
                        plan.insert.push(field.name().clone());
                    }
                    Policy::IgnoreExtra | Policy::Fail => {}
                }
            }
            Some(t) if fits(field.data_type(), t.data_type()) => {
                plan.insert.push(field.name().clone())
            }
            Some(t) => {
                changed.push((t.clone(), field.as_ref().clone()));
                if policy == Policy::AddColumns
                    && fits(t.data_type(), field.data_type())
                    && widening(t.data_type(), field.data_type())
                {
                    plan.widen.push((
                        field.name().clone(),
                        t.data_type().clone(),
                        field.data_type().clone(),
                    ));
                    plan.insert.push(field.name().clone());
                }
            }
        }
    }
    let removed = target
        .iter()
        .filter(|t| incoming.field_with_name(t.name()).is_err())
        .collect();
    let differences = Differences {
        added,
        removed,
        changed,
    };
    (plan, differences)
}

/// One line per difference the policy refuses (under `fail`, every difference).
fn refused_lines(
    policy: Policy,
    differences: &Differences<'_>,
    unsafe_changes: &[&(Field, Field)],
) -> Vec<String> {
    let mut lines = Vec::new();
    let show_added = policy == Policy::Fail;
    if show_added {
        for f in &differences.added {
            lines.push(format!(
                "  added:   {} ({})",
                f.name(),
                type_name(f.data_type())
            ));
        }
    }
    for f in &differences.removed {
        if policy == Policy::Fail || !f.is_nullable() {
            let why = if f.is_nullable() {
                ""
            } else {
                ", NOT NULL in the table"
            };
            lines.push(format!(
                "  removed: {} ({}{why})",
                f.name(),
                type_name(f.data_type())
            ));
        }
    }
    for (t, i) in &differences.changed {
        if policy == Policy::Fail || unsafe_changes.iter().any(|(u, _)| u.name() == t.name()) {
            let note =
                if fits(t.data_type(), i.data_type()) && widening(t.data_type(), i.data_type()) {
                    " (a safe widening: allowed under add_columns)"
                } else {
                    " (not a safe widening: convert it in the source or change the table yourself)"
                };
            lines.push(format!(
                "  changed: {} {} → {}{note}",
                t.name(),
                type_name(t.data_type()),
                type_name(i.data_type())
            ));
        }
    }
    lines
}

/// How to make a refused load pass under `policy`.
fn hint(policy: Policy) -> &'static str {
    match policy {
        Policy::Fail => {
            "hint: set `schema_evolution: add_columns` to add new columns and widen types safely, or `ignore_extra` to load only the table's columns"
        }
        Policy::AddColumns => {
            "hint: only nullable columns may be missing, and only safe widenings (int16→int32→int64, float32→float64, larger decimals) are applied"
        }
        Policy::IgnoreExtra => {
            "hint: ignore_extra never changes the table: only nullable columns may be missing and types must fit as they are; use add_columns to widen, or cast in the source"
        }
    }
}

/// Whether every value of `from` is stored exactly by a column of type `to`.
pub fn fits(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Int8, Int16 | Int32 | Int64) | (Int16, Int32 | Int64) | (Int32, Int64) => true,
        (Int8 | Int16, Float32 | Float64) | (Int32, Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | Int64, Decimal128(p, s)) => {
            let digits = match from {
                Int8 => 3,
                Int16 => 5,
                Int32 => 10,
                _ => 19,
            };
            (*p as i16 - *s as i16) >= digits
        }
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        (Timestamp(_, tz1), Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, tz2)) => {
            tz1.is_some() == tz2.is_some()
        }
        (Date32, Date64) | (Date64, Date32) => true,
        _ => false,
    }
}

/// Whether changing a column from `from` to `to` is one of the widenings `add_columns` applies.
fn widening(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Int8, Int16 | Int32 | Int64)
            | (Int16, Int32 | Int64)
            | (Int32, Int64)
            | (Float32, Float64)
            | (Decimal128(..), Decimal128(..))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, dt: DataType, nullable: bool) -> Field {
        Field::new(name, dt, nullable)
    }

    fn target() -> Vec<Field> {
        vec![
            f("id", DataType::Int64, false),
            f("qty", DataType::Int32, true),
            f("price", DataType::Float32, true),
            f("note", DataType::Utf8, true),
        ]
    }

    #[test]
    fn no_table_creates_one_with_nullable_columns() {
        let incoming = Schema::new(vec![f("id", DataType::Int64, false)]);
        let plan = plan(None, &incoming, Policy::Fail, "t").unwrap();
        assert_eq!(plan.create.unwrap(), vec![f("id", DataType::Int64, true)]);
        assert_eq!(plan.insert, ["id"]);
    }

    #[test]
    fn narrower_incoming_types_are_no_change() {
        let incoming = Schema::new(vec![
            f("id", DataType::Int32, true),
            f("qty", DataType::Int16, true),
            f("price", DataType::Float32, true),
            f("note", DataType::Utf8View, true),
        ]);
        let p = plan(Some(&target()), &incoming, Policy::Fail, "t").unwrap();
        assert!(p.add.is_empty() && p.widen.is_empty());
        assert_eq!(p.insert.len(), 4);
    }

    #[test]
    fn fail_lists_every_difference() {
        let incoming = Schema::new(vec![
            f("id", DataType::Int64, false),
            f("qty", DataType::Int64, true),
            f("price", DataType::Utf8, true),
            f("coupon", DataType::Utf8, true),
        ]);
        let err = plan(
            Some(&target()),
            &incoming,
            Policy::Fail,
            "warehouse:staging.orders",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("the incoming columns do not match warehouse:staging.orders (schema_evolution: fail):"), "{err}");
        assert!(err.contains("  added:   coupon (string)"), "{err}");
        assert!(err.contains("  removed: note (string)"), "{err}");
        assert!(
            err.contains("  changed: qty int32 → int64 (a safe widening"),
            "{err}"
        );
        assert!(
            err.contains("  changed: price float32 → string (not a safe widening"),
            "{err}"
        );
    }

    #[test]
    fn add_columns_adds_and_widens_but_refuses_unsafe_changes() {
        let incoming = Schema::new(vec![
            f("id", DataType::Int64, false),
            f("qty", DataType::Int64, true),
            f("price", DataType::Float64, true),
            f("coupon", DataType::Utf8, true),
        ]);
        let p = plan(Some(&target()), &incoming, Policy::AddColumns, "t").unwrap();
        assert_eq!(p.add, vec![f("coupon", DataType::Utf8, true)]);
        assert_eq!(
            p.widen,
            vec![
                ("qty".into(), DataType::Int32, DataType::Int64),
                ("price".into(), DataType::Float32, DataType::Float64)
            ]
        );
        assert_eq!(p.insert, ["id", "qty", "price", "coupon"]);
        let changes = p.changes("t", type_name);
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[1].from_type.as_deref(), Some("int32"));

        let incoming = Schema::new(vec![
            f("id", DataType::Int64, false),
            f("qty", DataType::Utf8, true),
        ]);
        let err = plan(Some(&target()), &incoming, Policy::AddColumns, "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("changed: qty int32 → string (not a safe widening"),
            "{err}"
        );
        assert!(
            !err.contains("removed"),
            "nullable columns may be missing: {err}"
        );
    }

    #[test]
    fn ignore_extra_drops_new_columns_and_requires_not_null_ones() {
        let incoming = Schema::new(vec![
            f("id", DataType::Int64, false),
            f("coupon", DataType::Utf8, true),
        ]);
        let p = plan(Some(&target()), &incoming, Policy::IgnoreExtra, "t").unwrap();
        assert!(p.add.is_empty());
        assert_eq!(p.insert, ["id"]);
        let incoming = Schema::new(vec![f("qty", DataType::Int32, true)]);
        let err = plan(Some(&target()), &incoming, Policy::IgnoreExtra, "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("removed: id (int64, NOT NULL in the table)"),
            "{err}"
        );
    }
}
