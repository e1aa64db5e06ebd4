//! crdgen: prints the YAML of the CustomResourceDefinitions of the lessons `crd` and
//! `operator` — what `make manifests` is to kubebuilder users.
//!
//! ```text
//! cargo run -p kdev-examples --bin crdgen > crds.yaml
//! kubectl apply -f crds.yaml
//! ```
//!
//! `#[derive(CustomResource)]` registers every resource it generates; `kdev::crd::crdgen()`
//! prints all of them that are linked into the program, one document per kind (the versions of
//! a kind merged, exactly one of them the storage version). In your own crate, where the
//! resource types live in the library, the whole file is:
//!
//! ```text
//! use my_operator as _; // link the library that defines the resources
//!
//! fn main() -> std::process::ExitCode {
//!     kdev::crd::crdgen()
//! }
//! ```
//!
//! The examples crate has binaries only, so this binary includes the lessons `crd` (Website)
//! and `operator` (MyApp) as modules to link their resources in; their `main` functions are
//! not called. The `conversion` lesson's WebApp is not included: its CRD is complete only with
//! the conversion stanza the lesson writes at run time, once its webhook server exists.

#[allow(dead_code)]
#[path = "crd.rs"]
mod crd_lesson;

#[allow(dead_code)]
#[path = "operator.rs"]
mod operator_lesson;

fn main() -> std::process::ExitCode {
    kdev::crd::crdgen()
}
