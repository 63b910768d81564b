//! Tests on real kernel objects (bridges, taps, veths, nftables, tc), each
//! in private network namespaces created for it (see [`netns`]), and IPAM
//! across processes.

mod cni;
mod ipam_procs;
mod kernel;
mod manager;
mod netns;
mod traffic;
