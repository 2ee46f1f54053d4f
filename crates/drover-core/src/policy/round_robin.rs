//! `round-robin`: each eligible member in turn, ignoring weight.
//!
//! When the member whose turn it is cannot be chosen (down, off, draining, already tried), the
//! pick takes the next eligible one and moves the cursor past the members it skipped, so their
//! turns are dropped rather than all handed to the member that follows them: with one member of
//! four down, the other three keep equal shares instead of one of them taking two.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{PickContext, Policy, scan_from};
use crate::Member;

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let n = members.len();
        let start = self.next.fetch_add(1, Relaxed) % n;
        let i = scan_from(members, ctx, start)?;
        let skipped = (i + n - start) % n;
        if skipped > 0 {
            self.next.fetch_add(skipped, Relaxed);
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flag;
    use crate::policy::testing::{members, spread};

    #[test]
    fn even_spread_and_skips_unready() {
        let ms = members(&[1, 5, 1]);
        let p = RoundRobin::new();
        assert_eq!(spread(&p, &ms, 3_000, 1), vec![1_000, 1_000, 1_000]);
        ms[1].state.set(Flag::Up, false);
        let c = spread(&p, &ms, 3_000, 1);
        assert_eq!(c, vec![1_500, 0, 1_500]);
    }

    #[test]
    fn a_down_member_does_not_double_its_neighbour() {
        let ms = members(&[1, 1, 1, 1, 1]);
        let p = RoundRobin::new();
        ms[0].state.set(Flag::Up, false);
        ms[4].state.set(Flag::On, false);
        assert_eq!(spread(&p, &ms, 3_000, 1), vec![0, 1_000, 1_000, 1_000, 0]);
    }
}
