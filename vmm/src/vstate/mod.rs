//! KVM state: the KVM handle, the VM and its vCPUs (guest memory is in
//! [`crate::memory`]).

pub mod kvm;
pub mod pause;
pub mod vcpu;
pub mod vm;
