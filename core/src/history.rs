//! The breaker's last few transitions.

use heapless::Vec;

use crate::breaker::Transition;

/// The last `H` transitions, in a ring over a `heapless::Vec` (heapless's
/// `HistoryBuf` is the same ring, but it refuses a capacity of zero, and a
/// firmware breaker that keeps no history, `H = 0`, must cost nothing).
#[derive(Clone, Debug)]
pub(crate) struct History<const H: usize> {
    slots: Vec<Transition, H>,
    /// The oldest transition's slot once every slot is written (0 before).
    oldest: usize,
}

impl<const H: usize> History<H> {
    /// An empty history.
    pub(crate) const fn new() -> Self {
        History {
            slots: Vec::new(),
            oldest: 0,
        }
    }

    /// Keeps `transition`, in place of the oldest if full; keeps nothing if
    /// `H` is zero.
    ///
    /// Out of line: every transition writes one, and one copy of the ring's
    /// arithmetic is enough.
    #[inline(never)]
    pub(crate) fn write(&mut self, transition: &Transition) {
        // Said outright: the optimiser cannot see that an empty `Vec` of no
        // capacity stays empty.
        if H == 0 {
            return;
        }
        if let Err(transition) = self.slots.push(*transition) {
            if let Some(slot) = self.slots.get_mut(self.oldest) {
                *slot = transition;
                self.oldest = if self.oldest + 1 == H {
                    0
                } else {
                    self.oldest + 1
                };
            }
        }
    }

    /// The latest transition.
    pub(crate) fn recent(&self) -> Option<&Transition> {
        match self.oldest {
            0 => self.slots.last(),
            n => self.slots.get(n - 1),
        }
    }

    /// Every transition kept, oldest first.
    pub(crate) fn oldest_first(&self) -> impl Iterator<Item = &Transition> + '_ {
        let (newer, older) = self.slots.split_at(self.oldest);
        older.iter().chain(newer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{State, TransitionReason};
    use crate::time::Instant;

    const BLANK: Transition = Transition {
        from: State::Closed,
        to: State::Closed,
        at: Instant::ZERO,
        reason: TransitionReason::Reset,
        generation: 0,
    };

    fn at(generation: u64) -> Transition {
        Transition {
            generation,
            ..BLANK
        }
    }

    fn generations<const H: usize>(h: &History<H>) -> ([u64; 8], usize) {
        let mut out = [0; 8];
        let mut n = 0;
        for t in h.oldest_first() {
            out[n] = t.generation;
            n += 1;
        }
        (out, n)
    }

    #[test]
    fn keeps_the_last_h_oldest_first() {
        let mut h = History::<3>::new();
        assert_eq!(h.recent(), None);
        assert_eq!(generations(&h).1, 0);
        for g in 1..=2 {
            h.write(&at(g));
        }
        assert_eq!(generations(&h), ([1, 2, 0, 0, 0, 0, 0, 0], 2));
        assert_eq!(h.recent().map(|t| t.generation), Some(2));
        h.write(&at(3));
        assert_eq!(generations(&h), ([1, 2, 3, 0, 0, 0, 0, 0], 3));
        assert_eq!(h.recent().map(|t| t.generation), Some(3));
        for g in 4..=5 {
            h.write(&at(g));
        }
        assert_eq!(generations(&h), ([3, 4, 5, 0, 0, 0, 0, 0], 3));
        assert_eq!(h.recent().map(|t| t.generation), Some(5));
    }

    #[test]
    fn a_history_of_one_keeps_the_latest() {
        let mut h = History::<1>::new();
        for g in 1..=3 {
            h.write(&at(g));
            assert_eq!(generations(&h), ([g, 0, 0, 0, 0, 0, 0, 0], 1));
            assert_eq!(h.recent().map(|t| t.generation), Some(g));
        }
    }

    #[test]
    fn a_history_of_zero_keeps_nothing() {
        let mut h = History::<0>::new();
        h.write(&at(1));
        assert_eq!(h.recent(), None);
        assert_eq!(generations(&h).1, 0);
    }
}
