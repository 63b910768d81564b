//! Hull's host side: the image store, sandboxes (one microVM each), the
//! hypervisor interface with its backends, and the `hull` CLI.
#![deny(missing_docs)]

pub mod agent_client;
pub mod container;
pub mod copy;
pub mod fault;
pub mod lockfile;
pub mod logs;
pub mod monitor;
pub mod rpc;
pub mod timefmt;
pub mod cli;
pub mod config;
pub mod hypervisor;
pub mod image;
pub mod network;
pub mod platform;
pub mod process;
pub mod rootfs;
pub mod sandbox;
pub mod spec;
pub mod virtiofsd;
pub mod volume;
