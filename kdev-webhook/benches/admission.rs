//! AdmissionReview throughput and latency over TLS with keep-alive (issue 7 item 8).
//!
//! # What is measured
//!
//! A realistic Pod AdmissionReview (four containers with env, ports, probes, resources and
//! volume mounts; volumes; labels and annotations: about 5 KB) is posted to a validating
//! webhook (refuses `:latest` images) and to a mutating one (adds labels and a sidecar, so
//! every answer carries a JSON patch), over **64 concurrent TLS connections with
//! keep-alive**. Each figure is printed plainly:
//!
//! ```text
//! validating: 64 connections, <n> reviews/s, p50 <t> ms, p99 <t> ms (<s> s, <n> reviews)
//! validating: CPU <t> µs per review (client and server), <c> of <cores> cores busy; ≈ <n> reviews/s with the cores to itself
//! ```
//!
//! The second line matters on a shared machine: it is the process' CPU time (client and
//! server) per review while measuring, and the throughput it implies if the process had every
//! core; an estimate, the first line is the measurement.
//!
//! followed by criterion's measurements of the same reviews handed to the webhooks in process
//! ([`Server::call`]), the server's CPU cost per review without TLS and HTTP.
//!
//! # The client shares the machine
//!
//! Client and server run in one process on the same (2-core) machine, in one tokio runtime
//! with a worker per core, so every figure includes the client's CPU. The client is kept as
//! cheap as a load generator (wrk, h2load) would be: each connection is one task with a
//! minimal HTTP/1.1 client over rustls that writes a request prepared once (head and body in
//! one buffer: one TLS record, one write) and reads the answer into a buffer it reuses, only
//! checking its status; answers are checked in full, through hyper, before measuring. (Driving
//! the load through hyper's client instead costs about 40 µs of CPU per review on this machine,
//! which the server would then not have.)
//!
//! # The allocator
//!
//! This bench's process allocates with mimalloc, as we recommend for webhook servers (see the
//! crate documentation's *Performance* section): decoding a Pod allocates a few hundred
//! strings and vectors, and glibc's allocator spends more time on them. The
//! `admission_system_alloc` bench runs the same code on the system allocator.
//!
//! Run with `cargo bench -p kdev-webhook --bench admission` (or `--bench
//! admission_system_alloc`); `KDEV_BENCH_SECS` sets the measuring time per handler (default 3),
//! `KDEV_BENCH_LOAD=validating` (or `mutating`, or `none`) runs one load test only.

#[path = "support/admission.rs"]
mod admission;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    admission::run("mimalloc");
}
