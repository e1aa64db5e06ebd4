//! Tests of `kdev_core::delta_fifo`.
