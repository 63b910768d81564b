//! The OCI runtime spec of a container, from its image and `hull run`'s
//! options, with Docker's rules for entrypoint, command, environment, user
//! and working directory.

use oci_spec::image::Config as ImageConfig;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, Spec,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Docker's default capabilities for a container.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The `$PATH` Docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The terminal type Docker announces to a process with a terminal.
const TERM_FOR_TTY: &str = "TERM=xterm";

/// The CFS period `--cpus` is expressed in, as Docker uses.
const CPU_PERIOD_US: u64 = 100_000;

/// Longest /etc/passwd or /etc/group read from an image.
const MAX_ACCOUNT_FILE: u64 = 4 << 20;

/// What `hull run` says about the container's process.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--entrypoint`: replaces the image's, and drops the image's command.
    pub entrypoint: Option<String>,
    /// Arguments after the image name: replace the image's command.
    pub args: Vec<String>,
    /// `-e K=V` or `-e K` (taken from Hull's own environment if set there).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u user[:group]`, names or numbers.
    pub user: Option<String>,
    /// `--hostname`; Docker's default is the short container id.
    pub hostname: Option<String>,
    /// `-m`: memory limit in bytes.
    pub memory: Option<i64>,
    /// `--cpus`: CPU time limit, in CPUs.
    pub cpus: Option<f64>,
    /// `--pids-limit`: most processes, -1 or 0 for no limit.
    pub pids_limit: Option<i64>,
    /// `--read-only`.
    pub read_only: bool,
    /// `-t`: the process gets a terminal (and, as under Docker, `TERM=xterm`
    /// unless the image or `-e` says otherwise).
    pub tty: bool,
    /// The terminal's initial size as (rows, columns), when `-t` and the user has one.
    pub console_size: Option<(u16, u16)>,
    /// The process's capabilities (bounding, effective, permitted); `None`:
    /// Docker's default set.
    pub capabilities: Option<HashSet<Capability>>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// The seccomp filter the guest loads; `None`: unconfined.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// The spec cannot be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    /// Neither the image nor the command line names a command.
    #[error("No command specified")]
    NoCommand,
    /// A user or group name is not in the image.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name is not in the image.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A value the OCI spec refuses.
    #[error("invalid container configuration: {0}")]
    Invalid(String),
    /// `-w` was not absolute.
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
}

/// Reads a file of the image, looking through its layers from the top.
/// Layers are directories on the host, bottom first.
pub fn read_image_file(layers: &[PathBuf], path: &str) -> Option<String> {
    use std::io::Read;
    for layer in layers.iter().rev() {
        let candidate = layer.join(path.trim_start_matches('/'));
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                let mut text = String::new();
                let file = std::fs::File::open(&candidate).ok()?;
                file.take(MAX_ACCOUNT_FILE).read_to_string(&mut text).ok()?;
                return Some(text);
            }
            // A whiteout or a non-file hides the lower layers' file.
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// The id (third field) of the entry named `name` in an /etc/passwd or
/// /etc/group text.
pub fn id_of(accounts: &str, name: &str) -> Option<u32> {
    accounts
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 3 && fields[0] == name)
        .and_then(|fields| fields[2].parse().ok())
}

/// uid, gid and supplementary groups of `user` (`name|uid[:group|gid]`).
pub fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_image_file(layers, "etc/passwd").unwrap_or_default();
    let groups = read_image_file(layers, "etc/group").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && (fields[0] == user_part || fields[2] == user_part));
    let (uid, mut gid, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(fields), _) => (
            fields[2]
                .parse()
                .map_err(|_| SpecError::UnknownUser(user_part.into()))?,
            fields[3]
                .parse()
                .map_err(|_| SpecError::UnknownUser(user_part.into()))?,
            Some(fields[0].to_string()),
        ),
        // Docker accepts a numeric uid that the image does not list.
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => return Err(SpecError::UnknownUser(user_part.into())),
    };
    if let Some(group) = group_part {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => id_of(&groups, group).ok_or_else(|| SpecError::UnknownGroup(group.into()))?,
        };
    }
    let mut additional = Vec::new();
    if let (Some(name), None) = (&name, group_part) {
        for fields in groups
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
        {
            if fields.len() >= 4 && fields[3].split(',').any(|member| member == name) {
                if let Ok(group_id) = fields[2].parse::<u32>() {
                    if group_id != gid && !additional.contains(&group_id) {
                        additional.push(group_id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, additional))
}

/// The home directory of `uid` in the image, `/root` or `/` when unknown (as runc).
fn home_of(uid: u32, layers: &[PathBuf]) -> String {
    read_image_file(layers, "etc/passwd")
        .and_then(|passwd| {
            passwd
                .lines()
                .map(|line| line.split(':').collect::<Vec<_>>())
                .find(|fields| fields.len() >= 6 && fields[2] == uid.to_string())
                .map(|fields| fields[5].to_string())
        })
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() })
}

/// Sets `entry` (`K=V`) in `env`, replacing an earlier value of `K`.
fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split('=').next().unwrap_or_default().to_string();
    env.retain(|existing| existing.split('=').next() != Some(key.as_str()));
    env.push(entry);
}

