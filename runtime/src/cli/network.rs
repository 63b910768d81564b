//! `hull network`: Docker's network commands over Hull's bridged networks.

use super::output::{print_listing, Columns};
use super::template::LABEL_FIELD;
use crate::config::Paths;
use crate::container::{monitor_alive, settled_record};
use crate::container::{ContainerRecord, ContainerStore};
use crate::network::{NetworkManager, Subnet, NONE_NETWORK};
use crate::sandbox::SandboxPlan;
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
        /// Format output using a Go template (`table` prefix: with a header; `json`: one object per line)
        #[arg(long, value_name = "string")]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format the output using the given Go template
        #[arg(short, long, value_name = "string")]
        format: Option<String>,
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
    /// Connect a stopped container to a network (it has one NIC: disconnect first)
    Connect {
        /// IPv4 address (e.g. 10.89.0.10)
        #[arg(long, value_name = "string")]
        ip: Option<std::net::Ipv4Addr>,
        /// Add network-scoped alias for the container
        #[arg(long, value_name = "strings")]
        alias: Vec<String>,
        /// Network
        network: String,
        /// Container
        container: String,
    },
    /// Disconnect a stopped container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        /// Network
        network: String,
        /// Container
        container: String,
    },
}

/// `network ls`'s fields and Docker's names of their columns.
const NETWORK_COLUMNS: Columns = Columns {
    names: &[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
    ],
    default: "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}",
};

/// Runs a network command.
pub async fn run(paths: &Paths, command: NetworkCommand) -> Result<i32> {
    let manager = NetworkManager::new(paths.root.join("network"));
    match command {
        NetworkCommand::Create {
            subnet,
            driver,
            name,
        } => {
            if driver != "bridge" {
                bail!("plugin \"{driver}\" not found: Hull's only network driver is bridge");
            }
            let network = manager.create_network(&name, subnet).await?;
            println!("{}", network.id);
        }
        NetworkCommand::Ls { quiet, format } => {
            let networks = manager.list_networks()?;
            if quiet {
                networks.iter().for_each(|n| println!("{}", &n.id[..12]));
            } else {
                let rows: Vec<serde_json::Value> = networks
                    .iter()
                    .map(|n| {
                        json!({
                            "ID": &n.id[..12],
                            "Name": n.name,
                            "Driver": n.driver,
                            "Scope": "local",
                            "IPv6": "false",
                            "Internal": "false",
                            "Labels": "",
                            LABEL_FIELD: {},
                        })
                    })
                    .collect();
                print_listing(format.as_deref(), &NETWORK_COLUMNS, &rows)?;
            }
        }
        NetworkCommand::Inspect { format, names } => {
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
            print!("{}", super::output::inspect_text(format.as_deref(), &out)?);
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                manager.remove_network(&name).await?;
                println!("{name}");
            }
        }
        NetworkCommand::Connect {
            ip,
            alias,
            network,
            container,
        } => {
            let target = manager.inspect_network(&network)?.network;
            let (store, mut record, mut plan) = stopped_container(paths, &container, "connect")?;
            if plan.network == target.name {
                bail!(
                    "endpoint with name {} already exists in network {}",
                    record.short_name(),
                    target.name
                );
            }
            if plan.network != NONE_NETWORK {
                bail!(
                    "container {} is already connected to network {}: a Hull container's microVM has one network interface; disconnect it first",
                    record.short_name(),
                    plan.network
                );
            }
            if let Some(ip) = ip {
                if !target.subnet.contains(ip) {
                    bail!(
                        "invalid IPv4 address {ip}: it is not in network {}'s subnet {}",
                        target.name,
                        target.subnet
                    );
                }
            }
            plan.network = target.name.clone();
            plan.ip = ip;
            plan.aliases = alias;
            set_network(&store, &mut record, &plan)?;
        }
        NetworkCommand::Disconnect {
            force: _,
            network,
            container,
        } => {
            let (store, mut record, mut plan) = stopped_container(paths, &container, "disconnect")?;
            let target = if network == NONE_NETWORK {
                None
            } else {
                Some(manager.inspect_network(&network)?.network)
            };
            if target.as_ref().map_or(NONE_NETWORK, |n| n.name.as_str()) != plan.network
                || plan.network == NONE_NETWORK
            {
                bail!(
                    "container {} is not connected to network {network}",
                    record.short_name()
                );
            }
            plan.network = NONE_NETWORK.to_string();
            plan.ip = None;
            plan.aliases.clear();
            set_network(&store, &mut record, &plan)?;
        }
    }
    Ok(0)
}

/// A container whose network may change: one without a monitor. A live
/// monitor has a booted (or booting) microVM, whose virtio-net device is
/// fixed: hot-plug on virtio-mmio does not exist.
fn stopped_container(
    paths: &Paths,
    reference: &str,
    verb: &str,
) -> Result<(ContainerStore, ContainerRecord, SandboxPlan)> {
    let store = ContainerStore::open(&paths.root)?;
    let id = store.resolve(reference)?;
    let record = settled_record(&store, &id, std::time::Duration::from_secs(5))?;
    if monitor_alive(record.hull_sandbox.monitor_pid) {
        bail!(
            "cannot {verb} container {}: its microVM is up, and a running microVM's network interfaces cannot change; stop it first (`hull stop {}`), then start it again",
            record.short_name(),
            record.short_name()
        );
    }
    let plan = SandboxPlan::load(&store.dir_of(&id))?;
    Ok((store, record, plan))
}

/// Records a container's new network; it takes effect at the next start.
fn set_network(
    store: &ContainerStore,
    record: &mut ContainerRecord,
    plan: &SandboxPlan,
) -> Result<()> {
    plan.save(&store.dir_of(&record.id))?;
    record.host_config.network_mode = plan.network.clone();
    record.network_settings =
        json!({ "IPAddress": "", "Ports": {}, "Networks": { plan.network.clone(): {} } });
    store.save(record)?;
    Ok(())
}
