//! Trace segments: the durable, bounded, per-container store of event records.
