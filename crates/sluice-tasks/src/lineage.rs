//! Lineage of the task kinds: datasets named per the OpenLineage naming spec, and the tables
//! (and, where the SQL allows, the columns) a SQL statement reads and writes, found by parsing
//! it with sqlparser in the target's dialect.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sluice_core::lineage::Field;
use sluice_core::template::TemplateContext;
use sluice_core::{Dataset, Lineage};
use sluice_io::arrow::datatypes::SchemaRef;
use sqlparser::ast::{
    Expr, FromTable, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, visit_expressions, visit_relations,
};
use sqlparser::dialect::{Dialect, DuckDbDialect, GenericDialect, MySqlDialect, PostgreSqlDialect};

use crate::io::{Endpoint, LakeHandle};

/// The dataset of table `table` (`t`, `schema.t` or `db.schema.t`) behind `endpoint`.
pub fn table_dataset(endpoint: &Endpoint, table: &str) -> Option<Dataset> {
    let parts: Vec<&str> = table.split('.').map(|p| p.trim_matches('"')).collect();
    match endpoint {
        Endpoint::DuckDb { path, .. } => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let catalog = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "memory".into());
            let name = match parts.as_slice() {
                [t] => format!("{catalog}.main.{t}"),
                [s, t] => format!("{catalog}.{s}.{t}"),
                _ => parts.join("."),
            };
            Some(Dataset::new(format!("duckdb://{}", path.display()), name))
        }
        Endpoint::Postgres(c) => {
            let url = c.url();
            let db = url.path().trim_start_matches('/');
            let name = match parts.as_slice() {
                [t] => format!("{db}.public.{t}"),
                [s, t] => format!("{db}.{s}.{t}"),
                _ => parts.join("."),
            };
            let host = url.host_str().unwrap_or("localhost");
            let port = url.port().unwrap_or(5432);
            Some(Dataset::new(format!("postgres://{host}:{port}"), name))
        }
        Endpoint::MySql(c) => {
            let url = c.url();
            let db = url.path().trim_start_matches('/');
            let name = match parts.as_slice() {
                [t] => format!("{db}.{t}"),
                _ => parts.join("."),
            };
            let host = url.host_str().unwrap_or("localhost");
            let port = url.port().unwrap_or(3306);
            Some(Dataset::new(format!("mysql://{host}:{port}"), name))
        }
        Endpoint::Http(_) | Endpoint::Other(_) => None,
    }
}

/// A template rendered for a try, or as written when there is no try (or it does not render).
pub fn rendered(text: &str, template: Option<&TemplateContext>) -> String {
    template
        .and_then(|ctx| sluice_core::template::render(text, ctx).ok())
        .unwrap_or_else(|| text.to_string())
}

