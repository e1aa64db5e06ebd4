//! The server's calls out to webhooks: admission (mutating and validating) and CRD conversion,
//! made as kube-apiserver makes them.

pub(crate) mod admission;
mod client;
pub(crate) mod conversion;
