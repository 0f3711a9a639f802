//! `sluice validate --suite SUITE DATA`: a Great Expectations suite against files, a lake path
//! or a table, outside any pipeline. Exit 0 when the suite passes, 1 when it fails, 2 for usage
//! or configuration errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use sluice_core::connections::Connections;
use sluice_core::diag::Diagnostics;
use sluice_core::task::NoLedger;
use sluice_io::lake::Lake;
use sluice_quality::{Level, Parameters, ResultFormat, Validation, report};
use sluice_tasks::quality::{self, Target};
use sluice_warehouse::Warehouses;

use crate::{Global, exit, usage};

#[derive(Args)]
pub struct ValidateArgs {
    /// The suite: Great Expectations JSON (0.x or 1.x) or the same in YAML.
    #[arg(long, value_name = "FILE")]
    suite: PathBuf,
    /// A CSV/TSV/JSON/NDJSON/Parquet file or glob, a lake:// path, or CONNECTION:schema.table
    /// (`warehouse:` is the project's DuckDB).
    data: String,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// How much each expectation reports.
    #[arg(long, value_enum, default_value_t = LevelArg::Summary)]
    result_format: LevelArg,
    /// A value for the suite's `{"$PARAMETER": NAME}` arguments (repeatable); VALUE is read as
    /// JSON when it is JSON (a number, a list), else as text.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parameter)]
    params: Vec<(String, serde_json::Value)>,
}

fn parameter(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE, e.g. --param min_rows=1000"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
    Ok((name.trim().to_string(), value))
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum LevelArg {
    BooleanOnly,
    Basic,
    Summary,
    Complete,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::BooleanOnly => Level::BooleanOnly,
            LevelArg::Basic => Level::Basic,
            LevelArg::Summary => Level::Summary,
            LevelArg::Complete => Level::Complete,
        }
    }
}

/// `NAME:rest` where NAME looks like a connection name (not a drive, URL or path).
fn table_reference(data: &str) -> Option<(&str, &str)> {
    let (name, table) = data.split_once(':')?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (plain && !table.starts_with("//") && !table.is_empty()).then_some((name, table))
}

pub fn run(global: &Global, args: ValidateArgs) -> anyhow::Result<u8> {
    let dir = global.project_dir();
    let shown = args.suite.display().to_string();
    let text = match std::fs::read_to_string(&args.suite) {
        Ok(t) => t,
        Err(e) => return usage(format!("cannot read the suite {shown}: {e}")),
    };
    let mut diags = Diagnostics::default();
    let Some(suite) = sluice_quality::suite::parse(&shown, &text, &mut diags) else {
        let problems: Vec<String> = diags.0.iter().map(ToString::to_string).collect();
        return usage(problems.join("\n"));
    };
    let parameters: serde_json::Map<_, _> = args.params.into_iter().collect();
    let missing: Vec<String> = suite
        .parameter_problems(&parameters, |name| {
            format!("give it with --param {name}=VALUE")
        })
        .iter()
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return usage(missing.join("\n"));
    }
    let parameters = Parameters::new(parameters);
    let validation = Validation::new(
        &suite,
        &ResultFormat::new(args.result_format.into()),
        &parameters,
    );

    // Inside a project its lake and connections apply; elsewhere paths are plain files.
    let project = dir
        .join(sluice_core::settings::SETTINGS_FILE)
        .is_file()
        .then(|| crate::workspace::load_project(&dir))
        .transpose()
        .map_err(|diags| {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            crate::UsageError(text.join("\n"))
        })?;
    let root = std::path::absolute(&dir)?;
    let (connections, warehouse, lake) = match &project {
        Some(p) => (
            p.connections.clone(),
            p.paths.warehouse.clone(),
            sluice_tasks::open_lake(&p.paths.lake, &p.paths.root, &p.connections),
        ),
        None => (
            Connections::default(),
            root.join("warehouse.duckdb"),
            Arc::new(Lake::local(&root, &root).map_err(|e| e.to_string())),
        ),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let target = match table_reference(&args.data)
            .filter(|_| !Path::new(&args.data).exists() && !args.data.starts_with("lake:"))
        {
            Some((name, table)) => {
                let Some(endpoint) =
                    sluice_tasks::endpoint_named(&connections, &warehouse, &root, name)
                else {
                    return usage(format!(
                        "unknown connection `{name}` in `{}`\n  hint: define it in connections.yaml, or use `warehouse:{table}` for the project's DuckDB",
                        args.data
                    ));
                };
                Target::Table {
                    endpoint,
                    table: table.to_string(),
                }
            }
            None => {
                let lake = match lake.as_ref() {
                    Ok(l) => l,
                    Err(e) => return usage(format!("the data lake is not usable: {e}")),
                };
                match quality::files_target(lake, &args.data, Arc::new(NoLedger)).await {
                    Ok(t) => t,
                    Err(e) => return usage(e.to_string()),
                }
            }
        };
        let result = match target {
            Target::Files { files, read } => {
                quality::validate_files(&validation, files, read, &args.data).await
            }
            Target::Table { endpoint, table } => {
                quality::validate_table(&validation, &endpoint, &table, &Warehouses::shared())
                    .await
            }
        };
        result.or_else(|e| usage(e.to_string()))
    })?;

    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Format::Text => print!("{}", report::text(&result, &args.data)),
        Format::Html => print!("{}", report::html(&result, &args.data)),
    }
    Ok(if result["success"] == serde_json::Value::Bool(true) {
        exit::OK
    } else {
        exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::table_reference;

    #[test]
    fn tells_tables_from_paths() {
        assert_eq!(
            table_reference("analytics:staging.orders"),
            Some(("analytics", "staging.orders"))
        );
        assert_eq!(table_reference("lake://orders/x.parquet"), None);
        assert_eq!(table_reference("data/orders.csv"), None);
        assert_eq!(table_reference("s3://bucket/x"), None);
    }
}
