//! The files a sweep leaves: one typed [`Row`] per scenario in the CSV and
//! one typed [`Metadata`] in the JSON beside it, written and read back by
//! the same types, and the facts of the machine that ran it.
//!
//! Nothing here measures or prints a table: the sweep fills these types,
//! and the load generator's printers read them.

pub mod machine;
pub mod meta;
pub mod row;

pub use meta::Metadata;
pub use row::{read_csv, Row, CSV_HEADER};

/// Serde through `Display` and `FromStr`: a mode, an operation and a volume
/// are written as the words the command line takes (`thread`, `upload`,
/// `10MB`).
pub(crate) mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
