//! hull-vmm: Hull's own KVM virtual machine monitor.
#![deny(missing_docs)]
