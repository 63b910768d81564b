//! Builds a VM from a [`VmConfig`] and runs it until it ends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::boot::{self, params, regs, BootError};
use crate::bus::{Bus, BusError};
use crate::config::{ConfigError, SerialOutput, VmConfig};
use crate::devices::legacy::{
    BootTimer, DebugExit, SerialDevice, BOOT_TIMER_PORT, DEBUG_EXIT_PORT, I8042, I8042_PORT_BASE,
    I8042_PORT_LEN, SERIAL_PORT_BASE, SERIAL_PORT_LEN,
};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::fs::Fs;
use crate::devices::virtio::manager::{Subscriber, VirtioMmioManager};
use crate::devices::virtio::net::Net;
use crate::devices::virtio::vsock::Vsock;
use crate::exit::{ExitHandle, VmExit};
use crate::layout::SERIAL_IRQ;
use crate::memory::{create_guest_memory, MemoryError};
use crate::seccomp::{Filters, ThreadKind};
use crate::vstate::kvm::{KvmContext, KvmError};
use crate::vstate::pause::PauseGate;
use crate::vstate::vcpu::{Vcpu, VcpuContext, VcpuError};
use crate::vstate::vm::{Vm, VmError};

/// Anything that stops a VM from being built or run.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// KVM unavailable.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// VM set-up.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Kernel, initrd or boot structures.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Boot registers and tables.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// vCPU set-up.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// Device placement.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Serial output file.
    #[error("cannot open serial output {path}: {source}")]
    SerialOutput {
        /// File path.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A block device could not be created.
    #[error(transparent)]
    Block(#[from] crate::devices::virtio::block::BlockError),
    /// A network device could not be created.
    #[error(transparent)]
    Net(#[from] crate::devices::virtio::net::NetDeviceError),
    /// A vsock device could not be created.
    #[error(transparent)]
    Vsock(#[from] crate::devices::virtio::vsock::VsockError),
    /// A virtio-fs device could not be created (its back-end included).
    #[error(transparent)]
    Fs(#[from] crate::devices::virtio::fs::FsError),
    /// A virtio device could not be attached.
    #[error(transparent)]
    Attach(#[from] crate::devices::virtio::manager::AttachError),
    /// The control socket could not be served.
    #[error("control socket: {0}")]
    Api(std::io::Error),
    /// The jail could not be closed.
    #[error(transparent)]
    Jail(#[from] crate::jail::JailError),
    /// A seccomp filter could not be built or installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// An eventfd or the event loop failed.
    #[error("event loop: {0}")]
    EventLoop(String),
}

/// Wakes the event loop when the VM should end.
struct ExitSubscriber {
    exit: ExitHandle,
    done: bool,
}

impl MutEventSubscriber for ExitSubscriber {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.exit.event().as_raw_fd() {
            // A read error means nothing was pending; the reason is what counts.
            let _ = self.exit.event().read();
            self.done = self.exit.reason().is_some();
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.exit.event(), EventSet::IN)) {
            tracing::error!("cannot watch the exit event: {e:?}");
        }
    }
}

fn serial_writer(output: &SerialOutput) -> Result<Box<dyn Write + Send>, VmmError> {
    match output {
        SerialOutput::Stdout => {
            // SAFETY: dup() of the process's own standard output; the result
            // is checked and then owned by the File alone.
            let fd = unsafe { libc::dup(libc::STDOUT_FILENO) };
            if fd < 0 {
                return Err(VmmError::SerialOutput {
                    path: "stdout".into(),
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: `fd` is a fresh descriptor nobody else owns. An
            // unbuffered File makes each guest byte visible at once.
            Ok(Box::new(unsafe { File::from_raw_fd(fd) }))
        }
        SerialOutput::Off => Ok(Box::new(std::io::sink())),
        SerialOutput::File(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| Box::new(f) as Box<dyn Write + Send>)
            .map_err(|source| VmmError::SerialOutput {
                path: path.clone(),
                source,
            }),
    }
}

/// Creates the configured virtio devices and attaches them.
fn attach_virtio_devices(
    config: &VmConfig,
    vm: &Vm,
    memory: &crate::memory::GuestMemory,
    mmio_bus: &mut Bus,
    event_manager: &mut EventManager<Subscriber>,
    virtio: &mut VirtioMmioManager,
) -> Result<(), VmmError> {
    let new_irq = || EventFd::new(EFD_NONBLOCK).map_err(|e| VmmError::EventLoop(e.to_string()));
    for (index, blk) in config.blk.iter().enumerate() {
        let device = Block::new(
            &blk.path,
            blk.read_only,
            &format!("hull-blk{index}"),
            new_irq()?,
        )?;
        let (addr, irq) = virtio.attach(
            Arc::new(Mutex::new(device)),
            vm,
            memory,
            mmio_bus,
            event_manager,
        )?;
        tracing::debug!(addr, irq, path = %blk.path.display(), "virtio-blk attached");
    }
    for (index, net) in config.net.iter().enumerate() {
        // The one configured, else a locally administered unicast MAC:
        // 02:48:55:4c (".HUL") + index.
        let mac = net
            .mac_bytes()?
            .unwrap_or([0x02, 0x48, 0x55, 0x4c, 0x00, index as u8 + 1]);
        let device = Net::new(&net.tap, mac, new_irq()?)?;
        let (addr, irq) = virtio.attach(
            Arc::new(Mutex::new(device)),
            vm,
            memory,
            mmio_bus,
            event_manager,
        )?;
        tracing::debug!(addr, irq, tap = %net.tap, "virtio-net attached");
    }
    if let Some(vsock) = &config.vsock {
        let device = Vsock::new(&vsock.socket, u64::from(vsock.cid), new_irq()?)?;
        let (addr, irq) = virtio.attach(
            Arc::new(Mutex::new(device)),
            vm,
            memory,
            mmio_bus,
            event_manager,
        )?;
        tracing::debug!(addr, irq, socket = %vsock.socket.display(), "virtio-vsock attached");
    }
    for fs in &config.fs {
        let device = Fs::new(&fs.socket, &fs.tag, new_irq()?)?;
        let (addr, irq) = virtio.attach(
            Arc::new(Mutex::new(device)),
            vm,
            memory,
            mmio_bus,
            event_manager,
        )?;
        tracing::debug!(addr, irq, socket = %fs.socket.display(), tag = %fs.tag, "virtio-fs attached");
    }
    Ok(())
}

/// Loads the kernel and boot information, creates the legacy devices and
/// the vCPUs: everything but the memory slots.
fn set_up_guest(
    config: &VmConfig,
    cmdline: &str,
    kvm: &KvmContext,
    vm: &Vm,
    memory: &crate::memory::GuestMemory,
    exit: &ExitHandle,
    start: Instant,
) -> Result<(Vec<Vcpu>, Bus), VmmError> {
    let kernel = boot::load_kernel(memory, &config.kernel, config.boot_protocol)?;
    tracing::debug!(?kernel.protocol, entry = kernel.entry.0, "kernel loaded");
    let initrd = match &config.initrd {
        Some(path) => {
            let addr_max = kernel
                .setup_header
                .map(|h| u64::from(h.initrd_addr_max))
                .filter(|m| *m != 0)
                .unwrap_or(u64::MAX);
            Some(boot::load_initrd(memory, path, kernel.end, addr_max)?)
        }
        None => None,
    };
    params::write_boot_info(memory, &kernel, cmdline, initrd, config.vcpus)?;
    regs::write_boot_tables(memory, kernel.protocol)?;

    let mut pio_bus = Bus::new();
    let serial_irq = EventFd::new(EFD_NONBLOCK).map_err(|e| VmmError::EventLoop(e.to_string()))?;
    vm.register_irqfd(&serial_irq, SERIAL_IRQ)?;
    let serial = Arc::new(Mutex::new(SerialDevice::new(
        serial_irq,
        serial_writer(&config.serial)?,
    )));
    pio_bus.insert(serial, SERIAL_PORT_BASE, SERIAL_PORT_LEN)?;
    pio_bus.insert(
        Arc::new(Mutex::new(I8042::new(exit.clone()))),
        I8042_PORT_BASE,
        I8042_PORT_LEN,
    )?;
    pio_bus.insert(
        Arc::new(Mutex::new(DebugExit::new(exit.clone()))),
        DEBUG_EXIT_PORT,
        1,
    )?;
    pio_bus.insert(
        Arc::new(Mutex::new(BootTimer::new(start))),
        BOOT_TIMER_PORT,
        4,
    )?;

    let cpuid = kvm.supported_cpuid()?;
    let vcpus = (0..config.vcpus)
        .map(|index| Vcpu::new(vm, index, config.vcpus, &cpuid, &kernel))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((vcpus, pio_bus))
}

/// Builds the VM described by `config` and runs it until it ends.
/// `start` is when the VMM process started (for the boot timer).
pub fn run_vm(config: &VmConfig, start: Instant) -> Result<VmExit, VmmError> {
    config.validate()?;
    let filters = match config.seccomp {
        true => Some(Filters::new()?),
        false => None,
    };
    // A jailed VMM first moves into a pid namespace of its own, before it
    // opens anything: the VM belongs to the process that makes it.
    let warded = match &config.jail {
        Some(jail) => Some(crate::jail::warden::enter(jail, filters.as_ref())?),
        None => None,
    };

    let kvm = KvmContext::new()?;
    let (memory, _memfd) = create_guest_memory(config.mem_mib)?;
    let vm = Vm::new(&kvm, &memory)?;
    let exit = ExitHandle::new().map_err(|e| VmmError::EventLoop(e.to_string()))?;
    let mut event_manager: EventManager<Subscriber> =
        EventManager::new().map_err(|e| VmmError::EventLoop(format!("{e:?}")))?;
    let mut mmio_bus = Bus::new();
    let mut virtio = VirtioMmioManager::new();
    attach_virtio_devices(
        config,
        &vm,
        &memory,
        &mut mmio_bus,
        &mut event_manager,
        &mut virtio,
    )?;
    let cmdline = format!("{}{}", config.cmdline, virtio.cmdline());
    let (vcpus, pio_bus) = set_up_guest(config, &cmdline, &kvm, &vm, &memory, &exit, start)?;
    let pause = Arc::new(PauseGate::default());
    crate::vstate::pause::install_kick_handler().map_err(VmmError::Api)?;
    let api = match &config.api_socket {
        Some(path) => Some(crate::api::bind(path).map_err(VmmError::Api)?),
        None => None,
    };
    // Everything is open: the jail closes, then each thread filters itself.
    if let Some(jail) = &config.jail {
        crate::jail::enter(jail)?;
    }
    if let Some(warded) = &warded {
        warded.rearm()?;
    }
    let context = VcpuContext {
        pio_bus: Arc::new(pio_bus),
        mmio_bus: Arc::new(mmio_bus),
        exit: exit.clone(),
        pause: pause.clone(),
        seccomp: filters.as_ref().map(|f| f.program(ThreadKind::Vcpu)),
    };

    let exit_subscriber = Arc::new(Mutex::new(ExitSubscriber {
        exit: exit.clone(),
        done: false,
    }));
    event_manager.add_subscriber(exit_subscriber.clone());

    tracing::debug!(
        "VM ready after {:.3} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    // The threads are never joined: the VMM process ends with the VM.
    let threads = vcpus
        .into_iter()
        .map(|vcpu| vcpu.start(context.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(listener) = api {
        let seccomp = filters.as_ref().map(|f| f.program(ThreadKind::Api));
        crate::api::serve(listener, pause, threads, seccomp).map_err(VmmError::Api)?;
    }
    if let Some(filters) = &filters {
        crate::seccomp::apply(ThreadKind::Events, &filters.program(ThreadKind::Events))?;
    }

    loop {
        event_manager
            .run()
            .map_err(|e| VmmError::EventLoop(format!("{e:?}")))?;
        if crate::bus::lock(&exit_subscriber).done {
            break;
        }
    }
    // Keep guest memory and the VM alive until here.
    drop(vm);
    Ok(exit
        .reason()
        .unwrap_or_else(|| VmExit::Failure("VM ended without a reason".into())))
}
