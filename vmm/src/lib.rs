//! hull-vmm: Hull's own KVM virtual machine monitor, one process per VM,
//! built on the rust-vmm crates.
//!
//! Modules, leaves first (each uses only those listed before it):
//! - [`layout`]: the guest physical memory map (constants only).
//! - [`memory`]: memfd-backed guest memory.
//! - [`bus`]: port I/O and MMIO buses that vCPU exits are dispatched on.
//! - [`exit`]: why the VM stopped, and the handle that reports it.
//! - [`config`]: the VM configuration.
//! - [`jail`]: namespaces, an empty root, an unprivileged uid.
//! - [`seccomp`]: the per-thread seccomp filters.
//! - [`boot`]: kernel/initrd loading (linux-loader), PVH and Linux 64-bit
//!   entry, e820, MP table.
//! - [`vstate`]: KVM handle, VM, vCPU threads.
//! - [`devices`]: legacy and virtio devices.
//! - [`builder`]: puts a VM together from a [`config::VmConfig`] and runs it.
#![deny(missing_docs)]

pub mod api;
pub mod boot;
pub mod builder;
pub mod bus;
pub mod config;
pub mod devices;
pub mod exit;
pub mod jail;
pub mod layout;
pub mod memory;
pub mod seccomp;
pub mod vstate;
