//! get_conn's connection, psycopg2's rules: a session held across calls,
//! and unless autocommit, a transaction the first statement opens and
//! `commit` or `rollback` ends.

use std::cell::Cell;

use crate::bindings::hook::{Connection, CopyOutcome, GuestConnection, HookArgs, Parameters, RowShape};
use crate::bindings::postgres::{ResultSet, Session, TransactionSteps};
use crate::bindings::types::Error;
use crate::copy::{CopyStatement, Direction};
use crate::error::{Result, config};
use crate::hook::{Hook, statements_of, transaction_steps};
use crate::sql::interpolate;

/// psycopg2's transaction state: whether statements commit on their own,
/// and whether a transaction is open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    /// Each statement commits on its own.
    pub autocommit: bool,
    /// A statement opened a transaction not yet ended.
    pub open: bool,
}

impl Transaction {
    /// The transaction steps around each of `count` statements that one
    /// `execute` sends, and the state after them (failed or not: a failed
    /// statement leaves the transaction open until `rollback`, as the
    /// server does). Outside autocommit the first statement opens a
    /// transaction unless one is open; in autocommit, several statements
    /// run in one transaction of their own, as the server runs a string of
    /// several statements.
    /// Each step is `(begin, commit)`.
    pub fn execute(self, count: usize) -> (Vec<(bool, bool)>, Transaction) {
        let steps = (0..count)
            .map(|i| match self.autocommit {
                false => (i == 0 && !self.open, false),
                true => (count > 1 && i == 0, count > 1 && i + 1 == count),
            })
            .collect();
        (steps, Transaction { open: self.open || !self.autocommit, ..self })
    }
}

/// The guest's `connection` resource.
pub struct DbConnection {
    hook: Hook,
    session: Session,
    shape: RowShape,
    transaction: Cell<Transaction>,
}

impl DbConnection {
    /// Open the transaction before a statement that needs one (a COPY).
    fn begin_if_needed(&self) -> Result<()> {
        let (steps, after) = self.transaction.get().execute(1);
        if steps[0].0 {
            self.session.query("BEGIN", TransactionSteps::empty())?;
        }
        self.transaction.set(after);
        Ok(())
    }

    /// End the open transaction with `end` (`COMMIT` or `ROLLBACK`).
    fn end(&self, end: &str) -> Result<()> {
        let transaction = self.transaction.get();
        if !transaction.open {
            return Ok(());
        }
        // The transaction is over whatever the server answers: a failed
        // COMMIT rolls back.
        self.transaction.set(Transaction { open: false, ..transaction });
        let ended = self.session.query(end, TransactionSteps::empty()).map(drop);
        self.hook.log_notices(&self.session);
        ended
    }
}

impl GuestConnection for DbConnection {
    fn open(args: HookArgs) -> std::result::Result<Connection, Error> {
        let hook = Hook::new(args)?;
        let (session, shape) = hook.connect()?;
        Ok(Connection::new(DbConnection { hook, session, shape, transaction: Cell::new(Transaction::default()) }))
    }

    fn shape(&self) -> RowShape {
        self.shape
    }

    fn execute(&self, sql: String, parameters: Option<Parameters>) -> std::result::Result<ResultSet, Error> {
        if sql.is_empty() {
            return Err(config("can't execute an empty query"));
        }
        let statements = statements_of(&interpolate(&sql, parameters.as_ref())?);
        let (steps, after) = self.transaction.get().execute(statements.len());
        self.transaction.set(after);
        let mut last = None;
        let count = statements.len();
        for (i, (statement, (begin, commit))) in statements.iter().zip(steps).enumerate() {
            let outcome = self.session.query(statement, transaction_steps(begin, commit));
            self.hook.log_notices(&self.session);
            if outcome.is_err() && after.autocommit && count > 1 && i + 1 < count {
                // The statements' own transaction ends with the failure.
                let _ = self.session.query("ROLLBACK", TransactionSteps::empty());
            }
            last = Some(outcome?);
        }
        last.ok_or_else(|| config("no statement was run"))
    }

    fn commit(&self) -> std::result::Result<(), Error> {
        self.end("COMMIT")
    }

    fn rollback(&self) -> std::result::Result<(), Error> {
        self.end("ROLLBACK")
    }

    fn in_transaction(&self) -> bool {
        self.transaction.get().open
    }

    fn autocommit(&self) -> bool {
        self.transaction.get().autocommit
    }

    fn set_autocommit(&self, on: bool) -> std::result::Result<(), Error> {
        let transaction = self.transaction.get();
        if transaction.open {
            return Err(config("set_session cannot be used inside a transaction"));
        }
        self.transaction.set(Transaction { autocommit: on, ..transaction });
        Ok(())
    }

    fn copy_expert(&self, sql: String, filename: String) -> std::result::Result<CopyOutcome, Error> {
        let statement = CopyStatement::parse(&sql)?;
        let sql = statement.render()?;
        self.begin_if_needed()?;
        let rows = match statement.direction {
            Direction::Load => self.session.copy_from_file(&sql, &filename),
            Direction::Dump => self.session.copy_to_file(&sql, &filename),
        };
        self.hook.log_notices(&self.session);
        Ok(CopyOutcome { loaded: statement.direction == Direction::Load, rows: rows? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: (bool, bool) = (true, false);
    const COMMIT: (bool, bool) = (false, true);
    const NONE: (bool, bool) = (false, false);

    #[test]
    fn the_first_statement_opens_the_transaction_and_it_stays_open() {
        let fresh = Transaction::default();
        let (steps, after) = fresh.execute(1);
        assert_eq!(steps, [BEGIN]);
        assert!(after.open);
        let (steps, after) = after.execute(2);
        assert_eq!(steps, [NONE, NONE]);
        assert!(after.open);
    }

    #[test]
    fn autocommit_runs_each_execute_on_its_own() {
        let auto = Transaction { autocommit: true, open: false };
        assert_eq!(auto.execute(1), (vec![NONE], auto));
        assert_eq!(auto.execute(3), (vec![BEGIN, NONE, COMMIT], auto));
    }
}
