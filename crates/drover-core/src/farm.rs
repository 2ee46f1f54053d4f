//! A farm: a named, immutable snapshot of members and the policy built over them.
//!
//! The proxy holds farms behind `ArcSwap`; a change of membership or weights builds a new `Farm`
//! (members are `Arc`s, so their flags and counters carry over) and swaps it in atomically.

use std::sync::Arc;

use crate::member::{Member, MemberSpec};
use crate::policy::{PickContext, Policy, PolicyKind};

#[derive(Debug)]
pub struct Farm {
    pub name: String,
    pub kind: PolicyKind,
    pub members: Vec<Arc<Member>>,
    policy: Box<dyn Policy>,
}

impl Farm {
    /// Builds a farm from fresh members.
    pub fn new(name: impl Into<String>, kind: PolicyKind, specs: Vec<MemberSpec>) -> Self {
        let members = specs
            .into_iter()
            .map(|s| Arc::new(Member::new(s)))
            .collect();
        Self::with_members(name, kind, members)
    }

    /// Builds a farm over existing members (keeping their runtime state).
    pub fn with_members(
        name: impl Into<String>,
        kind: PolicyKind,
        members: Vec<Arc<Member>>,
    ) -> Self {
        let policy = kind.build(&members);
        Farm {
            name: name.into(),
            kind,
            members,
            policy,
        }
    }

    /// Picks a member for a request. No lock, no allocation.
    #[inline]
    pub fn pick(&self, ctx: &mut PickContext) -> Option<(usize, &Arc<Member>)> {
        let i = self.policy.pick(&self.members, ctx)?;
        Some((i, &self.members[i]))
    }

    pub fn policy(&self) -> &dyn Policy {
        &*self.policy
    }

    pub fn member(&self, name: &str) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.name() == name)
    }
}
