//! Hull's host side: the image store, sandboxes (one microVM each), the
//! hypervisor interface with its backends, and the `hull` CLI.
#![deny(missing_docs)]

pub mod agent_client;
pub mod build;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod container;
pub mod copy;
pub mod engine;
pub mod fault;
pub mod filters;
pub mod glob;
pub mod hypervisor;
pub mod idmap;
pub mod image;
pub mod lockfile;
pub mod logs;
pub mod monitor;
pub mod monitor_link;
pub mod mount_api;
pub mod network;
pub mod platform;
pub mod process;
pub mod rootfs;
pub mod rpc;
pub mod sandbox;
pub mod security;
pub mod signal;
pub mod spec;
pub mod staging;
pub mod timefmt;
pub mod ulimit;
pub mod units;
pub mod virtiofsd;
pub mod volume;
