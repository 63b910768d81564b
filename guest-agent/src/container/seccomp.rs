//! Loads a container's seccomp filter: the OCI spec's `linux.seccomp`,
//! compiled to classic BPF by the host (hull-seccomp) and sent with the
//! container; the child loads it just before it runs the container's
//! program, as runc and crun do. The agent never compiles a profile: a
//! spec that still carries one is refused rather than run unfiltered.

pub use hull_seccomp::Loadable as Filter;
