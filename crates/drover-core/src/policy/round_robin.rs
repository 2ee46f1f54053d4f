//! `round-robin`: each eligible member in turn, ignoring weight.

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
        let start = self.next.fetch_add(1, Relaxed) % members.len();
        scan_from(members, ctx, start)
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
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 3_000);
    }
}
