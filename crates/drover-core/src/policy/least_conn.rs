//! `least-conn`: smooth weighted round robin. STUB — to be implemented.
use std::sync::Arc;
use super::{PickContext, Policy, scan_from};
use crate::Member;
#[derive(Debug)]
pub struct LeastConn;
impl LeastConn { pub fn new() -> Self { LeastConn } }
impl Policy for LeastConn {
    fn name(&self) -> &'static str { "least-conn" }
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> { scan_from(members, ctx, 0) }
}
