//! Emulated devices: legacy port I/O devices and virtio-mmio ones. They are
//! reached through the buses in [`crate::bus`].

pub mod legacy;
pub mod virtio;
