//! `random`: smooth weighted round robin. STUB — to be implemented.
use std::sync::Arc;
use super::{PickContext, Policy, scan_from};
use crate::Member;
#[derive(Debug)]
pub struct Random;
impl Random { pub fn new(_m: &[Arc<Member>]) -> Self { Random } }
impl Policy for Random {
    fn name(&self) -> &'static str { "random" }
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> { scan_from(members, ctx, 0) }
}
