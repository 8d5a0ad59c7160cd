//! Anti-replay: a sliding window over received packet numbers, in the
//! manner of RFC 6479 and WireGuard. A packet number is accepted once;
//! numbers more than [`WINDOW`] below the largest seen are refused. The
//! check runs before decryption (cheap drop) and the number is recorded
//! only after the packet authenticated, so forged packets cannot move it.

/// How far below the largest packet number a late packet may arrive.
pub const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// One more than the largest accepted packet number; 0 if none yet.
    next: u64,
    /// Bit `n % WINDOW` is set when packet `n` was seen (for the last
    /// `WINDOW` numbers).
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self { next: 0, bits: [0; WORDS] }
    }
}

impl ReplayWindow {
    /// Whether `pn` may be new. Does not record it.
    pub fn check(&self, pn: u64) -> bool {
        if pn >= self.next {
            return true;
        }
        if self.next - pn > WINDOW {
            return false;
        }
        let bit = pn % WINDOW;
        self.bits[(bit / 64) as usize] & (1 << (bit % 64)) == 0
    }

    /// Records `pn`, which [`check`](Self::check) accepted.
    pub fn record(&mut self, pn: u64) {
        if pn >= self.next {
            // Clear the bits of the numbers skipped over (at most a window).
            let skipped = (pn - self.next).min(WINDOW);
            for n in self.next..self.next + skipped {
                let bit = n % WINDOW;
                self.bits[(bit / 64) as usize] &= !(1 << (bit % 64));
            }
            self.next = pn + 1;
        }
        let bit = pn % WINDOW;
        self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    /// The largest packet number recorded, if any.
    pub fn largest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once() {
        let mut w = ReplayWindow::default();
        for pn in [0, 2, 1, 5, 3, 4] {
            assert!(w.check(pn));
            w.record(pn);
            assert!(!w.check(pn));
        }
        assert!(w.check(6));
    }

    #[test]
    fn refuses_numbers_below_the_window() {
        let mut w = ReplayWindow::default();
        w.record(10_000);
        // The window holds the WINDOW numbers up to the largest.
        assert!(!w.check(10_000 - WINDOW));
        assert!(w.check(10_000 - WINDOW + 1));
        w.record(10_000 - WINDOW + 5);
        assert!(!w.check(10_000 - WINDOW + 5));
        // A big jump forgets old bits rather than misreading them.
        w.record(50_000);
        assert!(w.check(50_000 - 1));
        assert!(!w.check(50_000));
    }
}
