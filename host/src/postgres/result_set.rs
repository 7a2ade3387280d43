//! Query results, kept in the host: the `result-set` resource. The guest
//! gets a handle and passes it back to the caller; the rows enter the
//! guest only when it reads them itself (a table's key columns).

use wasmtime::component::Resource;

use super::rows::Rows;
use crate::bindings::hook::RowShape;
use crate::bindings::postgres::HostResultSet;
use crate::bindings::types::{Column, Error as WitError, ErrorKind, Value};
use crate::ctx::PghookCtxView;
use crate::error::wit;

/// The outcome of one statement: the host side of the WIT `result-set`,
/// whose methods' docs define these fields. An embedder that calls the
/// guest's exports itself owns each one they return: it takes it out of
/// its store's `ResourceTable` with `delete` (or the rows stay there).
#[derive(Debug, Clone, PartialEq)]
pub struct Rowset {
    /// `columns`.
    pub columns: Vec<Column>,
    /// The rows kept (`rows`), each with one cell per column.
    pub rows: Rows,
    /// `row-count`.
    pub row_count: u64,
}

/// Rows shaped as the connection's `cursor` extra asks: `get_records` and
/// `get_first`.
#[derive(Debug, Clone, PartialEq)]
pub struct Records {
    /// How the caller should present the rows.
    pub shape: RowShape,
    /// The result's columns, in order.
    pub columns: Vec<Column>,
    /// The rows, each with one cell per column.
    pub rows: Rows,
}

/// What is left of one call's result limit.
pub(crate) struct ResultBudget {
    left: usize,
    limit: usize,
}

impl ResultBudget {
    /// The whole of `limit` bytes.
    pub(crate) fn new(limit: usize) -> ResultBudget {
        ResultBudget { left: limit, limit }
    }

    /// Spend the `bytes` a row takes (as [`Rows::push`] counts them); an
    /// error once the limit is passed.
    pub(crate) fn spend(&mut self, bytes: usize) -> Result<(), WitError> {
        self.take(bytes)
    }

    /// Spend what a result of `columns` costs before its rows: a call of
    /// many statements keeps a result each.
    pub(crate) fn spend_result(&mut self, columns: &[Column]) -> Result<(), WitError> {
        let names: usize = columns.iter().map(|c| c.name.len() + c.type_name.len()).sum();
        self.take(std::mem::size_of::<Rowset>() + std::mem::size_of_val(columns) + names)
    }

    fn take(&mut self, bytes: usize) -> Result<(), WitError> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| over_limit(self.limit))?;
        Ok(())
    }
}

/// The result-limit error.
fn over_limit(limit: usize) -> WitError {
    wit(
        ErrorKind::Limit,
        format!(
            "the result is over this tenant's result limit of {} MiB: fetch fewer rows, or raise the limit",
            limit.div_ceil(1 << 20)
        ),
    )
}

// A handle the host does not know is a bug, not bad input: it traps.
impl HostResultSet for PghookCtxView<'_> {
    async fn columns(&mut self, handle: Resource<Rowset>) -> wasmtime::Result<Vec<Column>> {
        Ok(self.table.get(&handle)?.columns.clone())
    }

    async fn row_count(&mut self, handle: Resource<Rowset>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&handle)?.row_count)
    }

    /// A cell the server sent malformed traps the call (the WIT has no
    /// error here): it is a broken server, not bad input.
    async fn rows(&mut self, handle: Resource<Rowset>) -> wasmtime::Result<Vec<Vec<Value>>> {
        Ok(self.table.get(&handle)?.rows.to_values()?)
    }

    async fn truncate(&mut self, handle: Resource<Rowset>, len: u64) -> wasmtime::Result<()> {
        let rows = &mut self.table.get_mut(&handle)?.rows;
        rows.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }

    async fn drop(&mut self, handle: Resource<Rowset>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