/// SQL with its template expressions stood in for by NULL (and its tags dropped), to read the
/// shape of a templated statement without a try. Templates in identifier positions do not
/// parse this way; such SQL has no lineage until it runs.
pub fn without_templates(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = [rest.find("{{"), rest.find("{%")]
        .into_iter()
        .flatten()
        .min()
    {
        out.push_str(&rest[..start]);
        let expression = rest[start..].starts_with("{{");
        let close = if expression { "}}" } else { "%}" };
        let Some(end) = rest[start..].find(close) else {
            return out;
        };
        if expression {
            out.push_str("NULL");
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// The dataset of a file or glob in the lake (or the project folder).
pub fn lake_dataset(lake: &LakeHandle, path: &str) -> Option<Dataset> {
    lake.as_ref().as_ref().ok().map(|l| l.dataset(path))
}

/// The fields of an Arrow schema, for the schema facet.
pub fn fields_of(schema: &SchemaRef) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| Field {
            name: f.name().clone(),
            data_type: Some(f.data_type().to_string()),
        })
        .collect()
}

fn dialect(endpoint: &Endpoint) -> Box<dyn Dialect> {
    match endpoint {
        Endpoint::DuckDb { .. } => Box::new(DuckDbDialect {}),
        Endpoint::Postgres(_) => Box::new(PostgreSqlDialect {}),
        Endpoint::MySql(_) => Box::new(MySqlDialect {}),
        _ => Box::new(GenericDialect {}),
    }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The tables `sql` reads and writes on `endpoint`, and the input columns of each output
/// column where the statement is a plain SELECT into a table. SQL that does not parse yields
/// no datasets (the task still runs: the database is the judge of its SQL).
pub fn sql_lineage(sql: &str, endpoint: &Endpoint) -> Lineage {
    let mut lineage = Lineage {
        sql: Some(sql.to_string()),
        ..Lineage::default()
    };
    let Ok(statements) = sqlparser::parser::Parser::parse_sql(dialect(endpoint).as_ref(), sql)
    else {
        return lineage;
    };
    // Columns of tables the script itself creates: an INSERT without a column list fills
    // them in order.
    let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in &statements {
        if let Statement::CreateTable(create) = statement
            && !create.columns.is_empty()
        {
            declared.insert(
                object_name(&create.name).to_lowercase(),
                create
                    .columns
                    .iter()
                    .map(|c| c.name.value.clone())
                    .collect(),
            );
        }
    }
    for statement in &statements {
        let (target, query, mut columns) = written(statement);
        if columns.is_empty()
            && matches!(statement, Statement::Insert(_))
            && let Some(cols) = target
                .as_ref()
                .and_then(|t| declared.get(&object_name(t).to_lowercase()))
        {
            columns = cols.clone();
        }
        let mut ctes = query.map(cte_names).unwrap_or_default();
        if let Statement::Query(q) = statement {
            ctes.extend(cte_names(q));
        }
        let mut read = Vec::new();
        let _ = visit_relations(statement, |rel| {
            let name = object_name(rel);
            if !ctes.contains(&name.to_lowercase()) {
                read.push(name);
            }
            ControlFlow::<()>::Continue(())
        });
        let target_name = target.as_ref().map(object_name);
        let output = target_name
            .as_deref()
            .and_then(|t| table_dataset(endpoint, t));
        for name in read {
            if Some(&name) == target_name.as_ref() {
                continue;
            }
            if let Some(d) = table_dataset(endpoint, &name) {
                lineage = lineage.input(d);
            }
        }
        if let Some(out) = output {
            if let Some(q) = query
                && let Some(cols) = column_lineage(q, &columns, endpoint, &ctes)
            {
                lineage.columns.insert(out.clone(), cols);
            }
            lineage = lineage.output(out);
        }
    }
    lineage
}

/// The table a statement writes, the query that feeds it, and the target's column list.
fn written(statement: &Statement) -> (Option<ObjectName>, Option<&Query>, Vec<String>) {
    match statement {
        Statement::Insert(insert) => {
            let table = match &insert.table {
                TableObject::TableName(name) => Some(name.clone()),
                _ => None,
            };
            let cols = insert.columns.iter().map(object_name).collect();
            (table, insert.source.as_deref(), cols)
        }
        Statement::CreateTable(create) => {
            (Some(create.name.clone()), create.query.as_deref(), vec![])
        }
        Statement::CreateView(view) => (Some(view.name.clone()), Some(&*view.query), vec![]),
        Statement::Update(update) => (relation_name(&update.table.relation), None, vec![]),
        Statement::Delete(delete) => {
            let from = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            (
                from.first().and_then(|t| relation_name(&t.relation)),
                None,
                vec![],
            )
        }
        Statement::Merge(merge) => (relation_name(&merge.table), None, vec![]),
        // `WITH … INSERT …` is a query whose body is the insert.
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(inner) | SetExpr::Update(inner) | SetExpr::Delete(inner) => {
                written(inner)
            }
            _ => (None, Some(q), vec![]),
        },
        _ => (None, None, vec![]),
    }
}

fn relation_name(factor: &TableFactor) -> Option<ObjectName> {
    match factor {
        TableFactor::Table { name, .. } => Some(name.clone()),
        _ => None,
    }
}

fn cte_names(query: &Query) -> BTreeSet<String> {
    query
        .with
        .iter()
        .flat_map(|w| &w.cte_tables)
        .map(|cte| cte.alias.name.value.to_lowercase())
        .collect()
}

/// For `SELECT … FROM tables`: each output column and the input columns it reads. None when
/// the query is not a plain SELECT over tables.
fn column_lineage(
    query: &Query,
    target_columns: &[String],
    endpoint: &Endpoint,
    ctes: &BTreeSet<String>,
) -> Option<BTreeMap<String, Vec<(Dataset, String)>>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    // Alias (or table name) → dataset, for resolving `o.amount` and lone `amount`.
    let mut tables: BTreeMap<String, Dataset> = BTreeMap::new();
    let factors = select.from.iter().flat_map(|t: &TableWithJoins| {
        std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
    });
    for factor in factors {
        let TableFactor::Table { name, alias, .. } = factor else {
            return None;
        };
        let full = object_name(name);
        if ctes.contains(&full.to_lowercase()) {
            return None;
        }
        let dataset = table_dataset(endpoint, &full)?;
        let key = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| full.rsplit('.').next().unwrap_or(&full).to_string());
        tables.insert(key.to_lowercase(), dataset);
    }
    let mut out = BTreeMap::new();
    for (i, item) in select.projection.iter().enumerate() {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = match expr {
                    Expr::Identifier(id) => id.value.clone(),
                    Expr::CompoundIdentifier(ids) => ids.last()?.value.clone(),
                    other => other.to_string(),
                };
                (expr, name)
            }
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => return None,
        };
        let name = target_columns.get(i).cloned().unwrap_or(name);
        let mut inputs = Vec::new();
        let _ = visit_expressions(expr, |e| {
            let found = match e {
                Expr::Identifier(col) if tables.len() == 1 => tables
                    .values()
                    .next()
                    .map(|d| (d.clone(), col.value.clone())),
                Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                    let table = ids[ids.len() - 2].value.to_lowercase();
                    tables
                        .get(&table)
                        .map(|d| (d.clone(), ids[ids.len() - 1].value.clone()))
                }
                _ => None,
            };
            if let Some(f) = found
                && !inputs.contains(&f)
            {
                inputs.push(f);
            }
            ControlFlow::<()>::Continue(())
        });
        if !inputs.is_empty() {
            out.insert(name, inputs);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warehouse() -> Endpoint {
        Endpoint::DuckDb {
            name: "warehouse".into(),
            path: "/p/warehouse.duckdb".into(),
        }
    }

    fn names(ds: &[Dataset]) -> Vec<&str> {
        ds.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn tables_read_and_written_are_found_in_the_sql() {
        let l = sql_lineage(
            "WITH recent AS (SELECT * FROM staging.orders WHERE day = '2024-01-01')
             INSERT INTO analytics.daily SELECT r.day, sum(r.amount) AS total, max(c.tier)
             FROM recent r JOIN crm.customers c ON c.id = r.customer_id GROUP BY r.day;
             DELETE FROM staging.tmp;",
            &warehouse(),
        );
        assert_eq!(
            names(&l.inputs),
            ["warehouse.staging.orders", "warehouse.crm.customers"]
        );
        assert_eq!(
            names(&l.outputs),
            ["warehouse.analytics.daily", "warehouse.staging.tmp"]
        );
        assert_eq!(l.inputs[0].namespace, "duckdb:///p/warehouse.duckdb");
        assert!(l.columns.is_empty(), "a CTE hides the columns' origin");
    }

    #[test]
    fn columns_of_a_plain_select_are_traced_to_their_inputs() {
        let l = sql_lineage(
            "CREATE OR REPLACE TABLE analytics.daily AS
             SELECT o.day, sum(o.amount * o.qty) AS revenue, c.tier
             FROM staging.orders o JOIN crm.customers c ON c.id = o.customer_id GROUP BY 1, 3",
            &warehouse(),
        );
        let cols = &l.columns[&l.outputs[0]];
        let revenue: Vec<(&str, &str)> = cols["revenue"]
            .iter()
            .map(|(d, c)| (d.name.as_str(), c.as_str()))
            .collect();
        assert_eq!(
            revenue,
            [
                ("warehouse.staging.orders", "amount"),
                ("warehouse.staging.orders", "qty")
            ]
        );
        assert_eq!(cols["tier"][0].0.name, "warehouse.crm.customers");
        assert_eq!(cols["day"][0].1, "day");
    }

    #[test]
    fn an_insert_fills_the_columns_the_script_declared_in_order() {
        let l = sql_lineage(
            "CREATE TABLE IF NOT EXISTS a.e (id BIGINT, day DATE, big BOOLEAN);
             DELETE FROM a.e WHERE day = '2024-01-01';
             INSERT INTO a.e SELECT order_id, CAST(created_at AS DATE), total > 100 FROM s.orders",
            &warehouse(),
        );
        assert_eq!(names(&l.outputs), ["warehouse.a.e"]);
        let cols = &l.columns[&l.outputs[0]];
        let origin = |c: &str| cols[c][0].1.clone();
        assert_eq!(
            (origin("id"), origin("day"), origin("big")),
            ("order_id".into(), "created_at".into(), "total".into())
        );
    }

    #[test]
    fn templated_values_do_not_hide_the_tables() {
        let sql = "DELETE FROM t WHERE day = {{ ds | sql }};{% if true %}INSERT INTO t SELECT * FROM s{% endif %}";
        assert_eq!(
            without_templates(sql),
            "DELETE FROM t WHERE day = NULL;INSERT INTO t SELECT * FROM s"
        );
        let l = sql_lineage(&without_templates(sql), &warehouse());
        assert_eq!(names(&l.inputs), ["warehouse.main.s"]);
    }

    #[test]
    fn insert_column_lists_name_the_outputs_and_sql_that_does_not_parse_is_no_lineage() {
        let l = sql_lineage("INSERT INTO t (a, b) SELECT x, y + 1 FROM s", &warehouse());
        let cols = &l.columns[&l.outputs[0]];
        assert_eq!(cols["a"][0].1, "x");
        assert_eq!(cols["b"][0].1, "y");
        assert!(sql_lineage("SELEC nonsense", &warehouse()).is_empty());
    }
}
