//! A fixed-size bitset whose bits can be flipped by many threads at once.

use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per store. Bits are hints read without locks; the owner re-checks under its lock.
#[derive(Debug)]
pub struct AtomicBitset {
    words: Box<[AtomicU64]>,
    /// How many times a bit has gone from clear to set: a reader that saw this count, and
    /// every set bit with it, knows that no bit outside what it saw has been set since while
    /// the count is unchanged.
    sets: AtomicU64,
    /// How many bits are set.
    ones: AtomicU64,
}

impl AtomicBitset {
    /// A bitset of `len` cleared bits.
    ///
    /// # Runtime
    /// O(len / 64).
    pub fn new(len: usize) -> AtomicBitset {
        AtomicBitset {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            sets: AtomicU64::new(0),
            ones: AtomicU64::new(0),
        }
    }

    /// How many times a bit has been set from clear (see the field). Read it before reading
    /// the words it vouches for.
    #[inline]
    pub fn sets(&self) -> u64 {
        self.sets.load(Ordering::Acquire)
    }

    /// How many bits are set (bits changing meanwhile may be counted either way).
    #[inline]
    pub fn count(&self) -> u64 {
        self.ones.load(Ordering::Relaxed)
    }

    /// Word `w` of the bits (bit `i` is bit `i % 64` of word `i / 64`).
    #[inline]
    pub fn word(&self, w: usize) -> u64 {
        self.words[w].load(Ordering::Relaxed)
    }

    /// A copy of the bits, word by word (bit `i` is bit `i % 64` of word `i / 64`). Bits that
    /// change during the copy may be seen either way.
    ///
    /// # Runtime
    /// O(len / 64).
    pub fn snapshot(&self) -> Vec<u64> {
        self.words.iter().map(|w| w.load(Ordering::Relaxed)).collect()
    }

    /// Whether bit `i` is set. Out-of-range bits read as clear.
    #[inline]
    pub fn get(&self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|word| word.load(Ordering::Relaxed) & (1 << b) != 0)
    }

    /// Sets bit `i` to `on`. Writes only when the bit changes: a reservation that leaves a cell
    /// available (nearly all of them) then only reads the word, so cores routing around the same
    /// stores do not take its cache line from each other.
    ///
    /// Callers change a given bit only while holding the lock that guards it (the ledger: the
    /// store's), so no other change of this bit can come between the check and the write;
    /// other bits of the word change through atomic read-modify-writes.
    #[inline]
    pub fn set(&self, i: u32, on: bool) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if (self.words[w].load(Ordering::Relaxed) & (1 << b) != 0) == on {
            return;
        }
        if on {
            self.words[w].fetch_or(1 << b, Ordering::Relaxed);
            // After the bit: a reader that sees the new count sees the bit.
            self.sets.fetch_add(1, Ordering::Release);
            self.ones.fetch_add(1, Ordering::Relaxed);
        } else {
            self.words[w].fetch_and(!(1 << b), Ordering::Relaxed);
            self.ones.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_round_trip_across_word_boundaries() {
        let b = AtomicBitset::new(130);
        for i in [0, 63, 64, 129] {
            assert!(!b.get(i));
            b.set(i, true);
            assert!(b.get(i));
        }
        b.set(64, false);
        assert!(!b.get(64) && b.get(63) && b.get(129));
        assert!(!b.get(10_000));
    }

    #[test]
    fn the_set_count_moves_only_when_a_clear_bit_is_set() {
        let b = AtomicBitset::new(130);
        b.set(3, true);
        b.set(3, true);
        b.set(70, true);
        assert_eq!(b.sets(), 2);
        b.set(3, false);
        assert_eq!(b.sets(), 2);
        b.set(3, true);
        assert_eq!(b.sets(), 3);
        assert_eq!(b.count(), 2);
        assert_eq!(b.snapshot(), vec![1 << 3, 1 << 6, 0]);
    }
}
