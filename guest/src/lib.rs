//! The policy half of pghook: Airflow's PostgresHook semantics, compiled to a
//! WebAssembly component that holds no socket and no file.
//!
//! Every module but [`hook`] is plain Rust that also builds and tests natively:
//! connection parsing ([`uri`], [`connection`]), extras ([`libpq`]), SQL
//! lexing and building ([`lexer`], [`sql`], [`copy`]), IAM decisions ([`iam`]), AWS connections ([`aws_conn`]) and the SQLAlchemy URI
//! ([`sqlalchemy`]). [`hook`] wires them to the host's imports.

pub mod aws_conn;
pub mod bindings;
pub mod connection;
pub mod copy;
pub mod dbapi;
pub mod error;
pub mod hook;
pub mod iam;
pub mod insert;
pub mod lexer;
pub mod libpq;
mod no_secrets;
mod robustness;
pub mod sql;
pub mod sqlalchemy;
pub mod uri;
