//! `hull-vmm`: run one microVM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use hull_vmm::boot::BootProtocolChoice;
use hull_vmm::config::{BlockConfig, FsConfig, NetConfig, SerialOutput, VmConfig, VsockConfig};
use hull_vmm::exit::VmExit;

/// Run one KVM microVM. Ends with status 0 when the guest resets,
/// triple-faults or powers off, with the value the guest wrote to the debug
/// exit port (0xf4), and with 1 and a one-line error when the VMM fails.
#[derive(Debug, Parser)]
#[command(name = "hull-vmm", version)]
struct Cli {
    /// JSON configuration file; flags given as well override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kernel: ELF vmlinux (PVH or 64-bit entry) or bzImage.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initrd.
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long)]
    cmdline: Option<String>,
    /// Number of vCPUs.
    #[arg(long)]
    vcpus: Option<u8>,
    /// Guest memory in MiB.
    #[arg(long)]
    mem_mib: Option<u64>,
    /// Serial output: stdout, off, or a file path.
    #[arg(long)]
    serial: Option<SerialOutput>,
    /// Entry protocol.
    #[arg(long, value_enum)]
    boot_protocol: Option<BootProtocolChoice>,
    /// Host unix socket of the vsock device.
    #[arg(long, requires = "vsock_cid")]
    vsock_socket: Option<PathBuf>,
    /// Guest CID of the vsock device.
    #[arg(long, requires = "vsock_socket")]
    vsock_cid: Option<u32>,
    /// Block device: PATH[,ro]. Repeatable.
    #[arg(long)]
    blk: Vec<BlockConfig>,
    /// Network device on this tap interface. Repeatable.
    #[arg(long)]
    net_tap: Vec<String>,
    /// virtio-fs share: PATH,tag=TAG (virtiofsd socket). Repeatable.
    #[arg(long)]
    fs_socket: Vec<FsConfig>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<VmConfig> {
        let mut config = match &self.config {
            Some(path) => VmConfig::from_json_file(path)?,
            None => VmConfig::new(
                self.kernel
                    .clone()
                    .context("--kernel or --config is required")?,
            ),
        };
        if let Some(kernel) = self.kernel {
            config.kernel = kernel;
        }
        if self.initrd.is_some() {
            config.initrd = self.initrd;
        }
        if let Some(cmdline) = self.cmdline {
            config.cmdline = cmdline;
        }
        if let Some(vcpus) = self.vcpus {
            config.vcpus = vcpus;
        }
        if let Some(mem_mib) = self.mem_mib {
            config.mem_mib = mem_mib;
        }
        if let Some(serial) = self.serial {
            config.serial = serial;
        }
        if let Some(protocol) = self.boot_protocol {
            config.boot_protocol = protocol;
        }
        if let (Some(socket), Some(cid)) = (self.vsock_socket, self.vsock_cid) {
            config.vsock = Some(VsockConfig { socket, cid });
        }
        config.blk.extend(self.blk);
        config.net.extend(
            self.net_tap
                .into_iter()
                .map(|tap| NetConfig { tap, mac: None }),
        );
        config.fs.extend(self.fs_socket);
        Ok(config)
    }
}

fn run(start: Instant) -> anyhow::Result<VmExit> {
    let config = Cli::parse().into_config()?;
    Ok(hull_vmm::builder::run_vm(&config, start)?)
}

fn main() -> ExitCode {
    let start = Instant::now();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HULL_VMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(start) {
        Ok(VmExit::Failure(message)) => {
            eprintln!("hull-vmm: error: {message}");
            ExitCode::FAILURE
        }
        Ok(reason) => {
            tracing::info!("VM ended: {reason}");
            ExitCode::from(reason.exit_code() as u8)
        }
        Err(e) => {
            // One line. Hull's errors already name their cause in their
            // message, so the top-level message is the whole story.
            let message = e.to_string().replace('\n', " ");
            eprintln!("hull-vmm: error: {message}");
            ExitCode::FAILURE
        }
    }
}
