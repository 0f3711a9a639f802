//! The article's extract → load → transform chain against real sources: the same pipeline on
//! PostgreSQL and on MariaDB (only the connection differs), and a paged HTTP API that fails
//! transiently.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestProject, pg, state_of};
use sluice_testkit::mariadb;

const PG: &str = pg::TEST_URL;
const MARIADB: &str = mariadb::TEST_URL;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .unwrap()
}

const ORDERS: &[(i64, i64, &str, &str)] = &[
    (1, 10, "19.99", "2024-01-01 08:00:00"),
    (2, 11, "5.00", "2024-01-01 09:30:00"),
    (3, 10, "120.50", "2024-01-01 23:59:59"),
    (4, 12, "0.01", "2024-01-02 00:00:00"),
    (5, 13, "42.00", "2024-01-02 12:00:00"),
];

const CHAIN: &str = r#"
pipeline: orders_chain
schedule: "@daily"
start_date: 2024-01-01
tasks:
  extract_orders:
    extract:
      from:
        connection: orders_db
        query: >
          select order_id, customer_id, total, created_at from orders
          where created_at >= {{ ds | sql }} and created_at < {{ next_ds | sql }}
          order by order_id
      to: "lake://orders/{{ ds }}/data.parquet"
  load_to_staging:
    after: [extract_orders]
    load:
      from: "lake://orders/{{ ds }}/data.parquet"
      into: staging.orders
      mode: replace
  update_aggregates:
    after: [load_to_staging]
    sql: |
      create schema if not exists analytics;
      create table if not exists analytics.daily (day date, orders bigint, revenue decimal(18,2));
      delete from analytics.daily where day = {{ ds | sql }};
      insert into analytics.daily select {{ ds | sql }}, count(*), sum(total) from staging.orders;
"#;

/// order_id, customer_id, total, created_at
type Order = (i64, i64, String, String);

/// Runs the chain for 2024-01-01 with `orders_db` pointing at `uri`; returns what the warehouse
/// holds afterwards.
fn run_chain(uri: &str) -> (Vec<Order>, (i64, String)) {
    let project = TestProject::new();
    project.write("pipelines/orders_chain.yaml", CHAIN);
    let out = project
        .command(&["run", "orders_chain", "--date", "2024-01-01", "--json"])
        .env("SLUICE_CONN_ORDERS_DB", uri)
        .output()
        .unwrap();
    let out = common::outcome(&["run", "orders_chain"], out);
    assert_eq!(out.code, 0, "{}", out.explain());
    assert_eq!(out.json()["tasks"][0]["rows"], 3, "{}", out.explain());
    let db = sluice_warehouse::duckdb::Connection::open(project.path().join("warehouse.duckdb"))
        .unwrap();
    let mut stmt = db
        .prepare("select order_id, customer_id, cast(total as varchar), strftime(created_at, '%Y-%m-%d %H:%M:%S') from staging.orders order by 1")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let agg = db
        .query_row(
            "select orders, cast(revenue as varchar) from analytics.daily",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (rows, agg)
}

fn expected() -> Vec<Order> {
    ORDERS[..3]
        .iter()
        .map(|(id, c, t, at)| (*id, *c, t.to_string(), at.to_string()))
        .collect()
}

#[test]
fn the_same_pipeline_runs_on_postgres_and_mariadb_by_changing_the_connection() {
    let rt = runtime();
    let pg_orders = pg::Schema::create("chain");
    let schema = &pg_orders.name;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(PG, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "create table {schema}.orders (order_id bigint primary key, customer_id bigint not null, total numeric(12,2) not null, created_at timestamp not null);"
            ))
            .await
            .unwrap();
        for (id, c, t, at) in ORDERS {
            client
                .execute(
                    &format!("insert into {schema}.orders values ($1, $2, $3::text::numeric, $4::text::timestamp)"),
                    &[id, c, t, at],
                )
                .await
                .unwrap();
        }
    });
    let mariadb_orders = mariadb::Database::create("chain");
    let database = &mariadb_orders.name;
    rt.block_on(async {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::from_url(MARIADB).await.unwrap();
        conn.query_drop(format!(
            "create table {database}.orders (order_id bigint primary key, customer_id bigint not null, total decimal(12,2) not null, created_at datetime not null)"
        ))
        .await
        .unwrap();
        for (id, c, t, at) in ORDERS {
            conn.exec_drop(format!("insert into {database}.orders values (?, ?, ?, ?)"), (id, c, t, at))
                .await
                .unwrap();
        }
        conn.disconnect().await.unwrap();
    });

    let on_postgres = run_chain(&format!("{PG}?options=-csearch_path%3D{schema}"));
    let on_mariadb = run_chain(&format!("mysql://root@127.0.0.1:3306/{database}"));

    drop((pg_orders, mariadb_orders));
    assert_eq!(on_postgres.0, expected());
    assert_eq!(on_postgres.1, (3, "145.49".to_string()));
    assert_eq!(on_mariadb, on_postgres);
}

