//! `adaptive`: drover's best rule. **Placeholder**: today it is least-conn over in-flight relative
//! to live weight; the rule that reports set capacity and local in-flight and latency decide each
//! request lands here (issue 4), measured in docs/balancing.md.

use std::sync::Arc;

use super::{LeastConn, PickContext, Policy};
use crate::Member;

#[derive(Debug, Default)]
pub struct Adaptive {
    inner: LeastConn,
}

impl Adaptive {
    pub fn new(members: &[Arc<Member>]) -> Self {
        let _ = members;
        Self::default()
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        "adaptive"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        self.inner.pick(members, ctx)
    }
}
