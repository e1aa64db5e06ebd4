//! A derived custom resource whose `Option`s serialize as `null` (no `skip_serializing_if`, as a
//! spec derived without serde attributes), one of them `nullable`: the API server stores the
//! `null` of a `nullable` field instead of dropping it.

use kdev::CustomResource;
use kdev_webhook::admission::{Defaulter, Request, Verdict};
use serde::{Deserialize, Serialize};

/// A memo.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[kdev(group = "memos.kdev.dev", version = "v1", kind = "Memo", struct = "Memo", namespaced)]
pub struct MemoSpec {
    /// How big; 1 when unset.
    pub size: Option<i32>,
    /// A note, which may be `null`.
    #[kdev(nullable)]
    pub note: Option<String>,
}

/// Sets `size` to 1 when it is unset, and nothing else.
pub struct MemoDefaults;

impl Defaulter<Memo> for MemoDefaults {
    async fn set_defaults(&self, _req: &Request, memo: &mut Memo) -> Verdict {
        memo.spec.size.get_or_insert(1);
        Verdict::allow()
    }
}