/// An API of 95 records in pages of 10 (`?page=N`), whose page 3 fails twice with a 503 before
/// answering, and which wants a bearer token.
fn serve_api(rt: &tokio::runtime::Runtime, failures: Arc<AtomicUsize>) -> String {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/orders",
        get(move |Query(q): Query<std::collections::HashMap<String, String>>, headers: HeaderMap| {
            let failures = failures.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0ken-XYZ") {
                    return (StatusCode::UNAUTHORIZED, "no".to_string());
                }
                let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                if page == 3 && failures.fetch_add(1, Ordering::SeqCst) < 2 {
                    return (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string());
                }
                let records: Vec<serde_json::Value> = ((page - 1) * 10 + 1..=(page * 10).min(95))
                    .map(|id| serde_json::json!({"id": id, "amount": id as f64 * 1.5, "sku": format!("S{id}")}))
                    .collect();
                (StatusCode::OK, serde_json::json!({"data": records}).to_string())
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1?token=t0ken-XYZ")
}

#[test]
fn a_paged_api_that_fails_transiently_is_extracted_completely_and_loaded() {
    let rt = runtime();
    let failures = Arc::new(AtomicUsize::new(0));
    let uri = serve_api(&rt, failures.clone());
    let project = TestProject::new();
    project.write("connections.yaml", &format!("api: {uri}\n"));
    project.write(
        "pipelines/api.yaml",
        r#"
pipeline: api
schedule: "@daily"
start_date: 2024-01-01
tasks:
  extract_orders:
    extract:
      from:
        connection: api
        path: /orders
        records: data
        pagination: { type: page, param: page, start: 1 }
        retries: 3
      to: "lake://api/{{ ds }}.parquet"
  load_orders:
    after: [extract_orders]
    load:
      from: "lake://api/{{ ds }}.parquet"
      into: raw.api_orders
      mode: merge
      keys: [id]
"#,
    );
    for _ in 0..2 {
        project.sluice(&["clear", "api", "--date", "2024-01-01"]);
        let out = project.sluice(&["run", "api", "--date", "2024-01-01", "--json"]);
        assert_eq!(out.code, 0, "{}", out.explain());
        let run = out.json();
        assert_eq!(state_of(&run, "extract_orders").0, "success");
        assert_eq!(run["tasks"][0]["rows"], 95, "{}", out.explain());
        let all = format!(
            "{}{}{}",
            out.stdout,
            out.stderr,
            project
                .sluice(&[
                    "logs",
                    "api",
                    "--date",
                    "2024-01-01",
                    "--task",
                    "extract_orders"
                ])
                .stdout
        );
        assert!(!all.contains("t0ken-XYZ"), "the token was printed:\n{all}");
    }
    // Page 3: two 503s and an answer in the first run, one answer in the second.
    assert_eq!(failures.load(Ordering::SeqCst), 4);
    let db = sluice_warehouse::duckdb::Connection::open(project.path().join("warehouse.duckdb"))
        .unwrap();
    let (n, ids, sum): (i64, i64, f64) = db
        .query_row(
            "select count(*), count(distinct id), sum(amount) from raw.api_orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Merged twice on `id`: the same 95 rows, not 190.
    assert_eq!((n, ids, sum), (95, 95, 1.5 * (95.0 * 96.0 / 2.0)));
}

#[test]
fn a_lake_in_s3_holds_the_raw_files_and_the_extracts() {
    let s3 = sluice_testkit::s3::Server::start();
    let rt = runtime();
    let http = reqwest_client();
    rt.block_on(async {
        assert!(
            http.put(s3.url("lake"))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
        let csv = "id,amount\n1,2.5\n2,oops\n3,4.0\n";
        let put = http
            .put(s3.url("lake/prod/raw/2024-01-01.csv"))
            .body(csv)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
    });
    let secret = "Lake-S3cret-42";
    let project = TestProject::new();
    project.write(
        "connections.yaml",
        &format!(
            "lake: s3://lake/prod?endpoint=http://127.0.0.1:{}&region=us-east-1&access_key_id=k&secret_access_key={secret}\n",
            s3.port
        ),
    );
    project.write(
        "pipelines/s3.yaml",
        r#"
pipeline: s3
schedule: "@daily"
start_date: 2024-01-01
tasks:
  extract:
    extract:
      from: { files: "lake://raw/{{ ds }}.csv", schema: { id: int64!, amount: float64 } }
      to: "lake://clean/{{ ds }}/data.parquet"
      max_bad_records: 1
  load:
    after: [extract]
    load: { from: { task: extract }, into: raw.amounts, mode: replace }
"#,
    );
    let out = project.sluice(&["run", "s3", "--date", "2024-01-01", "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    assert_eq!(out.json()["tasks"][1]["rows"], 2, "{}", out.explain());
    let listing = rt.block_on(async {
        http.get(s3.url("lake?list-type=2"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        listing.contains("<Key>prod/clean/2024-01-01/data.parquet</Key>"),
        "{listing}"
    );
    let dlq = project.sluice(&["dlq", "list", "--json"]).json()["bad_records"].clone();
    assert_eq!(dlq[0]["source"], "lake://raw/2024-01-01.csv");
    assert_eq!(dlq[0]["line"], 3);
    let logs = project
        .sluice(&["logs", "s3", "--date", "2024-01-01", "--task", "extract"])
        .stdout;
    assert!(
        !format!("{}{}{logs}", out.stdout, out.stderr).contains(secret),
        "{logs}"
    );
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::new()
}
