//! Control messages exchanged as JSON inside [`crate::Frame`]s.
//!
//! Requests go host → agent and each gets exactly one response with the same
//! id; responses may arrive out of order (a `Wait` is answered only when the
//! process exits). Events go agent → host unsolicited.
//!
//! JSON keeps the OCI runtime spec in its native form (it relies on optional
//! and skipped fields, which compact binary formats cannot represent) and
//! makes captured traffic readable. Stdio, the bulk of the traffic, does not
//! go through JSON at all.

use serde::{Deserialize, Serialize};

/// The version of this protocol. The agent refuses a host speaking another one.
pub const PROTOCOL_VERSION: u32 = 2;

/// Longest container or exec id the agent accepts.
pub const MAX_ID_LEN: usize = 128;

/// A request with the id its response will carry. Generic so that other
/// channels framed the same way (Hull's monitor socket) share it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEnvelope<R = Request> {
    /// Chosen by the sender; unique among its outstanding requests.
    pub id: u64,
    /// What is asked.
    pub request: R,
}

/// What the host asks of the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message on a connection: both sides state their version.
    Hello {
        /// The host's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Prepare a container: rootfs, namespaces, cgroup, and its first process,
    /// stopped before `execve` until [`Request::StartContainer`].
    CreateContainer {
        /// The container's id, at most [`MAX_ID_LEN`] characters of `[A-Za-z0-9_.-]`.
        container_id: String,
        /// The OCI runtime spec: process, hostname, mounts, rlimits,
        /// resources; never `linux.seccomp`, which comes compiled:
        spec: Box<oci_spec::runtime::Spec>,
        /// The container's seccomp filter, compiled on the host (the agent
        /// loads it as it is, for its first process and its execs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seccomp: Option<hull_seccomp::Filter>,
        /// Where the container's root file system is.
        rootfs: Rootfs,
        /// Streams for the first process's stdio.
        stdio: StdioStreams,
        /// Namespaces it shares with another container in the VM (its
        /// pod's sandbox container); `None`: new ones of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        join: Option<JoinNamespaces>,
    },
    /// Let the container's first process run.
    StartContainer {
        /// The container to start.
        container_id: String,
    },
    /// Deliver a signal to a container's first process.
    Signal {
        /// The container.
        container_id: String,
        /// The signal number.
        signal: i32,
    },
    /// Answered when the container's first process has exited.
    Wait {
        /// The container.
        container_id: String,
    },
    /// Run another process in a running container (`hull exec`); answered
    /// with [`Response::Created`] once it has started.
    ExecProcess {
        /// The container.
        container_id: String,
        /// The exec's id, unique within the container ([`MAX_ID_LEN`], `[A-Za-z0-9_.-]`).
        exec_id: String,
        /// What to run, as whom, where.
        process: Box<oci_spec::runtime::Process>,
        /// Streams for its stdio; with `terminal`, stdout carries the
        /// terminal's output (stderr included) and stderr stays empty.
        stdio: StdioStreams,
        /// Give the process a pseudo-terminal (`exec -t`), sized by the
        /// process's `console_size`.
        #[serde(default)]
        terminal: bool,
    },
    /// Answered when an exec'd process has exited.
    WaitProcess {
        /// The container.
        container_id: String,
        /// The exec.
        exec_id: String,
    },
    /// Deliver a signal to an exec'd process.
    SignalProcess {
        /// The container.
        container_id: String,
        /// The exec.
        exec_id: String,
        /// The signal number.
        signal: i32,
    },
    /// Set the window size of a process's pseudo-terminal (the process
    /// gets SIGWINCH).
    ResizeTerminal {
        /// The container.
        container_id: String,
        /// The exec, or `None` for the container's first process.
        exec_id: Option<String>,
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// List the processes of a running container (`hull top`); answered
    /// with [`Response::Processes`].
    ListProcesses {
        /// The container.
        container_id: String,
    },
    /// Write what the guest holds in memory for its file systems (dirty
    /// pages of shared mappings included) out to them, as sync(2): before
    /// the host reads the container's writable layer (`hull commit`).
    Sync,
    /// A running container's resource use (`hull stats`); answered with
    /// [`Response::Stats`].
    Stats {
        /// The container.
        container_id: String,
    },
    /// Change a container's limits (its cgroup's memory, CPU, pids).
    UpdateResources {
        /// The container.
        container_id: String,
        /// The new limits; those not given stay.
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
    /// Remove a stopped container's rootfs and cgroup.
    RemoveContainer {
        /// The container.
        container_id: String,
    },
    /// Answer DNS queries sent to `servers` (port 53, UDP) in the guest by
    /// passing them to the host ([`Event::DnsQuery`]): resolvers that live
    /// on the host side's loopback (Docker's embedded DNS, 127.0.0.11),
    /// which the guest's own loopback cannot reach.
    ForwardDns {
        /// Loopback addresses of the container's resolv.conf.
        servers: Vec<std::net::Ipv4Addr>,
    },
    /// The resolver's answer to a forwarded query.
    DnsAnswer {
        /// The [`Event::DnsQuery`]'s id.
        query_id: u64,
        /// The DNS message, at most [`MAX_DNS_MESSAGE`] bytes.
        payload: Vec<u8>,
    },
    /// Power the VM off. Answered just before the agent does so.
    Shutdown,
}

/// The guest path of the agent's own binary, which a container's spec may
/// bind at `/dev/init` to run under it (`run --init`); the agent makes it
/// when a spec first names it.
pub const INIT_BINARY: &str = "/run/hull/init";

/// Most bytes of a forwarded DNS message (EDNS's usual UDP size).
pub const MAX_DNS_MESSAGE: usize = 4096;

/// The namespaces a container shares with another container in the same
/// VM (a pod's containers with its sandbox container). The network is the
/// VM's for every container; the mount namespace is always its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinNamespaces {
    /// The container whose namespaces it joins.
    pub container_id: String,
    /// Share its IPC namespace.
    pub ipc: bool,
    /// Share its UTS namespace (hostname).
    pub uts: bool,
    /// Share its pid namespace (a pod with `shareProcessNamespace`).
    pub pid: bool,
}

/// A container's root file system, shared from the host with virtio-fs: the
/// host joins the image's layers and the container's writable layer (kept
/// on the host, so it outlives the VM) with overlayfs and shares the result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rootfs {
    /// The virtio-fs tag of the share.
    pub share_tag: String,
    /// The root directory, relative to the share's root. `--read-only` is
    /// the spec's `root.readonly`, applied once the container's mounts are made.
    pub path: String,
}