/// Builds the spec of a container with id `id` from its image's config and `options`.
pub fn build(
    id: &str,
    image: Option<&ImageConfig>,
    options: &RunOptions,
    layers: &[PathBuf],
) -> Result<Spec, SpecError> {
    let image_entrypoint = image
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let image_cmd = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let entrypoint = match &options.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image_entrypoint,
    };
    let cmd = if !options.args.is_empty() {
        options.args.clone()
    } else if options.entrypoint.is_some() {
        Vec::new()
    } else {
        image_cmd
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }

    let hostname = options
        .hostname
        .clone()
        .unwrap_or_else(|| id[..id.len().min(12)].to_string());
    let mut env: Vec<String> = Vec::new();
    for entry in image.and_then(|c| c.env().clone()).unwrap_or_default() {
        set_env(&mut env, entry);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    set_env(&mut env, format!("HOSTNAME={hostname}"));
    if options.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push(TERM_FOR_TTY.into());
    }
    for entry in &options.env {
        if entry.contains('=') {
            set_env(&mut env, entry.clone());
        } else if let Ok(value) = std::env::var(entry) {
            set_env(&mut env, format!("{entry}={value}"));
        }
    }

    let cwd = options
        .workdir
        .clone()
        .or_else(|| {
            image
                .and_then(|c| c.working_dir().clone())
                .filter(|w| !w.is_empty())
        })
        .unwrap_or_else(|| "/".into());
    if !Path::new(&cwd).is_absolute() {
        return Err(SpecError::RelativeWorkdir(cwd));
    }

    let user = options.user.clone().or_else(|| {
        image
            .and_then(|c| c.user().clone())
            .filter(|u| !u.is_empty())
    });
    let (uid, gid, additional_gids) = match user {
        Some(user) => resolve_user(&user, layers)?,
        None => (0, 0, Vec::new()),
    };
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(uid, layers)));
    }

    let mut spec = Spec::default();
    spec.set_hostname(Some(hostname));
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(options.read_only));
    }
    if let Some(process) = spec.process_mut() {
        process.set_args(Some(args));
        process.set_env(Some(env));
        process.set_cwd(PathBuf::from(cwd));
        process.set_no_new_privileges(Some(options.no_new_privileges));
        process.set_terminal(Some(options.tty));
        process.set_console_size(
            options
                .console_size
                .filter(|_| options.tty)
                .and_then(|(rows, cols)| console_box(rows, cols)),
        );
        let user = process.user_mut();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids((!additional_gids.is_empty()).then_some(additional_gids));
        let caps = options
            .capabilities
            .clone()
            .unwrap_or_else(|| DEFAULT_CAPABILITIES.into_iter().collect());
        let mut capabilities = LinuxCapabilities::default();
        capabilities.set_bounding(Some(caps.clone()));
        capabilities.set_effective(Some(caps.clone()));
        capabilities.set_permitted(Some(caps));
        capabilities.set_inheritable(None);
        capabilities.set_ambient(None);
        process.set_capabilities(Some(capabilities));
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(options.seccomp.clone());
    }
    if let (Some(limit), Some(linux)) = (options.memory, spec.linux_mut()) {
        let memory = LinuxMemoryBuilder::default()
            .limit(limit)
            .build()
            .map_err(|e| SpecError::Invalid(e.to_string()))?;
        let mut resources = linux
            .resources()
            .clone()
            .unwrap_or_else(LinuxResources::default);
        resources.set_memory(Some(memory));
        linux.set_resources(Some(resources));
    }
    if let (Some(limit), Some(linux)) = (options.pids_limit, spec.linux_mut()) {
        let pids = LinuxPidsBuilder::default()
            .limit(limit)
            .build()
            .map_err(|e| SpecError::Invalid(e.to_string()))?;
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_pids(Some(pids));
        linux.set_resources(Some(resources));
    }
    if let (Some(cpus), Some(linux)) = (options.cpus, spec.linux_mut()) {
        let cpu = LinuxCpuBuilder::default()
            .quota((cpus * CPU_PERIOD_US as f64) as i64)
            .period(CPU_PERIOD_US)
            .build()
            .map_err(|e| SpecError::Invalid(e.to_string()))?;
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_cpu(Some(cpu));
        linux.set_resources(Some(resources));
    }
    Ok(spec)
}

