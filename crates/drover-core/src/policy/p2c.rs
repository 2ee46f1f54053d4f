//! `p2c`: smooth weighted round robin. STUB — to be implemented.
use std::sync::Arc;
use super::{PickContext, Policy, scan_from};
use crate::Member;
#[derive(Debug)]
pub struct P2c;
impl P2c { pub fn new() -> Self { P2c } }
impl Policy for P2c {
    fn name(&self) -> &'static str { "p2c" }
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> { scan_from(members, ctx, 0) }
}
