pub use duckdb;
