//! Append-only tables indexed by dense ids: the rows known at load in a plain vector, the rows
//! learned while serving in a concurrent append-only vector after them.
//!
//! Reads of a load-time row cost what a `Vec` index costs (the bounds check becomes the branch
//! between the two parts); learned rows are read lock-free too, and their addresses never move.

/// A table whose rows `0..base` were given at construction and whose later rows are appended
/// through a shared reference.
#[derive(Debug)]
pub struct Growing<T> {
    base: Vec<T>,
    learned: boxcar::Vec<T>,
}

impl<T> Growing<T> {
    pub fn new(base: Vec<T>) -> Growing<T> {
        Growing { base, learned: boxcar::Vec::new() }
    }

    /// Row `i`, if it exists (a learned row exists once its push has returned).
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        match self.base.get(i) {
            Some(row) => Some(row),
            None => self.learned.get(i - self.base.len()),
        }
    }

    /// Appends a row and returns its index. Callers that keep several tables in step push to all
    /// of them under one lock.
    pub fn push(&self, row: T) -> usize {
        self.base.len() + self.learned.push(row)
    }

    /// Rows given at construction.
    pub fn base_len(&self) -> usize {
        self.base.len()
    }

    /// Rows learned since construction.
    pub fn learned_len(&self) -> usize {
        self.learned.count()
    }

    pub fn len(&self) -> usize {
        self.base.len() + self.learned.count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row in index order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.base.iter().chain(self.learned.iter().map(|(_, row)| row))
    }
}

impl<T> Default for Growing<T> {
    fn default() -> Growing<T> {
        Growing::new(Vec::new())
    }
}

impl<T> std::ops::Index<usize> for Growing<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        self.get(i).unwrap_or_else(|| panic!("row {i} of a table of {}", self.len()))
    }
}

impl<T: Clone> Clone for Growing<T> {
    fn clone(&self) -> Growing<T> {
        let copy = Growing::new(self.base.clone());
        for (_, row) in self.learned.iter() {
            copy.push(row.clone());
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_rows_follow_the_base_rows_and_keep_their_addresses() {
        let t = Growing::new(vec![10, 11]);
        let first = &t[0] as *const i32;
        assert_eq!((t.push(12), t.push(13)), (2, 3));
        for i in 0..1000 {
            t.push(i);
        }
        assert_eq!((t[1], t[2], t[3], t.get(1003), t.get(1004)), (11, 12, 13, Some(&999), None));
        assert_eq!(first, &t[0] as *const i32);
        assert_eq!((t.base_len(), t.learned_len(), t.len()), (2, 1002, 1004));
        assert_eq!(t.iter().take(4).copied().collect::<Vec<_>>(), [10, 11, 12, 13]);
        let c = t.clone();
        assert!(c.iter().eq(t.iter()));
    }

    #[test]
    fn rows_pushed_from_many_threads_are_all_there_once() {
        let t = Growing::new(vec![]);
        std::thread::scope(|s| {
            for k in 0..4 {
                let t = &t;
                s.spawn(move || {
                    for i in 0..500 {
                        t.push(k * 1000 + i);
                    }
                });
            }
        });
        let mut all: Vec<i32> = t.iter().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..4).flat_map(|k| (0..500).map(move |i| k * 1000 + i)).collect::<Vec<_>>());
    }
}
