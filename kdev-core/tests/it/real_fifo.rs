//! Tests of `kdev_core::real_fifo`.
