//! `get_conn` as psycopg2 gives it: a connection that keeps one session
//! across calls, with psycopg2's transaction rules, which the guest applies.
//!
//! The connection pins a guest instance of its tenant's own: the guest's
//! `connection` resource lives in it, holding the session. Each method is
//! one call into that instance, under the tenant's time limit and the
//! hook's interrupt. A call that traps, runs out of memory, times out or is
//! interrupted drops the instance, and with it the session (its statement
//! cancelled on the server first): the connection is then closed, and its
//! later calls fail with [`ErrorKind::Closed`].

use std::sync::Arc;

use wasmtime::component::ResourceAny;

use crate::bindings::hook::{CopyOutcome, Parameters, RowShape};
use crate::error::{Error, ErrorKind};
use crate::interrupt::Interrupt;
use crate::postgres::Rowset;
use crate::progress::Progress;
use crate::runtime::{GuestCall, Instance, State};
use crate::{Hook, Tenant};

/// A connection opened by [`Hook::connection`]: psycopg2's connection, as
/// Airflow's `get_conn` returns it. Unless [`Connection::autocommit`], the
/// first statement opens a transaction that lasts until
/// [`Connection::commit`] or [`Connection::rollback`]; dropping the
/// connection rolls an open transaction back.
pub struct Connection {
    tenant: Tenant,
    interrupt: Interrupt,
    /// The pinned instance; none once closed.
    instance: Option<Instance>,
    /// The guest's `connection` resource in that instance.
    handle: ResourceAny,
    shape: RowShape,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("closed", &self.is_closed()).finish_non_exhaustive()
    }
}

/// A call on the guest's connection resource.
type ConnectionCall<R> =
    for<'a> fn(&'a crate::bindings::Pghook, &'a mut wasmtime::Store<State>, ResourceAny, Args) -> GuestCall<'a, R>;

/// The arguments of one connection call, owned so the call can hold them.
#[derive(Default)]
struct Args {
    sql: String,
    parameters: Option<Parameters>,
    filename: String,
    on: bool,
}

impl Hook {
    /// `get_conn` as psycopg2's connection: a session held open across
    /// calls, in a guest instance of its own (see [`Connection`]). For a
    /// raw tokio-postgres client, see [`Hook::get_conn`].
    pub async fn connection(&self) -> Result<Connection, Error> {
        let runtime = &self.tenant.runtime;
        let store = runtime.new_store(&self.tenant, self.progress.clone());
        let args = self.args.clone();
        let (opened, instance) = runtime
            .drive(&self.tenant.policy, store, None, &self.interrupt, move |guest, store| {
                Box::pin(async move {
                    let connection = guest.pghook_hook_hook().connection();
                    let handle = match connection.call_open(&mut *store, &args).await? {
                        Ok(handle) => handle,
                        Err(e) => return Ok(Err(e)),
                    };
                    let shape = connection.call_shape(&mut *store, handle).await?;
                    Ok(Ok((handle, shape)))
                })
            })
            .await;
        let (handle, shape) = opened?;
        Ok(Connection { tenant: self.tenant.clone(), interrupt: self.interrupt.clone(), instance, handle, shape })
    }
}

impl Connection {
    /// The row type the connection's `cursor` extra asks for.
    pub fn row_shape(&self) -> RowShape {
        self.shape
    }

    /// Whether the connection is closed: by [`Connection::close`], by a
    /// call that failed in a way that ends the session (a timeout, an
    /// interrupt, a trap), or by a call whose future was dropped before it
    /// completed (the instance is taken out for the call).
    pub fn is_closed(&self) -> bool {
        self.instance.is_none()
    }

    /// Close the session now, rolling back an open transaction.
    pub fn close(&mut self) {
        self.instance = None;
    }

    /// Report COPY progress of later calls to `progress`.
    pub fn set_progress(&mut self, progress: impl Progress + 'static) {
        if let Some(instance) = &mut self.instance {
            instance.store.data_mut().pghook.progress = Arc::new(progress);
        }
    }

    async fn call<R: Send + 'static>(&mut self, args: Args, call: ConnectionCall<R>) -> Result<R, Error> {
        let Instance { store, guest } = self.instance.take().ok_or_else(closed)?;
        let handle = self.handle;
        let runtime = &self.tenant.runtime;
        let (result, instance) = runtime
            .drive(&self.tenant.policy, store, Some(guest), &self.interrupt, move |guest, store| {
                call(guest, store, handle, args)
            })
            .await;
        self.instance = instance;
        result
    }

    /// `cursor.execute`: `sql` with `parameters` interpolated as psycopg2
    /// does; a string of several statements returns the last result.
    pub async fn execute(&mut self, sql: &str, parameters: Option<Parameters>) -> Result<Rowset, Error> {
        let args = Args { sql: sql.to_string(), parameters, ..Args::default() };
        self.call(args, |g, s, h, a| {
            Box::pin(async move {
                let result =
                    g.pghook_hook_hook().connection().call_execute(&mut *s, h, &a.sql, a.parameters.as_ref()).await?;
                crate::runtime::taking(result, |set| s.data_mut().take_rowset(set))
            })
        })
        .await
    }

    /// Commit the open transaction, if there is one.
    pub async fn commit(&mut self) -> Result<(), Error> {
        self.call(Args::default(), |g, s, h, _| {
            Box::pin(async move { g.pghook_hook_hook().connection().call_commit(s, h).await })
        })
        .await
    }

    /// Roll back the open transaction, if there is one.
    pub async fn rollback(&mut self) -> Result<(), Error> {
        self.call(Args::default(), |g, s, h, _| {
            Box::pin(async move { g.pghook_hook_hook().connection().call_rollback(s, h).await })
        })
        .await
    }

    /// Whether a transaction is open.
    pub async fn in_transaction(&mut self) -> Result<bool, Error> {
        self.call(Args::default(), |g, s, h, _| {
            Box::pin(async move { Ok(Ok(g.pghook_hook_hook().connection().call_in_transaction(s, h).await?)) })
        })
        .await
    }

    /// Whether each statement commits on its own (off when opened).
    pub async fn autocommit(&mut self) -> Result<bool, Error> {
        self.call(Args::default(), |g, s, h, _| {
            Box::pin(async move { Ok(Ok(g.pghook_hook_hook().connection().call_autocommit(s, h).await?)) })
        })
        .await
    }

    /// Set autocommit; refused while a transaction is open, as psycopg2 refuses.
    pub async fn set_autocommit(&mut self, on: bool) -> Result<(), Error> {
        let args = Args { on, ..Args::default() };
        self.call(args, |g, s, h, a| {
            Box::pin(async move { g.pghook_hook_hook().connection().call_set_autocommit(s, h, a.on).await })
        })
        .await
    }

    /// `cursor.copy_expert`: a `COPY ... FROM STDIN` or `COPY ... TO STDOUT`
    /// statement against a file under the tenant's root, in the
    /// connection's transaction. A missing input file is an error.
    pub async fn copy_expert(&mut self, sql: &str, filename: &str) -> Result<CopyOutcome, Error> {
        let args = Args { sql: sql.to_string(), filename: filename.to_string(), ..Args::default() };
        self.call(args, |g, s, h, a| {
            Box::pin(async move { g.pghook_hook_hook().connection().call_copy_expert(s, h, &a.sql, &a.filename).await })
        })
        .await
    }
}

/// The error of a call on a closed connection.
fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the connection is closed")
}
