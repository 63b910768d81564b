//! hull-vmm: Hull's own KVM virtual machine monitor, one process per VM,
//! built on the rust-vmm crates.
//!
//! - [`vstate`]: KVM handle, VM, vCPU threads, memfd-backed guest memory.
//! - [`boot`]: kernel/initrd loading (linux-loader), PVH and Linux 64-bit
//!   entry, e820, MP table.
//! - [`devices`]: port I/O and MMIO buses, legacy devices.
//! - [`builder`]: puts a VM together from a [`config::VmConfig`] and runs it.
#![deny(missing_docs)]

pub mod boot;
pub mod builder;
pub mod config;
pub mod devices;
pub mod exit;
pub mod vstate;
