//! `sluice init DIR`: a project with the article's pipelines and deterministic sample data.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{Duration, NaiveDate};

use crate::{exit, usage};

const FILES: &[(&str, &str)] = &[
    ("sluice.yaml", include_str!("../scaffold/sluice.yaml")),
    (
        "pipelines/daily_sales_etl.yaml",
        include_str!("../scaffold/pipelines/daily_sales_etl.yaml"),
    ),
    (
        "pipelines/dynamic_source_etl.yaml",
        include_str!("../scaffold/pipelines/dynamic_source_etl.yaml"),
    ),
    (
        "suites/orders_suite.json",
        include_str!("../scaffold/suites/orders_suite.json"),
    ),
    (
        "sql/transform_orders.sql",
        include_str!("../scaffold/sql/transform_orders.sql"),
    ),
    (
        "sql/update_sales_aggregates.sql",
        include_str!("../scaffold/sql/update_sales_aggregates.sql"),
    ),
    (
        "python/sources.py",
        include_str!("../scaffold/python/sources.py"),
    ),
    (
        ".gitignore",
        ".sluice/\nwarehouse.duckdb\nwarehouse.duckdb.wal\nlake/\n__pycache__/\n",
    ),
];

/// Sample orders cover January 2024.
const FIRST_DAY: (i32, u32, u32) = (2024, 1, 1);
const DAYS: i64 = 31;
const ORDERS_PER_DAY: u64 = 400;

pub fn run(dir: &Path) -> anyhow::Result<u8> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return usage(format!(
            "{} exists and is not empty\n  hint: choose a new folder name, e.g. `sluice init demo`",
            dir.display()
        ));
    }
    for (rel, content) in FILES {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("files are inside the project"))?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    let raw = dir.join("lake/raw/orders");
    std::fs::create_dir_all(&raw)?;
    std::fs::create_dir_all(dir.join("lake/orders"))?;
    let first = NaiveDate::from_ymd_opt(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2).expect("valid date");
    for d in 0..DAYS {
        let day = first + Duration::days(d);
        let path = raw.join(format!("{day}.csv"));
        std::fs::write(&path, sample_orders(day, d as u64))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created a Sluice project in {}", dir.display());
    println!(
        "  pipelines/daily_sales_etl.yaml     the article's daily ETL (extract → validate → load → transform → aggregate)"
    );
    println!("  pipelines/dynamic_source_etl.yaml  one pipeline per data source (for_each)");
    println!(
        "  lake/raw/orders/                   sample orders for {first} to {}",
        first + Duration::days(DAYS - 1)
    );
    println!(
        "\nnext:\n  sluice check --project {0}\n  sluice run daily_sales_etl --project {0} --date {first}",
        dir.display()
    );
    Ok(exit::OK)
}

/// SplitMix64: a small deterministic generator, so every `init` produces the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sample_orders(day: NaiveDate, day_index: u64) -> String {
    const CATEGORIES: [&str; 5] = ["books", "electronics", "garden", "grocery", "toys"];
    const STATUSES: [&str; 4] = ["completed", "completed", "completed", "refunded"];
    let mut rng = Rng(0x5EED ^ day_index);
    let mut out = String::from(
        "order_id,customer_id,total,created_at,order_date,status,email,product_category\n",
    );
    for n in 0..ORDERS_PER_DAY {
        let order_id = day_index * 100_000 + n + 1;
        let customer = 1 + rng.below(5_000);
        let cents = 500
            + rng.below(49_500)
            + if rng.below(20) == 0 {
                rng.below(200_000)
            } else {
                0
            };
        let secs = rng.below(86_400);
        let _ = writeln!(
            out,
            "{order_id},{customer},{}.{:02},{day} {:02}:{:02}:{:02},{day},{},customer{customer}@example.com,{}",
            cents / 100,
            cents % 100,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            STATUSES[rng.below(4) as usize],
            CATEGORIES[rng.below(5) as usize],
        );
    }
    // Real exports have bad rows: every tenth day has one that does not parse, which the
    // extract sends to the dead-letter store (`sluice dlq list`), and every seventh day one
    // with a malformed e-mail, which validation quarantines.
    if day_index % 7 == 3 {
        let _ = writeln!(
            out,
            "{},42,19.99,{day} 09:30:00,{day},completed,customer42 at example.com,toys",
            day_index * 100_000 + ORDERS_PER_DAY + 2
        );
    }
    if day_index.is_multiple_of(10) {
        let _ = writeln!(
            out,
            "{},17,n/a,{day} 12:00:00,{day},completed,customer17@example.com,books",
            day_index * 100_000 + ORDERS_PER_DAY + 1
        );
    }
    out
}
