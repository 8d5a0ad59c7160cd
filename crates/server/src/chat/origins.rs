//! Exactly-once resends (docs/PROTOCOL.md §15.7): per client instance
//! (the Login's `origin`), the highest Say/Private request id accepted.
//! A client resends, with the same ids, what was not acknowledged when
//! its session ended; a request whose id is at or below the mark was
//! stored already, so it is acknowledged with seq 0 instead of being
//! stored twice. Request ids of one client increase in send order and a
//! session's requests are handled in order, so one number per origin is
//! enough.
//!
//! The marks here count what was *accepted* (in a commit in flight, too),
//! so a resend that arrives before the original's commit completes is not
//! stored twice either. Their durable copy is written by the store in the
//! same transaction as the lines (`Store::append`) and read back at
//! startup. A failed commit moves the mark back below its first failed
//! request, so the client's resend is stored (a line accepted after the
//! failed ones could then be stored twice; never one lost).
//!
//! Bound: [`MAX_ORIGINS`]; past it the least recently used origin is
//! forgotten (its resends would be stored again).

use std::collections::{BTreeMap, HashMap};

pub use crate::store::MAX_ORIGINS;

#[derive(Default)]
pub(crate) struct Origins {
    /// Origin to (mark, stamp).
    marks: HashMap<u64, (u64, u64)>,
    /// Stamp to origin, oldest first, for eviction.
    by_stamp: BTreeMap<u64, u64>,
    next_stamp: u64,
}

impl Origins {
    /// From the store's marks, least recently used first.
    pub(crate) fn load(marks: Vec<(u64, u64)>) -> Self {
        let mut origins = Self::default();
        for (origin, id) in marks {
            origins.set(origin, id);
        }
        origins
    }

    /// The highest id of `origin` accepted so far (0: none).
    pub(crate) fn mark(&self, origin: u64) -> u64 {
        self.marks.get(&origin).map_or(0, |&(id, _)| id)
    }

    /// Request `id` of `origin` was accepted.
    pub(crate) fn accept(&mut self, origin: u64, id: u64) {
        if origin != 0 && id > self.mark(origin) {
            self.set(origin, id);
        }
    }

    /// Request `id` of `origin` was not stored after all.
    pub(crate) fn failed(&mut self, origin: u64, id: u64) {
        if origin != 0 && id <= self.mark(origin) {
            self.set(origin, id.saturating_sub(1));
        }
    }

    fn set(&mut self, origin: u64, id: u64) {
        if let Some((_, stamp)) = self.marks.get(&origin) {
            self.by_stamp.remove(stamp);
        } else if self.marks.len() >= MAX_ORIGINS
            && let Some((_, oldest)) = self.by_stamp.pop_first()
        {
            self.marks.remove(&oldest);
        }
        self.next_stamp += 1;
        self.marks.insert(origin, (id, self.next_stamp));
        self.by_stamp.insert(self.next_stamp, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_grow_fall_back_on_failure_and_stay_bounded() {
        let mut o = Origins::load(vec![(7, 3)]);
        assert_eq!(o.mark(7), 3);
        o.accept(7, 2);
        assert_eq!(o.mark(7), 3, "a mark only grows");
        o.accept(7, 5);
        o.failed(7, 4);
        assert_eq!(o.mark(7), 3);
        o.accept(0, 9);
        assert_eq!(o.mark(0), 0, "no origin, no mark");
        for origin in 100..100 + MAX_ORIGINS as u64 {
            o.accept(origin, 1);
        }
        assert_eq!(o.mark(7), 0, "the least recently used is forgotten");
        assert_eq!(o.marks.len(), MAX_ORIGINS);
        assert_eq!(o.by_stamp.len(), MAX_ORIGINS);
    }
}
