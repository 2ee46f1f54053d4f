//! `hash`: smooth weighted round robin. STUB — to be implemented.
use std::sync::Arc;
use super::{PickContext, Policy, scan_from};
use crate::Member;
#[derive(Debug)]
pub struct ConsistentHash;
impl ConsistentHash { pub fn new(_m: &[Arc<Member>], _bound: f64) -> Self { ConsistentHash } }
impl Policy for ConsistentHash {
    fn name(&self) -> &'static str { "hash" }
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> { scan_from(members, ctx, 0) }
}
