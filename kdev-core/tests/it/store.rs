//! Tests of `kdev_core::store`.
