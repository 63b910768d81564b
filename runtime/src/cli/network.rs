//! `hull network`: Docker's network commands over Hull's bridged networks.

use super::format::print_table;
use crate::config::Paths;
use crate::network::{NetworkManager, Subnet};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;

/// `hull network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Subnet in CIDR format (default: the next free /24 of 10.89.0.0/16)
        #[arg(long, value_name = "string")]
        subnet: Option<Subnet>,
        /// Driver to manage the network (only bridge)
        #[arg(short, long, value_name = "string", default_value = "bridge")]
        driver: String,
        /// The network's name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Networks
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Networks
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network (not supported yet)
    Connect {
        /// Network
        network: String,
        /// Container
        container: String,
    },
    /// Disconnect a container from a network (not supported yet)
    Disconnect {
        /// Network
        network: String,
        /// Container
        container: String,
    },
}

/// Runs a network command.
pub async fn run(paths: &Paths, command: NetworkCommand) -> Result<i32> {
    let manager = NetworkManager::new(paths.root.join("network"));
    match command {
        NetworkCommand::Create { subnet, driver, name } => {
            if driver != "bridge" {
                bail!("plugin \"{driver}\" not found: Hull's only network driver is bridge");
            }
            let network = manager.create_network(&name, subnet).await?;
            println!("{}", network.id);
        }
        NetworkCommand::Ls { quiet } => {
            let networks = manager.list_networks()?;
            if quiet {
                networks.iter().for_each(|n| println!("{}", &n.id[..12]));
            } else {
                let rows: Vec<Vec<String>> = networks
                    .iter()
                    .map(|n| vec![n.id[..12].to_string(), n.name.clone(), n.driver.clone(), "local".into()])
                    .collect();
                print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
            }
        }
        NetworkCommand::Inspect { names } => {
            let mut out = Vec::new();
            for name in names {
                let details = manager.inspect_network(&name)?;
                let network = &details.network;
                out.push(json!({
                    "Name": network.name,
                    "Id": network.id,
                    "Driver": network.driver,
                    "Scope": "local",
                    "IPAM": { "Driver": "default", "Config": [{ "Subnet": network.subnet.to_string(), "Gateway": network.gateway.to_string() }] },
                    "Options": { "com.docker.network.bridge.name": network.bridge, "com.docker.network.driver.mtu": network.mtu.to_string() },
                    "Containers": details.endpoints.iter().map(|lease| (lease.owner.clone(), json!({ "IPv4Address": format!("{}/{}", lease.ip, network.subnet.prefix_len()) }))).collect::<serde_json::Map<_, _>>(),
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                manager.remove_network(&name).await?;
                println!("{name}");
            }
        }
        NetworkCommand::Connect { .. } | NetworkCommand::Disconnect { .. } => {
            bail!("not supported yet: a Hull container's network devices are fixed when its VM starts; choose networks with `run --network`")
        }
    }
    Ok(0)
}
