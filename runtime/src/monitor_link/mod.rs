//! The link between `hull` (or any front end) and a container's monitor:
//! the requests and answers on the monitor's socket, and the client that
//! spawns a monitor and talks to it.

pub mod client;
pub mod proto;

pub use client::socket_path;
