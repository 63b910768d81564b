//! The `/dev/kvm` handle and the host capabilities Hull relies on.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm};

/// Errors while opening or querying KVM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// `/dev/kvm` cannot be opened.
    #[error("cannot open /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    /// The KVM API version is not the stable one (12).
    #[error("unsupported KVM API version {0}")]
    ApiVersion(i32),
    /// A required capability is missing.
    #[error("KVM lacks a required capability: {0:?}")]
    MissingCap(Cap),
    /// The supported CPUID could not be read.
    #[error("cannot read KVM's supported CPUID: {0}")]
    SupportedCpuid(kvm_ioctls::Error),
}

/// Capabilities the VMM uses unconditionally.
const REQUIRED_CAPS: [Cap; 6] = [
    Cap::Irqchip,
    Cap::Ioeventfd,
    Cap::Irqfd,
    Cap::UserMemory,
    Cap::SetTssAddr,
    Cap::ExtCpuid,
];

/// An open `/dev/kvm` whose capabilities have been checked.
#[derive(Debug)]
pub struct KvmContext {
    kvm: Kvm,
}

impl KvmContext {
    /// Opens `/dev/kvm` and checks the API version and required capabilities.
    pub fn new() -> Result<Self, KvmError> {
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        let version = kvm.get_api_version();
        if version != kvm_bindings::KVM_API_VERSION as i32 {
            return Err(KvmError::ApiVersion(version));
        }
        for cap in REQUIRED_CAPS {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCap(cap));
            }
        }
        Ok(KvmContext { kvm })
    }

    /// The underlying handle.
    pub fn fd(&self) -> &Kvm {
        &self.kvm
    }

    /// The CPUID KVM can expose, as the base for every vCPU's CPUID.
    pub fn supported_cpuid(&self) -> Result<CpuId, KvmError> {
        self.kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::SupportedCpuid)
    }

    /// Largest number of vCPUs KVM recommends for one VM.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_max_vcpus()
    }
}
