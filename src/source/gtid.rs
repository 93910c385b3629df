//! GTID sets, as the two flavours spell them, so a binlog position can be carried to another
//! server whose file names differ (a failover, a replica). MariaDB's `gtid_binlog_pos` is the
//! last GTID per replication domain (`domain-server-seq`, comma-separated); MySQL's
//! `gtid_executed` is a set of transaction numbers per source UUID (`uuid:1-5:7`, comma-separated).
//! Capture adds each transaction's GTID as it commits, so every staged position carries the set
//! that holds exactly the transactions before it; `cdc capture` resumes from that set.

use std::collections::BTreeMap;
use std::fmt;

/// One transaction's GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    Mariadb { domain: u32, server: u32, seq: u64 },
    /// The source UUID as `8-4-4-4-12` hex, and the transaction number.
    Mysql { uuid: String, gno: u64 },
}

impl Gtid {
    /// MariaDB's GTID event body: seq_no (u64 LE), then domain_id (u32 LE); the server id is the
    /// event header's.
    pub fn from_mariadb_event(body: &[u8], server: u32) -> Option<Gtid> {
        let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
        Some(Gtid::Mariadb { domain, server, seq })
    }

    /// MySQL's GTID event body: flags (1 byte), the source UUID (16 bytes), gno (u64 LE).
    pub fn from_mysql_event(body: &[u8]) -> Option<Gtid> {
        let uuid = body.get(1..17)?;
        let gno = u64::from_le_bytes(body.get(17..25)?.try_into().ok()?);
        let h = hex::encode(uuid);
        let uuid = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
        Some(Gtid::Mysql { uuid, gno })
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Mariadb { domain, server, seq } => write!(f, "{domain}-{server}-{seq}"),
            Gtid::Mysql { uuid, gno } => write!(f, "{uuid}:{gno}"),
        }
    }
}

/// One source UUID's transactions as the dump command sends them: `[start, end)` intervals.
pub type SidBlock = ([u8; 16], Vec<(u64, u64)>);

