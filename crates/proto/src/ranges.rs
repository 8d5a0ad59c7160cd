//! A set of `u64` values stored as sorted, disjoint, half-open ranges.
//!
//! One structure serves three jobs: packet numbers to acknowledge, stream
//! bytes received out of order, and stream bytes to retransmit. In all of
//! them the set is nearly always one to three ranges and grows at the top,
//! so a sorted `Vec` beats a tree: the common insert is a compare and an
//! assignment.

use std::ops::Range;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

#[allow(dead_code)] // is_empty, len, contains and iter serve tests and debugging
impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges (not values).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn min(&self) -> Option<u64> {
        self.ranges.first().map(|r| r.start)
    }

    pub fn max(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.end - 1)
    }

    pub fn contains(&self, value: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= value);
        self.ranges.get(i).is_some_and(|r| r.start <= value)
    }

    /// Adds `range`; returns true if any value in it was new.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return false;
        }
        // Fast path: at or past the top, which is where new data lands.
        if let Some(last) = self.ranges.last_mut()
            && range.start >= last.start
            && range.start <= last.end
        {
            let grew = range.end > last.end;
            if grew {
                last.end = range.end;
            }
            return grew;
        }
        // First range that touches or lies after `range`.
        let first = self.ranges.partition_point(|r| r.end < range.start);
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].start <= range.end {
            last += 1;
        }
        if first == last {
            self.ranges.insert(first, range);
            return true;
        }
        let start = range.start.min(self.ranges[first].start);
        let end = range.end.max(self.ranges[last - 1].end);
        let covered: u64 = self.ranges[first..last].iter().map(|r| r.end - r.start).sum();
        let new = end - start > covered;
        self.ranges.splice(first..last, std::iter::once(start..end));
        new
    }

    /// Removes every value in `range`.
    pub fn remove(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if r.end <= range.start || r.start >= range.end {
                out.push(r);
                continue;
            }
            if r.start < range.start {
                out.push(r.start..range.start);
            }
            if r.end > range.end {
                out.push(range.end..r.end);
            }
        }
        self.ranges = out;
    }

    /// Removes and returns up to `max_len` values from the bottom of the set.
    pub fn pop_min(&mut self, max_len: u64) -> Option<Range<u64>> {
        let first = self.ranges.first_mut()?;
        let end = first.end.min(first.start.saturating_add(max_len));
        let out = first.start..end;
        first.start = end;
        if first.is_empty() {
            self.ranges.remove(0);
        }
        Some(out)
    }

    /// Drops the lowest ranges until at most `max` remain.
    pub fn truncate_low(&mut self, max: usize) {
        if self.ranges.len() > max {
            let excess = self.ranges.len() - max;
            self.ranges.drain(..excess);
        }
    }

    /// The parts of `range` that are not in the set, in order.
    pub fn gaps_in(&self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self.ranges.partition_point(|r| r.end <= range.start);
        let mut cursor = range.start;
        let mut iter = self.ranges[first..].iter();
        std::iter::from_fn(move || {
            while cursor < range.end {
                match iter.next() {
                    Some(r) if r.start < range.end => {
                        let gap = cursor..r.start.min(range.end);
                        cursor = cursor.max(r.end);
                        if !gap.is_empty() && gap.start < gap.end {
                            return Some(gap);
                        }
                    }
                    _ => {
                        let gap = cursor..range.end;
                        cursor = range.end;
                        return Some(gap);
                    }
                }
            }
            None
        })
    }

    /// Ranges from the top down, as inclusive bounds (the ACK frame's order).
    pub fn iter_desc(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().rev().cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn merges_and_reports_novelty() {
        let mut s = RangeSet::new();
        assert!(s.insert(10..20));
        assert!(!s.insert(12..15));
        assert!(s.insert(0..5));
        assert!(s.insert(5..10));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..20]);
        assert!(s.insert(30..40));
        assert_eq!(s.gaps_in(0..50).collect::<Vec<_>>(), vec![20..30, 40..50]);
        assert_eq!(s.pop_min(7), Some(0..7));
        s.remove(8..35);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![7..8, 35..40]);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..20), 0..60)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for (add, start, len) in ops {
                let range = start..start + len;
                if add {
                    let new = range.clone().any(|v| !model.contains(&v));
                    prop_assert_eq!(s.insert(range.clone()), new);
                    model.extend(range);
                } else {
                    s.remove(range.clone());
                    for v in range { model.remove(&v); }
                }
                for v in 0..230 {
                    prop_assert_eq!(s.contains(v), model.contains(&v));
                }
                let gaps: Vec<u64> = s.gaps_in(0..230).flatten().collect();
                let expect: Vec<u64> = (0..230).filter(|v| !model.contains(v)).collect();
                prop_assert_eq!(gaps, expect);
            }
        }
    }
}