/// Which [`crate::FrameKind::Stdio`] streams carry a process's stdio.
/// A process with a terminal (the spec's `process.terminal`) has its
/// terminal's output on `stdout`, stderr merged in as on any terminal; its
/// `stderr` stream only ends when that output does.
/// `None` connects that descriptor to /dev/null.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StdioStreams {
    /// Host → process.
    pub stdin: Option<u32>,
    /// Process → host.
    pub stdout: Option<u32>,
    /// Process → host.
    pub stderr: Option<u32>,
}

/// A response with the id of the request it answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseEnvelope<R = Response> {
    /// The request's id, or 0 when the request could not be parsed.
    pub id: u64,
    /// The outcome.
    pub response: R,
}

/// The outcome of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Reply to [`Request::Hello`].
    Hello {
        /// The agent's [`PROTOCOL_VERSION`].
        version: u32,
        /// The guest kernel's release (`uname -r`).
        kernel_release: String,
    },
    /// Reply to [`Request::CreateContainer`].
    Created {
        /// The first process's pid in the guest's initial pid namespace.
        pid: i32,
    },
    /// Reply to [`Request::Wait`].
    Exited {
        /// How the process ended.
        status: ExitStatus,
    },
    /// Reply to [`Request::ListProcesses`].
    Processes {
        /// One entry per process, in pid order.
        processes: Vec<ProcessInfo>,
    },
    /// Reply to [`Request::Stats`].
    Stats {
        /// What the container uses.
        stats: ContainerStats,
    },
    /// The request succeeded and has nothing to report.
    Done,
    /// The request failed.
    Error {
        /// One line saying why.
        message: String,
    },
}

/// A process of a container, as `ps` would show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid in the guest.
    pub pid: i32,
    /// Its parent's pid in the guest.
    pub ppid: i32,
    /// Its real uid.
    pub uid: u32,
    /// Its command line, arguments joined by spaces (the name in brackets for kernel threads).
    pub command: String,
}

