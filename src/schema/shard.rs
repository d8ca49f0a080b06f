//! `run --shard K/N`: which shard of the plan a run holds.

use serde::{Deserialize, Serialize};

/// `run --shard K/N`: this run measures shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// K, from 1 to `count`.
    pub index: usize,
    /// N, at least 1.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--shard` value that is not K/N with 1 <= K <= N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a shard: use K/N with 1 <= K <= N, as in `2/4`")]
pub struct ShardError(pub String);

impl std::str::FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let bad = || ShardError(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the case at `position` (0-based, in plan order after `--filter`) is dealt to
    /// this shard.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// Plan position of the `i`-th case (0-based) of this shard: the inverse of `owns`.
    pub fn position(&self, i: usize) -> usize {
        i * self.count + (self.index - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_deal_every_case_exactly_once() {
        let ids: Vec<usize> = (0..23).collect();
        for count in 1..=7 {
            let mut seen = vec![0; ids.len()];
            let mut sizes = Vec::new();
            for index in 1..=count {
                let s = Shard { index, count };
                let mine: Vec<usize> = ids.iter().copied().filter(|&p| s.owns(p)).collect();
                for (i, &p) in mine.iter().enumerate() {
                    assert_eq!(s.position(i), p);
                    seen[p] += 1;
                }
                sizes.push(mine.len());
            }
            assert!(seen.iter().all(|&n| n == 1), "N={count}: {seen:?}");
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "N={count}: {sizes:?}");
        }
    }

    #[test]
    fn shard_specs_parse_or_explain() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/2", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.to_string().contains("K/N"), "{bad}: {e}");
        }
    }
}
