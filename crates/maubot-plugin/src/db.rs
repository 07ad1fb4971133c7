//! The instance's own SQL database (`database: true` in `maubot.yaml`): an SQLite file or a
//! PostgreSQL schema, as the server decides, the same place a Python plugin's instance gets.
//! Parameters are `$1`, `$2`, ... on both engines.
//!
//! ```no_run
//! use maubot_plugin::db::{self, params};
//! # fn f() -> maubot_plugin::Result<()> {
//! db::execute("CREATE TABLE IF NOT EXISTS note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)", &[])?;
//! db::execute("INSERT INTO note (text) VALUES ($1)", &params!["remember the milk"])?;
//! for row in db::query("SELECT id, text FROM note ORDER BY id", &[])? {
//!     let (id, text): (i64, String) = (row.get(0)?, row.get(1)?);
//! }
//! # Ok(()) }
//! ```

use crate::bindings::maubot::plugin::database as wit;
use crate::{Error, Result};

/// A value of a parameter or a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Which engine the database is on, for plugins that write SQL for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The engine of the instance's database.
pub fn engine() -> Engine {
    match wit::engine() {
        wit::EngineKind::Sqlite => Engine::Sqlite,
        wit::EngineKind::Postgres => Engine::Postgres,
    }
}

/// Runs a statement; how many rows it changed.
pub fn execute(sql: &str, params: &[Value]) -> Result<u64> {
    Ok(wit::execute(sql, &to_wit(params))?)
}

/// Runs a query; its rows.
pub fn query(sql: &str, params: &[Value]) -> Result<Vec<Row>> {
    let rows = wit::query(sql, &to_wit(params))?;
    let columns = std::rc::Rc::new(rows.columns);
    Ok(rows
        .rows
        .into_iter()
        .map(|values| Row {
            columns: columns.clone(),
            values: values.into_iter().map(Value::from).collect(),
        })
        .collect())
}

/// The first row of a query, if it has one.
pub fn query_row(sql: &str, params: &[Value]) -> Result<Option<Row>> {
    Ok(query(sql, params)?.into_iter().next())
}

fn to_wit(params: &[Value]) -> Vec<wit::Value> {
    params
        .iter()
        .map(|value| match value {
            Value::Null => wit::Value::Null,
            Value::Integer(i) => wit::Value::Integer(*i),
            Value::Real(r) => wit::Value::Real(*r),
            Value::Text(t) => wit::Value::Text(t.clone()),
            Value::Blob(b) => wit::Value::Blob(b.clone()),
        })
        .collect()
}

impl From<wit::Value> for Value {
    fn from(value: wit::Value) -> Self {
        match value {
            wit::Value::Null => Value::Null,
            wit::Value::Integer(i) => Value::Integer(i),
            wit::Value::Real(r) => Value::Real(r),
            wit::Value::Text(t) => Value::Text(t),
            wit::Value::Blob(b) => Value::Blob(b),
        }
    }
}

/// One row of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: std::rc::Rc<Vec<String>>,
    values: Vec<Value>,
}

impl Row {
    /// Column `index` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| Error::failed(format_args!("the row has no column {index}")))?;
        T::from_value(value)
    }

    /// The column named `name` as a `T`.
    pub fn get_by_name<T: FromValue>(&self, name: &str) -> Result<T> {
        let index = self
            .columns
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| Error::failed(format_args!("the row has no column {name}")))?;
        self.get(index)
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// Parameters of a statement: `params![1, "text", None::<i64>]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Value::from($value)),*]
    };
}
pub use crate::params;

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}
impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Integer(value.into())
    }
}
impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Integer(value.into())
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Integer(value.into())
    }
}
impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}
impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}
impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Blob(value)
    }
}
impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Value::Blob(value.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// What a column's value can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self>;
}

fn mismatch(value: &Value, what: &str) -> Error {
    Error::failed(format_args!("cannot read {value:?} as {what}"))
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(value.clone())
    }
}
impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(mismatch(other, "an integer")),
        }
    }
}
impl FromValue for u64 {
    fn from_value(value: &Value) -> Result<Self> {
        let i = i64::from_value(value)?;
        u64::try_from(i).map_err(|_| mismatch(value, "an unsigned integer"))
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Real(r) => Ok(*r),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(mismatch(other, "a number")),
        }
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            other => Err(mismatch(other, "text")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(mismatch(other, "bytes")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_both_ways() {
        let params = params![1, "a", None::<i64>, Some(2.5), true, vec![1u8]];
        assert_eq!(
            params,
            [
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Null,
                Value::Real(2.5),
                Value::Integer(1),
                Value::Blob(vec![1]),
            ]
        );
        let row = Row {
            columns: std::rc::Rc::new(vec!["n".into(), "t".into(), "x".into()]),
            values: vec![Value::Integer(7), Value::Text("hi".into()), Value::Null],
        };
        assert_eq!(row.get::<i64>(0), Ok(7));
        assert_eq!(row.get::<f64>(0), Ok(7.0));
        assert_eq!(row.get_by_name::<String>("t"), Ok("hi".into()));
        assert_eq!(row.get::<Option<String>>(2), Ok(None));
        assert!(row.get::<String>(0).is_err());
        assert!(row.get::<i64>(3).is_err());
        assert!(row.get_by_name::<i64>("nope").is_err());
    }
}
