//! Version vectors: which device changed a file, and how often, as BEP counts it.

use crate::identity::ShortId;

/// One device's counter in a [`Vector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Counter {
    pub id: ShortId,
    pub value: u64,
}

/// A version vector: counters kept sorted by device short ID, at most one per device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Vector {
    counters: Vec<Counter>,
}

/// How two vectors relate. The concurrent cases carry Syncthing's tie-break direction: at the
/// lowest device ID where the counters differ, the "greater" side has the larger counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    Equal,
    Greater,
    Lesser,
    ConcurrentGreater,
    ConcurrentLesser,
}

impl Ordering {
    pub fn is_concurrent(self) -> bool {
        matches!(self, Self::ConcurrentGreater | Self::ConcurrentLesser)
    }
}

/// Bytes one counter takes in [`Vector::to_bytes`].
const ENCODED_COUNTER_LEN: usize = 16;

impl Vector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from counters in any order; a later counter for the same device wins,
    /// zero counters are dropped.
    pub fn from_counters(counters: impl IntoIterator<Item = Counter>) -> Self {
        let mut v = Self::new();
        for c in counters {
            v.set(c.id, c.value);
        }
        v
    }

    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The counter for `id`, 0 when absent.
    pub fn counter(&self, id: ShortId) -> u64 {
        self.find(id).map_or(0, |i| self.counters[i].value)
    }

    fn find(&self, id: ShortId) -> Result<usize, usize> {
        self.counters.binary_search_by_key(&id.0, |c| c.id.0)
    }

    fn set(&mut self, id: ShortId, value: u64) {
        match self.find(id) {
            Ok(i) if value == 0 => {
                self.counters.remove(i);
            }
            Ok(i) => self.counters[i].value = value,
            Err(_) if value == 0 => {}
            Err(i) => self.counters.insert(i, Counter { id, value }),
        }
    }

    /// The vector after a local change by `id` at `now_unix_s`: that device's counter becomes
    /// `max(old + 1, now)`, so counters double as coarse timestamps (Syncthing ≥ 1.6).
    #[must_use]
    pub fn updated(&self, id: ShortId, now_unix_s: u64) -> Self {
        let mut v = self.clone();
        let old = v.counter(id);
        v.set(id, old.saturating_add(1).max(now_unix_s));
        v
    }

    /// Compares two vectors, treating a missing counter as 0.
    pub fn compare(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.counters, &other.counters);
        let (mut i, mut j) = (0, 0);
        let (mut greater, mut lesser) = (false, false);
        // Direction at the lowest ID where the two differ, for the concurrent tie-break.
        let mut first_diff_greater: Option<bool> = None;
        while i < a.len() || j < b.len() {
            let (av, bv) = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.id.0 == y.id.0 => {
                    (i, j) = (i + 1, j + 1);
                    (x.value, y.value)
                }
                (Some(x), Some(y)) if x.id.0 < y.id.0 => {
                    i += 1;
                    (x.value, 0)
                }
                (Some(x), None) => {
                    i += 1;
                    (x.value, 0)
                }
                (_, Some(y)) => {
                    j += 1;
                    (0, y.value)
                }
                (None, None) => break,
            };
            if av != bv {
                first_diff_greater.get_or_insert(av > bv);
                greater |= av > bv;
                lesser |= av < bv;
            }
        }
        match (greater, lesser) {
            (false, false) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Lesser,
            (true, true) if first_diff_greater == Some(true) => Ordering::ConcurrentGreater,
            (true, true) => Ordering::ConcurrentLesser,
        }
    }

    /// A compact encoding for storage: each counter as big-endian `id` then `value`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counters.len() * ENCODED_COUNTER_LEN);
        for c in &self.counters {
            out.extend_from_slice(&c.id.0.to_be_bytes());
            out.extend_from_slice(&c.value.to_be_bytes());
        }
        out
    }

    /// Decodes [`Vector::to_bytes`]; `None` when the bytes are not a whole number of counters.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(ENCODED_COUNTER_LEN) {
            return None;
        }
        let counters = bytes.chunks_exact(ENCODED_COUNTER_LEN).map(|c| {
            let (id, value) = c.split_at(8);
            Counter {
                id: ShortId(u64::from_be_bytes(id.try_into().unwrap_or([0; 8]))),
                value: u64::from_be_bytes(value.try_into().unwrap_or([0; 8])),
            }
        });
        Some(Self::from_counters(counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(u64, u64)]) -> Vector {
        Vector::from_counters(pairs.iter().map(|&(id, value)| Counter { id: ShortId(id), value }))
    }

    #[test]
    fn update_uses_max_of_increment_and_clock() {
        let me = ShortId(7);
        // A fresh counter starts at the clock.
        assert_eq!(Vector::new().updated(me, 1_795_268_472).counter(me), 1_795_268_472);
        // A counter ahead of the clock (clock went back) still grows by one.
        assert_eq!(v(&[(7, 2_000_000_000)]).updated(me, 1_795_268_472).counter(me), 2_000_000_001);
        // With the clock at 0 it is a plain increment.
        assert_eq!(v(&[(7, 5)]).updated(me, 0).counter(me), 6);
        // Other devices' counters are kept.
        let u = v(&[(3, 9), (7, 5)]).updated(me, 10);
        assert_eq!(u.counter(ShortId(3)), 9);
        assert_eq!(u.counter(me), 10);
    }

    #[test]
    fn counters_stay_sorted_by_id() {
        let u = Vector::new().updated(ShortId(9), 1).updated(ShortId(2), 1).updated(ShortId(5), 1);
        let ids: Vec<u64> = u.counters().iter().map(|c| c.id.0).collect();
        assert_eq!(ids, [2, 5, 9]);
    }

    #[test]
    fn compare_orders_and_concurrency() {
        assert_eq!(v(&[(1, 1)]).compare(&v(&[(1, 1)])), Ordering::Equal);
        assert_eq!(v(&[]).compare(&v(&[])), Ordering::Equal);
        assert_eq!(v(&[(1, 2)]).compare(&v(&[(1, 1)])), Ordering::Greater);
        assert_eq!(v(&[(1, 1)]).compare(&v(&[(1, 2)])), Ordering::Lesser);
        assert_eq!(v(&[(1, 1), (2, 1)]).compare(&v(&[(1, 1)])), Ordering::Greater);
        assert_eq!(v(&[(2, 1)]).compare(&v(&[(1, 1), (2, 1)])), Ordering::Lesser);
        // Concurrent: the direction is set at the lowest differing ID.
        assert_eq!(v(&[(1, 2), (2, 1)]).compare(&v(&[(1, 1), (2, 2)])), Ordering::ConcurrentGreater);
        assert_eq!(v(&[(1, 1), (2, 2)]).compare(&v(&[(1, 2), (2, 1)])), Ordering::ConcurrentLesser);
        assert_eq!(v(&[(1, 1)]).compare(&v(&[(2, 1)])), Ordering::ConcurrentGreater);
        assert_eq!(v(&[(2, 1)]).compare(&v(&[(1, 1)])), Ordering::ConcurrentLesser);
    }

    #[test]
    fn compare_is_antisymmetric() {
        let vs =
            [v(&[]), v(&[(1, 1)]), v(&[(1, 2)]), v(&[(2, 1)]), v(&[(1, 1), (2, 3)]), v(&[(1, 3), (2, 1)])];
        for a in &vs {
            for b in &vs {
                let flipped = match a.compare(b) {
                    Ordering::Equal => Ordering::Equal,
                    Ordering::Greater => Ordering::Lesser,
                    Ordering::Lesser => Ordering::Greater,
                    Ordering::ConcurrentGreater => Ordering::ConcurrentLesser,
                    Ordering::ConcurrentLesser => Ordering::ConcurrentGreater,
                };
                assert_eq!(b.compare(a), flipped, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn bytes_round_trip_and_reject_garbage() {
        let x = v(&[(u64::MAX, 3), (1, 1_795_268_472)]);
        assert_eq!(Vector::from_bytes(&x.to_bytes()), Some(x));
        assert_eq!(Vector::from_bytes(&[]), Some(Vector::new()));
        assert_eq!(Vector::from_bytes(&[1, 2, 3]), None);
    }
}
