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

/// CPUID leaf 1: processor features.
const CPUID_LEAF_FEATURES: u32 = 0x1;
/// Leaf 1, ECX bit 24: the local APIC timer has TSC-deadline mode.
const CPUID_ECX_TSC_DEADLINE_TIMER: u32 = 1 << 24;

/// Sets the TSC-deadline timer bit in `cpuid`'s leaf 1.
fn add_tsc_deadline_timer(cpuid: &mut CpuId) {
    for entry in cpuid.as_mut_slice() {
        if entry.function == CPUID_LEAF_FEATURES {
            entry.ecx |= CPUID_ECX_TSC_DEADLINE_TIMER;
        }
    }
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
    ///
    /// KVM leaves out of it what its in-kernel local APIC emulates but
    /// only the VMM can know the guest gets: the TSC-deadline timer mode,
    /// announced by `KVM_CAP_TSC_DEADLINE_TIMER`. Without it a Linux guest
    /// calibrates its APIC timer against the PIT at boot (a tenth of a
    /// second of ticks, far more under nested virtualization, where the
    /// calibration can fail and leave the guest without a local timer).
    pub fn supported_cpuid(&self) -> Result<CpuId, KvmError> {
        let mut cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::SupportedCpuid)?;
        if self.kvm.check_extension(Cap::TscDeadlineTimer) {
            add_tsc_deadline_timer(&mut cpuid);
        }
        Ok(cpuid)
    }

    /// Largest number of vCPUs KVM recommends for one VM.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_max_vcpus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn tsc_deadline_timer_is_announced_in_leaf_1() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 0,
                ecx: 0x1234,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ecx: 0x8000_0001,
                ..Default::default()
            },
        ];
        let mut cpuid = CpuId::from_entries(&entries).unwrap();
        add_tsc_deadline_timer(&mut cpuid);
        let slice = cpuid.as_slice();
        assert_eq!(slice[0].ecx, 0x1234);
        assert_eq!(slice[1].ecx, 0x8100_0001);
    }
}