/// A container's resource use, from its cgroup and the guest's NIC.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time used, in microseconds (`cpu.stat` `usage_usec`).
    pub cpu_usage_usec: u64,
    /// vCPUs of the guest.
    pub online_cpus: u32,
    /// Memory in use, in bytes (`memory.current`).
    pub memory_usage: u64,
    /// The limit: the cgroup's, or without one the guest's memory.
    pub memory_limit: u64,
    /// Bytes the guest's network received and sent.
    pub net_rx_bytes: u64,
    /// Bytes sent.
    pub net_tx_bytes: u64,
    /// Bytes read and written by block I/O (`io.stat`).
    pub block_read_bytes: u64,
    /// Bytes written.
    pub block_write_bytes: u64,
    /// Processes (`pids.current`).
    pub pids: u64,
}

/// The device nodes every container gets in its /dev, as Docker gives
/// them: the agent binds the guest's own onto files it creates there.
pub const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// How a process ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited {
        /// The exit code, 0 to 255.
        code: i32,
    },
    /// A signal ended it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether the kernel's OOM killer sent the signal.
        #[serde(default)]
        oom_killed: bool,
    },
}

impl ExitStatus {
    /// The status as a shell reports it: the code, or 128 + the signal.
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Exited { code } => code,
            ExitStatus::Signaled { signal, .. } => 128 + signal,
        }
    }
}

/// Something the agent reports without being asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A container's first process exited.
    ContainerExited {
        /// The container.
        container_id: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A DNS query a container sent to a server named by
    /// [`Request::ForwardDns`]; the host answers with [`Request::DnsAnswer`].
    DnsQuery {
        /// Chosen by the agent; unique among its outstanding queries.
        query_id: u64,
        /// The server it was sent to.
        server: std::net::Ipv4Addr,
        /// The DNS message, at most [`MAX_DNS_MESSAGE`] bytes.
        payload: Vec<u8>,
    },
    /// A line for the host's log: the agent has no other way to be heard
    /// once the VM's console is quiet.
    Log {
        /// The message.
        message: String,
    },
}

/// Whether `id` is acceptable as a container id: it becomes a path component
/// and a cgroup name in the guest.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shape_is_stable() {
        let env = RequestEnvelope {
            id: 4,
            request: Request::Wait {
                container_id: "c1".into(),
            },
        };
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(
            json,
            r#"{"id":4,"request":{"type":"wait","container_id":"c1"}}"#
        );
        let back: RequestEnvelope = serde_json::from_str(&json).unwrap();
        assert!(matches!(back.request, Request::Wait { container_id } if container_id == "c1"));
    }

    #[test]
    fn resize_refuses_sizes_beyond_a_winsize() {
        let ok = r#"{"id":1,"request":{"type":"resize_terminal","container_id":"c","exec_id":null,"rows":40,"cols":100}}"#;
        assert!(matches!(
            serde_json::from_str::<RequestEnvelope>(ok).unwrap().request,
            Request::ResizeTerminal {
                rows: 40,
                cols: 100,
                ..
            }
        ));
        let too_big = ok.replace("100", "70000");
        assert!(serde_json::from_str::<RequestEnvelope>(&too_big).is_err());
        let negative = ok.replace("40", "-1");
        assert!(serde_json::from_str::<RequestEnvelope>(&negative).is_err());
    }

    #[test]
    fn exec_without_terminal_field_still_parses() {
        let old = r#"{"type":"exec_process","container_id":"c","exec_id":"e","process":{"cwd":"/","user":{"uid":0,"gid":0}},"stdio":{"stdin":null,"stdout":1,"stderr":2}}"#;
        assert!(matches!(
            serde_json::from_str::<Request>(old).unwrap(),
            Request::ExecProcess {
                terminal: false,
                ..
            }
        ));
    }

    #[test]
    fn exit_status_codes() {
        assert_eq!(ExitStatus::Exited { code: 3 }.code(), 3);
        assert_eq!(
            ExitStatus::Signaled {
                signal: 9,
                oom_killed: false
            }
            .code(),
            137
        );
    }

    #[test]
    fn ids_are_path_safe() {
        assert!(is_valid_id("abc-DEF_1.2"));
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a b",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