/// `process.consoleSize` of `rows` x `cols`.
pub fn console_box(rows: u16, cols: u16) -> Option<oci_spec::runtime::Box> {
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(rows))
        .width(u64::from(cols))
        .build()
        .ok()
}

/// What `hull exec` says about its process.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions<'a> {
    /// The command and its arguments.
    pub args: &'a [String],
    /// `-e K=V`.
    pub env: &'a [String],
    /// `-w`.
    pub workdir: Option<&'a str>,
    /// `-u`.
    pub user: Option<&'a str>,
    /// `-t`.
    pub tty: bool,
    /// The terminal's initial size as (rows, columns), when `-t` and the user has one.
    pub console_size: Option<(u16, u16)>,
}

/// The process of a `hull exec`: the container's own process settings with
/// the exec's command, extra environment, working directory, user and
/// terminal (its own, whether the container has one or not).
pub fn exec_process(
    base: &oci_spec::runtime::Process,
    options: &ExecOptions<'_>,
    layers: &[PathBuf],
) -> Result<oci_spec::runtime::Process, SpecError> {
    let ExecOptions {
        args,
        env,
        workdir,
        user,
        tty,
        console_size,
    } = *options;
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let mut process = base.clone();
    process.set_args(Some(args.to_vec()));
    process.set_terminal(Some(tty));
    process.set_console_size(
        console_size
            .filter(|_| tty)
            .and_then(|(rows, cols)| console_box(rows, cols)),
    );
    let mut merged = base.env().clone().unwrap_or_default();
    if tty && !merged.iter().any(|e| e.starts_with("TERM=")) {
        merged.push(TERM_FOR_TTY.into());
    }
    for entry in env {
        set_env(&mut merged, entry.clone());
    }
    if let Some(workdir) = workdir {
        if !Path::new(workdir).is_absolute() {
            return Err(SpecError::RelativeWorkdir(workdir.into()));
        }
        process.set_cwd(PathBuf::from(workdir));
    }
    if let Some(user) = user {
        let (uid, gid, additional) = resolve_user(user, layers)?;
        let spec_user = process.user_mut();
        spec_user.set_uid(uid);
        spec_user.set_gid(gid);
        spec_user.set_additional_gids((!additional.is_empty()).then_some(additional));
        set_env(&mut merged, format!("HOME={}", home_of(uid, layers)));
    }
    process.set_env(Some(merged));
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let mut config = ImageConfig::default();
        config.set_entrypoint(entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()));
        config.set_cmd(cmd.map(|c| c.iter().map(|s| s.to_string()).collect()));
        config.set_env(Some(vec!["PATH=/bin".into(), "A=image".into()]));
        config
    }

    fn args(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().args().clone().unwrap()
    }

    const ID: &str = "0123456789abcdef0123";

    #[test]
    fn entrypoint_and_cmd_follow_dockers_rules() {
        let img = image(Some(&["/entry"]), Some(&["default"]));
        let opts = |entrypoint: Option<&str>, a: &[&str]| RunOptions {
            entrypoint: entrypoint.map(String::from),
            args: a.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            args(&build(ID, Some(&img), &opts(None, &[]), &[]).unwrap()),
            ["/entry", "default"]
        );
        assert_eq!(
            args(&build(ID, Some(&img), &opts(None, &["x"]), &[]).unwrap()),
            ["/entry", "x"]
        );
        assert_eq!(
            args(&build(ID, Some(&img), &opts(Some("sh"), &[]), &[]).unwrap()),
            ["sh"]
        );
        assert_eq!(
            args(&build(ID, Some(&img), &opts(Some("sh"), &["-c", "true"]), &[]).unwrap()),
            ["sh", "-c", "true"]
        );
        let bare = image(None, None);
        assert_eq!(
            build(ID, Some(&bare), &opts(None, &[]), &[]).unwrap_err(),
            SpecError::NoCommand
        );
    }

    #[test]
    fn env_hostname_and_cwd() {
        let img = image(None, Some(&["sh"]));
        let opts = RunOptions {
            env: vec!["A=cli".into(), "B=2".into()],
            workdir: Some("/work".into()),
            ..Default::default()
        };
        let spec = build(ID, Some(&img), &opts, &[]).unwrap();
        let process = spec.process().as_ref().unwrap();
        let env = process.env().clone().unwrap();
        assert!(env.contains(&"A=cli".to_string()) && !env.contains(&"A=image".to_string()));
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
        assert_eq!(process.cwd(), Path::new("/work"));
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        let bad = RunOptions {
            workdir: Some("rel".into()),
            ..Default::default()
        };
        assert!(matches!(
            build(ID, Some(&img), &bad, &[]),
            Err(SpecError::RelativeWorkdir(_))
        ));
    }

    #[test]
    fn users_resolve_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("l0");
        let upper = dir.path().join("l1");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(
            upper.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            upper.join("etc/group"),
            "alice:x:1000:\nwheel:x:10:alice,bob\nstaff:x:50:\n",
        )
        .unwrap();
        let layers = vec![lower, upper];
        assert_eq!(
            resolve_user("alice", &layers).unwrap(),
            (1000, 1000, vec![10])
        );
        assert_eq!(
            resolve_user("alice:staff", &layers).unwrap(),
            (1000, 50, vec![])
        );
        assert_eq!(resolve_user("1234:5", &layers).unwrap(), (1234, 5, vec![]));
        assert_eq!(
            resolve_user("nobody", &layers),
            Err(SpecError::UnknownUser("nobody".into()))
        );
        assert_eq!(home_of(1000, &layers), "/home/alice");
    }

    #[test]
    fn tty_gives_a_terminal_its_size_and_term() {
        let img = image(None, Some(&["sh"]));
        let opts = RunOptions {
            tty: true,
            console_size: Some((33, 77)),
            ..Default::default()
        };
        let spec = build(ID, Some(&img), &opts, &[]).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        let size = process.console_size().unwrap();
        assert_eq!((size.height(), size.width()), (33, 77));
        assert!(process
            .env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string()));
        let own_term = RunOptions {
            tty: true,
            env: vec!["TERM=vt100".into()],
            ..Default::default()
        };
        let env = build(ID, Some(&img), &own_term, &[])
            .unwrap()
            .process()
            .clone()
            .unwrap()
            .env()
            .clone()
            .unwrap();
        assert!(
            env.contains(&"TERM=vt100".to_string()) && !env.contains(&"TERM=xterm".to_string())
        );
        let plain = build(ID, Some(&img), &RunOptions::default(), &[]).unwrap();
        let process = plain.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(false));
        assert!(process.console_size().is_none());

        // An exec's terminal is its own: none without -t even in a container with one.
        let base = spec.process().as_ref().unwrap();
        let args = ["sh".to_string()];
        let exec = exec_process(
            base,
            &ExecOptions {
                args: &args,
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(exec.terminal(), Some(false));
        assert!(exec.console_size().is_none());
        let exec = exec_process(
            plain.process().as_ref().unwrap(),
            &ExecOptions {
                args: &args,
                tty: true,
                console_size: Some((20, 60)),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(exec.terminal(), Some(true));
        assert_eq!(
            exec.console_size().map(|s| (s.height(), s.width())),
            Some((20, 60))
        );
        assert!(exec
            .env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string()));
    }

    #[test]
    fn memory_limit_lands_in_resources() {
        let img = image(None, Some(&["sh"]));
        let opts = RunOptions {
            memory: Some(32 << 20),
            ..Default::default()
        };
        let spec = build(ID, Some(&img), &opts, &[]).unwrap();
        let limit = spec
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .memory()
            .as_ref()
            .unwrap()
            .limit();
        assert_eq!(limit, Some(32 << 20));
    }
}
