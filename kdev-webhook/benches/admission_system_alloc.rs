//! The `admission` bench on the system allocator (glibc's on Linux), to show what the allocator
//! changes; see `admission.rs` for what is measured and how.
//!
//! Run with `cargo bench -p kdev-webhook --bench admission_system_alloc`.

#[path = "support/admission.rs"]
mod admission;

fn main() {
    admission::run("system");
}
