//! Sources and sinks: data moves between systems as streams of Arrow record batches.
//!
//! Every source yields a [`BatchStream`] (bounded memory: one batch at a time); every sink takes
//! one. Sources never buffer a whole table.

pub mod bad;
pub mod error;
pub mod files;
pub mod http;
pub mod lake;
pub mod load;
pub mod mysql;
pub mod mysql_load;
pub mod postgres;
pub mod rows;
pub mod schema;

use arrow::array::RecordBatch;
use futures::stream::BoxStream;

pub use error::IoError;

/// Rows per record batch that sources aim for.
pub const BATCH_ROWS: usize = 65_536;

/// A stream of record batches that all share one schema.
pub type BatchStream = BoxStream<'static, Result<RecordBatch, IoError>>;

pub use arrow;
pub use reqwest;
