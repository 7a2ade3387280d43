//! insert_rows: the INSERT statements, built from parsed names (quoted, so
//! safer than Airflow's raw interpolation, yet folded as PostgreSQL folds
//! unquoted names) and the rows' values as literals.

use crate::bindings::hook::Param;
use crate::copy::TableRef;
use crate::error::{Result, config};
use crate::sql::push_param_literal;

/// Airflow's `commit_every` default.
pub const COMMIT_EVERY: u32 = 1000;

/// The parts of every INSERT of one insert_rows call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertPlan {
    /// `INSERT INTO "t" ("a", "b") VALUES `.
    head: String,
    /// ` ON CONFLICT (...) DO UPDATE SET ...`, or nothing.
    tail: String,
    /// How many values each row must have, if the fields are named.
    width: Option<usize>,
}

/// Names as PostgreSQL reads a parenthesized list of them, quoted.
fn names(what: &str, list: &[String]) -> Result<Vec<String>> {
    if list.is_empty() {
        return Err(config(format!("{what}: an empty list of columns")));
    }
    let parsed = TableRef::parse(&format!("t ({})", list.join(", ")))
        .map_err(|_| config(format!("{what}: invalid column names {list:?}")))?;
    Ok(parsed.columns)
}

impl InsertPlan {
    /// Plan inserts into `table` (`[schema.]table`). `replace` upserts on
    /// `conflict`, which then must be given (the caller looks up the
    /// primary key when the replace index is not).
    pub fn new(
        table: &str,
        target_fields: Option<&[String]>,
        replace: bool,
        conflict: Option<&[String]>,
    ) -> Result<InsertPlan> {
        let table = TableRef::parse(table)?;
        if !table.columns.is_empty() {
            return Err(config("insert_rows: name the columns with target_fields, not in the table name"));
        }
        let fields = target_fields.map(|f| names("target_fields", f)).transpose()?;
        let head = match &fields {
            Some(fields) => format!("INSERT INTO {} ({}) VALUES ", table.name, fields.join(", ")),
            None => format!("INSERT INTO {} VALUES ", table.name),
        };
        let mut tail = String::new();
        if replace {
            let fields = fields
                .as_ref()
                .ok_or_else(|| config("PostgreSQL ON CONFLICT upsert syntax requires column names (target_fields)"))?;
            let key = names("replace_index", conflict.ok_or_else(|| config("replace needs a replace_index"))?)?;
            let others: Vec<String> =
                fields.iter().filter(|f| !key.contains(f)).map(|f| format!("{f} = excluded.{f}")).collect();
            tail = match others.is_empty() {
                true => format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")),
                false => format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), others.join(", ")),
            };
        }
        Ok(InsertPlan { head, tail, width: fields.map(|f| f.len()) })
    }

    /// One row as `(v, ...)`, onto `out`.
    fn push_row(&self, out: &mut String, row: &[Param]) -> Result<()> {
        if let Some(width) = self.width
            && row.len() != width
        {
            return Err(config(format!("a row has {} values for {width} target fields", row.len())));
        }
        if row.is_empty() {
            return Err(config("a row without values"));
        }
        out.push('(');
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_param_literal(out, value)?;
        }
        out.push(')');
        Ok(())
    }

    /// One INSERT of all of `rows` (the fast path).
    pub fn statement(&self, rows: &[Vec<Param>]) -> Result<String> {
        let mut out = String::with_capacity(self.head.len() + self.tail.len() + 64 * rows.len());
        out.push_str(&self.head);
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.push_row(&mut out, row)?;
        }
        out.push_str(&self.tail);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::Value;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn inserts_as_airflow_builds_them_with_names_quoted() {
        let plan = InsertPlan::new("Public.T", Some(&strings(&["id", "\"Name\""])), false, None).unwrap();
        let rows = vec![vec![Param::Value(Value::Int(1)), Param::Value(Value::Text("o'k".into()))]];
        assert_eq!(
            plan.statement(&rows).unwrap(),
            "INSERT INTO \"public\".\"t\" (\"id\", \"Name\") VALUES (1, E'o''k')"
        );
        let plain = InsertPlan::new("t", None, false, None).unwrap();
        assert_eq!(plain.statement(&[vec![Param::Value(Value::Null)]]).unwrap(), "INSERT INTO \"t\" VALUES (NULL)");
    }

    #[test]
    fn upserts() {
        let fields = strings(&["id", "name", "n"]);
        let plan = InsertPlan::new("t", Some(&fields), true, Some(&strings(&["id"]))).unwrap();
        let row = vec![Param::Value(Value::Int(1)), Param::Value(Value::Null), Param::Value(Value::Int(2))];
        assert_eq!(
            plan.statement(&[row]).unwrap(),
            "INSERT INTO \"t\" (\"id\", \"name\", \"n\") VALUES (1, NULL, 2) \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"n\" = excluded.\"n\""
        );
        let key_only = InsertPlan::new("t", Some(&strings(&["id"])), true, Some(&strings(&["id"]))).unwrap();
        assert!(
            key_only
                .statement(&[vec![Param::Value(Value::Int(1))]])
                .unwrap()
                .ends_with("ON CONFLICT (\"id\") DO NOTHING")
        );
    }

    #[test]
    fn refusals() {
        assert!(InsertPlan::new("t", None, true, Some(&strings(&["id"]))).is_err());
        assert!(InsertPlan::new("t", Some(&strings(&["a); drop table t; --"])), false, None).is_err());
        assert!(InsertPlan::new("t (a)", None, false, None).is_err());
        let plan = InsertPlan::new("t", Some(&strings(&["a", "b"])), false, None).unwrap();
        assert!(plan.statement(&[vec![Param::Value(Value::Int(1))]]).is_err());
    }
}
