//! pghook's end-to-end tests, in one test binary.
//!
//! One binary, not one per file: each test binary links wasmtime and the AWS
//! SDK, so one link instead of ten saves minutes and gigabytes. It is an
//! integration test of the `pghook` package (see host/Cargo.toml), so cargo
//! builds the `pghook` binary of this tree first and names it in
//! `CARGO_BIN_EXE_pghook`. The harness (clusters, moto, the Serverless
//! stand-in) is the `pghook-tests` library.

mod airflow;
mod cli;
mod connections;
mod copy_attacks;
mod dbapi;
mod failover;
mod files;
mod hook;
mod iam;
mod libpq_files;
mod limits;
mod python;
mod sandbox;
mod tls;
mod types;

use std::path::Path;

/// The `pghook` binary cargo built for these tests, always of this tree.
pub fn pghook_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pghook"))
}
