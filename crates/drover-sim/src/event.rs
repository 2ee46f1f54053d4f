//! The event queue: the simulator's virtual clock.
//!
//! Where it sits: [`crate::sim`] pushes every future event (the next arrival, each job's departure)
//! with the virtual time it happens at, and pops them in time order; popping an event *is* moving
//! the clock. Time is `u64` nanoseconds, so sums and orderings are exact and a run is bit-for-bit
//! reproducible.
//!
//! Key type: [`EventQueue`], a binary min-heap on `(time, sequence)`. Events at the same instant
//! pop in the order they were pushed (the sequence number breaks ties), so the order never depends
//! on the heap's internal layout: the same seed always replays the same history.
//!
//! Concurrency: none; one simulation runs on one thread.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A pending event with its time and push order.
#[derive(Debug)]
struct Entry<E> {
    at: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Future events, popped earliest first; ties in push order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `event` at virtual time `at` (nanoseconds).
    pub fn push(&mut self, at: u64, event: E) {
        self.heap.push(Entry {
            at,
            seq: self.seq,
            event,
        });
        self.seq += 1;
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }

    /// Time of the earliest pending event.
    pub fn next_time(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_core::Rng;

    #[test]
    fn pops_in_time_order_and_ties_in_push_order() {
        let mut q = EventQueue::new();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        q.push(10, "a3");
        assert_eq!(q.len(), 5);
        assert_eq!(q.next_time(), Some(10));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![(10, "a1"), (10, "a2"), (10, "a3"), (20, "b"), (30, "c")]
        );
        assert!(q.is_empty() && q.pop().is_none());
    }

    #[test]
    fn interleaved_pushes_and_pops_stay_sorted() {
        let mut q = EventQueue::new();
        let mut rng = Rng::new(9);
        let mut now = 0;
        for i in 0..1_000u64 {
            q.push(now + rng.below(1_000) as u64, i);
            if i % 3 == 0 {
                let (t, _) = q.pop().unwrap();
                assert!(t >= now, "the clock never runs backwards");
                now = t;
            }
        }
        while let Some((t, _)) = q.pop() {
            assert!(t >= now);
            now = t;
        }
    }
}