/// A GTID set of either flavour (empty: no transaction known yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    /// MariaDB: domain → (server, seq) of the domain's last transaction.
    mariadb: BTreeMap<u32, (u32, u64)>,
    /// MySQL: source UUID (lower case) → sorted, disjoint, inclusive intervals.
    mysql: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// Reads `0-1-5,1-2-9` (MariaDB) or `uuid:1-5:7,uuid2:3` (MySQL; whitespace and newlines as
    /// SHOW MASTER STATUS prints them are ignored).
    pub fn parse(text: &str) -> Result<GtidSet, String> {
        let mut set = GtidSet::default();
        let bad = |part: &str, why: &str| format!("GTID set {text:?}: {part:?} {why}");
        for part in text.split(',').map(|p| p.split_whitespace().collect::<String>()).filter(|p| !p.is_empty()) {
            if let Some((uuid, ranges)) = part.split_once(':') {
                if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                    return Err(bad(&part, "does not start with a source UUID"));
                }
                for r in ranges.split(':') {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    let (a, b) = (a.parse::<u64>().map_err(|_| bad(&part, "has a bad interval"))?, b.parse::<u64>().map_err(|_| bad(&part, "has a bad interval"))?);
                    if a == 0 || b < a {
                        return Err(bad(&part, "has an empty interval"));
                    }
                    set.add_mysql_range(&uuid.to_ascii_lowercase(), a, b);
                }
            } else {
                let nums: Vec<&str> = part.split('-').collect();
                let [d, s, q] = nums[..] else { return Err(bad(&part, "is not domain-server-seq")) };
                let p = |x: &str| x.parse::<u64>().map_err(|_| bad(&part, "is not domain-server-seq"));
                let (domain, server, seq) = (p(d)? as u32, p(s)? as u32, p(q)?);
                set.mariadb.insert(domain, (server, seq));
            }
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// Adds one committed transaction.
    pub fn add(&mut self, g: &Gtid) {
        match g {
            Gtid::Mariadb { domain, server, seq } => {
                self.mariadb.insert(*domain, (*server, *seq));
            }
            Gtid::Mysql { uuid, gno } => self.add_mysql_range(uuid, *gno, *gno),
        }
    }

    fn add_mysql_range(&mut self, uuid: &str, a: u64, b: u64) {
        let v = self.mysql.entry(uuid.to_string()).or_default();
        v.push((a, b));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(s, e) in v.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *v = merged;
    }

    /// The MySQL set as COM_BINLOG_DUMP_GTID wants it: per UUID, half-open intervals.
    pub fn mysql_blocks(&self) -> Vec<SidBlock> {
        self.mysql
            .iter()
            .filter_map(|(uuid, ranges)| {
                let bytes: [u8; 16] = hex::decode(uuid.replace('-', "")).ok()?.try_into().ok()?;
                Some((bytes, ranges.iter().map(|&(a, b)| (a, b + 1)).collect()))
            })
            .collect()
    }

    /// Adds every transaction of `other` (MariaDB: the later of the two per domain).
    pub fn union(&mut self, other: &GtidSet) {
        for (&d, &(server, seq)) in &other.mariadb {
            if self.mariadb.get(&d).is_none_or(|&(_, mine)| mine < seq) {
                self.mariadb.insert(d, (server, seq));
            }
        }
        for (uuid, ranges) in &other.mysql {
            for &(a, b) in ranges {
                self.add_mysql_range(uuid, a, b);
            }
        }
    }

    /// Adds MySQL's `uuid` transactions `a..=b` (a PREVIOUS_GTIDS event's interval).
    pub fn add_mysql(&mut self, uuid: [u8; 16], a: u64, b: u64) {
        let h = hex::encode(uuid);
        self.add_mysql_range(&format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]), a, b);
    }

    /// Whether every transaction of `other` is in this set: MySQL's `GTID_SUBSET(other, self)`;
    /// MariaDB per replication domain (a domain's sequence numbers only grow, whichever server
    /// wrote them).
    pub fn contains(&self, other: &GtidSet) -> bool {
        let mariadb = other.mariadb.iter().all(|(d, &(_, seq))| self.mariadb.get(d).is_some_and(|&(_, mine)| mine >= seq));
        let mysql = other.mysql.iter().all(|(uuid, ranges)| {
            let mine = self.mysql.get(uuid).map(Vec::as_slice).unwrap_or_default();
            ranges.iter().all(|&(a, b)| mine.iter().any(|&(x, y)| x <= a && b <= y))
        });
        mariadb && mysql
    }

    /// True when the set is MySQL's kind (UUIDs).
    pub fn is_mysql(&self) -> bool {
        !self.mysql.is_empty()
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.mariadb.iter().map(|(d, (s, q))| format!("{d}-{s}-{q}")).collect();
        for (uuid, ranges) in &self.mysql {
            let r: Vec<String> = ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
            parts.push(format!("{uuid}:{}", r.join(":")));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_is_per_uuid_interval_and_per_mariadb_domain() {
        let p = |s: &str| GtidSet::parse(s).unwrap();
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert!(p(&format!("{u}:1-10")).contains(&p(&format!("{u}:3-5:7"))));
        assert!(!p(&format!("{u}:1-5:7-10")).contains(&p(&format!("{u}:5-7"))), "6 is missing");
        assert!(!p(&format!("{u}:1-10")).contains(&p("4e11fa47-71ca-11e1-9e33-c80aa9429562:1")));
        assert!(p("0-2-150,1-1-3").contains(&p("0-1-100")), "another server of the same domain, further on");
        assert!(!p("0-2-150").contains(&p("0-1-100,1-1-3")), "domain 1 is unknown to it");
        assert!(!p("0-1-99").contains(&p("0-1-100")));
        assert!(p("0-1-1").contains(&GtidSet::default()));
    }

    #[test]
    fn mariadb_positions_keep_the_last_gtid_of_each_domain() {
        let mut s = GtidSet::parse("0-1-5,1-2-9").unwrap();
        s.add(&Gtid::Mariadb { domain: 0, server: 2, seq: 6 });
        s.add(&Gtid::Mariadb { domain: 3, server: 1, seq: 1 });
        assert_eq!(s.to_string(), "0-2-6,1-2-9,3-1-1");
        assert!(GtidSet::parse("").unwrap().is_empty());
        assert!(GtidSet::parse("0-1").unwrap_err().contains("domain-server-seq"));
    }

    #[test]
    fn mysql_sets_merge_adjacent_transactions_into_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut s = GtidSet::parse(&format!("{}:1-5:7,\n 4E11FA47-71CA-11E1-9E33-C80AA9429562:3", u.to_uppercase())).unwrap();
        s.add(&Gtid::Mysql { uuid: u.into(), gno: 6 });
        s.add(&Gtid::Mysql { uuid: u.into(), gno: 9 });
        assert_eq!(s.to_string(), format!("{u}:1-7:9,4e11fa47-71ca-11e1-9e33-c80aa9429562:3"));
        let blocks = s.mysql_blocks();
        assert_eq!(blocks[0].1, vec![(1, 8), (9, 10)], "half-open, as the dump command wants");
        assert_eq!(hex::encode(blocks[0].0), u.replace('-', ""));
        assert!(GtidSet::parse(&format!("{u}:5-3")).is_err());
        assert!(GtidSet::parse("nope:1-3").is_err());
    }

    #[test]
    fn gtid_events_of_both_flavours_are_read() {
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend_from_slice(&7u32.to_le_bytes());
        body.push(0);
        assert_eq!(Gtid::from_mariadb_event(&body, 1).unwrap().to_string(), "7-1-42");
        assert_eq!(Gtid::from_mariadb_event(&body[..5], 1), None);
        let mut my = vec![1u8];
        my.extend(hex::decode("3e11fa4771ca11e19e33c80aa9429562").unwrap());
        my.extend(12u64.to_le_bytes());
        assert_eq!(Gtid::from_mysql_event(&my).unwrap().to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:12");
    }
}
