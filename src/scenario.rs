//! What a scenario is made of, in the words of the command line and the
//! CSV: the operation (`download`, `upload`, `list`) and the volume (`10MB`,
//! `100KB`), and the list flags that name several of them.
//!
//! Plain values only: shared by the load generator that runs scenarios and
//! the results files that record them, it depends on neither.

use std::fmt;

/// One operation of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Download,
    Upload,
    List,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Download, Op::Upload, Op::List];

    pub fn name(self) -> &'static str {
        match self {
            Op::Download => "download",
            Op::Upload => "upload",
            Op::List => "list",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Op, String> {
        match s {
            "download" => Ok(Op::Download),
            "upload" => Ok(Op::Upload),
            "list" => Ok(Op::List),
            _ => Err(format!(
                "unknown operation {s:?} (download, upload or list)"
            )),
        }
    }
}

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// A transfer size. 1 MB = 1048576 bytes, 1 KB = 1024 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Volume {
    pub bytes: u64,
}

impl Volume {
    pub fn mb(n: u64) -> Volume {
        Volume { bytes: n * MIB }
    }

    pub fn kb(n: u64) -> Volume {
        Volume { bytes: n * KIB }
    }

    /// `10MB`, `100KB` or `1234B`: the largest unit that divides the size.
    pub fn label(self) -> String {
        if self.bytes.is_multiple_of(MIB) {
            format!("{}MB", self.bytes / MIB)
        } else if self.bytes.is_multiple_of(KIB) {
            format!("{}KB", self.bytes / KIB)
        } else {
            format!("{}B", self.bytes)
        }
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::str::FromStr for Volume {
    type Err = String;
    /// A bare number is in MB (`10`, `0.5`); a suffix names the unit:
    /// `MB`/`M`, `KB`/`K`, `B`.
    fn from_str(s: &str) -> Result<Volume, String> {
        let t = s.trim();
        let upper = t.to_ascii_uppercase();
        let (num, unit) = if let Some(n) = upper.strip_suffix("MB").or(upper.strip_suffix('M')) {
            (n, MIB)
        } else if let Some(n) = upper.strip_suffix("KB").or(upper.strip_suffix('K')) {
            (n, KIB)
        } else if let Some(n) = upper.strip_suffix('B') {
            (n, 1)
        } else {
            (upper.as_str(), MIB)
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("invalid volume {s:?} (e.g. 10, 10MB, 100KB)"))?;
        let bytes = (v * unit as f64).round();
        if !(1.0..1e15).contains(&bytes) {
            return Err(format!("volume {s:?} must be a positive size"));
        }
        Ok(Volume {
            bytes: bytes as u64,
        })
    }
}

/// Splits a list flag (`"1 5 50"`, `"1,5,50"`) and parses each item.
pub fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String>
where
    T::Err: fmt::Display,
{
    let items: Vec<T> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<T>().map_err(|e| format!("{what}: {e}")))
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(format!("{what}: empty list"));
    }
    Ok(items)
}

/// A scenario's five columns in the text tables (the sweep's and the
/// report's repeats): mode, server pool, operation, volume, client pool.
pub fn scenario_columns(
    mode: &str,
    server_pool: usize,
    op: Op,
    v: Volume,
    clients: usize,
) -> String {
    format!(
        "{mode:<8} {server_pool:>6} {:<9} {:>7} {clients:>7}",
        op.name(),
        v.label()
    )
}

/// The same five columns' heads.
pub fn scenario_heads() -> String {
    format!(
        "{:<8} {:>6} {:<9} {:>7} {:>7}",
        "mode", "server", "operation", "volume", "clients"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_and_label() {
        assert_eq!("10".parse::<Volume>().unwrap(), Volume::mb(10));
        assert_eq!("10MB".parse::<Volume>().unwrap(), Volume::mb(10));
        assert_eq!("100kb".parse::<Volume>().unwrap(), Volume::kb(100));
        assert_eq!("0.5".parse::<Volume>().unwrap(), Volume::kb(512));
        assert_eq!("1000B".parse::<Volume>().unwrap().bytes, 1000);
        assert!("0".parse::<Volume>().is_err());
        assert!("-3".parse::<Volume>().is_err());
        assert!("ten".parse::<Volume>().is_err());
        assert_eq!(Volume::mb(100).label(), "100MB");
        assert_eq!(Volume::kb(50).label(), "50KB");
        assert_eq!(Volume { bytes: 1000 }.label(), "1000B");
    }

    #[test]
    fn lists_split_on_spaces_and_commas() {
        assert_eq!(parse_list::<usize>("1 5,50", "x").unwrap(), vec![1, 5, 50]);
        assert!(parse_list::<usize>("  ", "x").is_err());
        assert!(parse_list::<Op>("download,put", "x").is_err());
    }
}
