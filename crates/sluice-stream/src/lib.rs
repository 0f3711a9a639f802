//! Event-time stream processing, independent of where records come from (Kafka) or go to
//! (sinks): per-partition watermarks with idleness, window assignment (tumbling, sliding,
//! session) and windowed aggregation with allowed lateness — Flink's semantics, exactly:
//!
//! - watermark = max event time seen − `max_out_of_orderness` − 1 ms, per partition; the
//!   stream's watermark is the minimum over the partitions that are not idle, and never goes
//!   back;
//! - a window [start, end) fires when the watermark reaches end − 1;
//! - with allowed lateness L, a record for a window that already fired updates it and the window
//!   fires again, until the watermark passes end − 1 + L; a record whose windows are all past
//!   that is late: it is handed back to the caller (for the dead-letter / late output) and
//!   counted, never dropped silently.
//!
//! Times are milliseconds since the Unix epoch.

pub mod aggregate;
pub mod watermark;
pub mod window;

pub use aggregate::{Aggregate, Value};
pub use watermark::Watermarks;
pub use window::{Emit, Fired, Placed, Snapshot, WindowOperator, WindowSpec};
