//! A small memo for what the audit worker works out once per route rather than per event
//! (kept per thread by its users, so no lock).

/// Up to a bound of entries, found by a linear scan (an application has a few dozen routes);
/// once full, new entries replace old ones in turn.
#[derive(Debug)]
pub(crate) struct Memo<T> {
    entries: Vec<T>,
    next: usize,
}

impl<T> Memo<T> {
    /// An empty memo.
    pub(crate) const fn new() -> Memo<T> {
        Memo {
            entries: Vec::new(),
            next: 0,
        }
    }

    /// The entry `is` accepts, or else the one `make` makes, kept for next time (at most
    /// `bound` are kept).
    pub(crate) fn get_or_insert(
        &mut self,
        bound: usize,
        is: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> &T {
        let i = match self.entries.iter().position(is) {
            Some(i) => i,
            None if self.entries.len() < bound.max(1) => {
                self.entries.push(make());
                self.entries.len() - 1
            }
            // Full (`bound` entries, and `next` below it): replace in turn.
            None => {
                let i = self.next;
                self.next = (i + 1) % self.entries.len();
                self.entries[i] = make();
                i
            }
        };
        &self.entries[i]
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn keeps_what_it_made_and_replaces_in_turn_when_full() {
        let mut memo = Memo::new();
        let made = std::cell::Cell::new(0);
        let mut get = |v: u32| {
            *memo.get_or_insert(
                2,
                |e| *e == v,
                || {
                    made.set(made.get() + 1);
                    v
                },
            )
        };
        assert_eq!(get(1), 1);
        assert_eq!(get(1), 1);
        assert_eq!(get(2), 2);
        assert_eq!(get(3), 3); // replaces 1
        assert_eq!(get(2), 2); // still kept
        assert_eq!(get(1), 1); // made again, replacing 2
        assert_eq!(made.get(), 4);
        assert_eq!(memo.entries, vec![3, 1]);
    }
}
