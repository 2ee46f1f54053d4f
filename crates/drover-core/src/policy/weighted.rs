//! `weighted`: smooth weighted round robin. STUB — to be implemented.
use std::sync::Arc;
use super::{PickContext, Policy, scan_from};
use crate::Member;
#[derive(Debug)]
pub struct Weighted;
impl Weighted { pub fn new(_m: &[Arc<Member>]) -> Self { Weighted } }
impl Policy for Weighted {
    fn name(&self) -> &'static str { "weighted" }
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> { scan_from(members, ctx, 0) }
}
