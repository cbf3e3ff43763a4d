//! How `core` types are stored in SQLite columns: names as TEXT, epochs and timestamps as
//! INTEGER. A stored value this binary does not recognise reads back as an error, which
//! the journal reports as damage rather than guessing.

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};

use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Direction, RegionName};
use crate::core::step::{AttemptOutcome, AttemptPhase, ErrorClass, RunStatus, StepState};
use crate::core::time::Ts;

/// Stored as their `as_str` names.
macro_rules! text_enum {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

text_enum!(
    StepState,
    RunStatus,
    AttemptPhase,
    AttemptOutcome,
    ErrorClass
);

impl ToSql for Direction {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Direction {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        match v.as_str()? {
            "failover" => Ok(Direction::Failover),
            "failback" => Ok(Direction::Failback),
            other => Err(FromSqlError::Other(
                format!("unknown direction `{other}`").into(),
            )),
        }
    }
}

/// Stored as INTEGER; SQLite integers are signed, and values past `i64::MAX` (which no
/// clock or epoch reaches) are refused rather than wrapped.
macro_rules! integer_newtype {
    ($($ty:ident),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                let v = i64::try_from(self.0)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                Ok(ToSqlOutput::from(v))
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let i = v.as_i64()?;
                u64::try_from(i).map($ty).map_err(|_| FromSqlError::OutOfRange(i))
            }
        }
    )+};
}

integer_newtype!(Epoch, Ts);

/// Stored as TEXT.
macro_rules! string_newtype {
    ($($ty:ident),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.0.as_str()))
            }
        }
        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                Ok($ty(v.as_str()?.to_string()))
            }
        }
    )+};
}

string_newtype!(RunId, RegionName);
