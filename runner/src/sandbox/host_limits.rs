//! Caps on what the host holds on a guest's behalf outside its linear
//! memory (which `limits.memory` covers, see [`super::TotalMemoryLimiter`]).
//!
//! Every host object a guest can create lives in the store's resource table
//! (streams, pollables, sockets, `wasi:http` fields, requests, bodies), so a
//! cap on entries times a cap on the largest entry bounds them all: a guest
//! that keeps ~9,000 `fields` of 100 kB each used to hold 910 MB of host
//! memory under a 64 MiB stage limit; now it is refused at
//! [`MAX_TABLE_ENTRIES`] × [`MAX_FIELDS_BYTES`] = [`HOST_RESOURCE_BYTES`].

/// Resource-table entries a guest may hold at once. Real plugins hold tens.
pub const MAX_TABLE_ENTRIES: usize = 4096;

/// Bytes one `wasi:http` `fields` resource may hold (names, values and their
/// in-memory overhead, as wasmtime-wasi-http counts them). Proxies limit a
/// whole header block to 8–16 KiB on the wire.
pub const MAX_FIELDS_BYTES: usize = 16 * 1024;

/// Bytes one outgoing request body buffers between the guest's writes and
/// the connection (one chunk of this size in flight).
pub const BODY_CHUNK_BYTES: usize = 16 * 1024;

/// Upper bound of host memory that a stage's resources can hold beyond its
/// `limits.memory`: every entry at the size of the largest one (64 MiB).
pub const HOST_RESOURCE_BYTES: usize = MAX_TABLE_ENTRIES * MAX_FIELDS_BYTES;

/// The message for a guest that filled its resource table: names the cap
/// and what the plugin must do about it.
pub fn table_full_message() -> String {
    format!(
        "resource limit reached: the plugin held {MAX_TABLE_ENTRIES} host resources at once (streams, pollables, sockets, HTTP fields, requests, bodies), the per-stage cap\n  help: the plugin must drop the handles it no longer uses (the cap is fixed, see README, \"Limits\")"
    )
}
