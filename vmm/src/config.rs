//! VM configuration, from command-line flags or a JSON file: the types are
//! Hull's one typed VM configuration ([`hull_vm_config`]), shared with the
//! runtime that writes it.

pub use hull_vm_config::*;
