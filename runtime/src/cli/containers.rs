//! The everyday container commands: `ps`, `logs`, `start`, `stop`, `kill`,
//! `restart`, `rm`, `wait`, `attach`, `inspect`, with Docker's flags, columns
//! and output.

use super::engine;
use super::format::{ago, binary_size, human_duration, human_size};
use super::images::open_store;
use super::output::{inspect_text, print_listing, Columns, Format};
use super::run::{attach_and_wait, Session};
use super::tabwriter::print_table;
use crate::config::Paths;
use crate::container::{monitor_alive, reconcile};
use crate::container::{ContainerRecord, ContainerStore, Status};
use crate::copy::archive_tree;
use crate::copy::TreeKind;
use crate::logs::{LogDriver, LogEntry, LogReader};
use crate::monitor_link::client;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse};
use crate::sandbox::{mount_points, SandboxPlan};
use crate::timefmt;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// Opens the container store and resolves `reference` to a reconciled record.
pub(super) fn load(paths: &Paths, reference: &str) -> Result<(ContainerStore, ContainerRecord)> {
    Ok(engine(paths).load(reference)?)
}

/// Runs `action` on each named container, printing errors as Docker does
/// and failing at the end if any failed.
async fn for_each<F, Fut>(names: &[String], mut action: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut failed = false;
    for name in names {
        if let Err(err) = action(name.clone()).await {
            eprintln!("hull: {err:#}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// `hull ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a Go template (`table` prefix keeps the header)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Filter output based on conditions provided (id=, name=, status=, ancestor=, exited=, label=)
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int")]
    last: Option<usize>,
}

/// One `ps --filter KEY=VALUE`. Filters with the same key are alternatives
/// (any may match); different keys must all match, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PsFilter {
    key: String,
    value: String,
}

impl PsFilter {
    fn parse(text: &str) -> Result<Self> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        if !["id", "name", "status", "ancestor", "exited", "label"].contains(&key) {
            bail!("invalid filter '{key}'");
        }
        if key == "status"
            && ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&value)
        {
            bail!("invalid filter 'status={value}'");
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    fn matches(&self, record: &ContainerRecord) -> bool {
        let value = self.value.as_str();
        match self.key.as_str() {
            "id" => record.id.starts_with(value),
            // Docker matches names as a substring (a regular expression, in fact).
            "name" => record.short_name().contains(value.trim_start_matches('/')),
            "status" => record.state.status.as_str() == value,
            "ancestor" => {
                record.config.image == value
                    || record.image == value
                    || record
                        .image
                        .trim_start_matches("sha256:")
                        .starts_with(value)
            }
            "exited" => {
                record.state.status == Status::Exited && record.state.exit_code.to_string() == value
            }
            "label" => match value.split_once('=') {
                Some((k, v)) => record.config.labels.get(k).is_some_and(|l| l == v),
                None => record.config.labels.contains_key(value),
            },
            _ => false,
        }
    }
}

/// Whether `record` passes every filter key.
fn passes(filters: &[PsFilter], record: &ContainerRecord) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(|f| f.key.as_str()).collect();
    keys.dedup();
    keys.iter().all(|key| {
        filters
            .iter()
            .filter(|f| f.key == *key)
            .any(|f| f.matches(record))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_filters_parse_as_docker_spells_them() {
        assert!(PsFilter::parse("name=web").is_ok());
        assert!(PsFilter::parse("status=exited").is_ok());
        assert_eq!(
            PsFilter::parse("status=sleeping").unwrap_err().to_string(),
            "invalid filter 'status=sleeping'"
        );
        assert_eq!(
            PsFilter::parse("colour=red").unwrap_err().to_string(),
            "invalid filter 'colour'"
        );
        assert!(PsFilter::parse("name").is_err());
    }
}

/// The STATUS column: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
fn status_text(record: &ContainerRecord) -> String {
    let since = |at: &str| {
        timefmt::parse(at).map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    };
    match record.state.status {
        Status::Running => format!(
            "Up {}",
            since(&record.state.started_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            since(&record.state.started_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            record.state.exit_code,
            since(&record.state.finished_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            record.state.exit_code,
            since(&record.state.finished_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// The COMMAND column: the command line, quoted, truncated as Docker does.
fn command_text(record: &ContainerRecord, no_trunc: bool) -> String {
    let mut command = std::iter::once(record.path.as_str())
        .chain(record.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{command}\"")
}

/// `ps`'s fields and Docker's names of their columns.
const PS_COLUMNS: Columns = Columns {
    names: &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ],
    default: "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}",
};

/// A container as `ps --format` sees it: Docker's fields, each a string.
fn ps_row(record: &ContainerRecord, no_trunc: bool) -> Value {
    let networks: Vec<&str> = record
        .network_settings
        .get("Networks")
        .and_then(Value::as_object)
        .map(|networks| networks.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let labels: Vec<String> = record
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let id = if no_trunc {
        record.id.clone()
    } else {
        record.id[..12].to_string()
    };
    json!({
        "ID": id,
        "Image": record.config.image,
        "Command": command_text(record, no_trunc),
        "CreatedAt": record.created,
        "RunningFor": ago(Some(&record.created)),
        "Status": status_text(record),
        "State": record.state.status.as_str(),
        "Ports": ports_text(&record.network_settings),
        "Names": record.short_name(),
        "Size": "0B",
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": networks.join(","),
        "LocalVolumes": "0",
    })
}

/// Published ports as `(container port/proto, host ip, host port)`, from `NetworkSettings.Ports`.
fn published_ports(settings: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(ports) = settings.get("Ports").and_then(Value::as_object) {
        for (container_port, bindings) in ports {
            for binding in bindings.as_array().into_iter().flatten() {
                let field = |name: &str| {
                    binding
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                out.push((container_port.clone(), field("HostIp"), field("HostPort")));
            }
        }
    }
    out
}

/// The PORTS column: `0.0.0.0:8080->80/tcp, …`.
fn ports_text(settings: &Value) -> String {
    published_ports(settings)
        .into_iter()
        .map(|(container, ip, port)| format!("{ip}:{port}->{container}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `hull port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container
    container: String,
    /// Only this port (`80` or `80/tcp`)
    private_port: Option<String>,
}

/// Lists a container's port mappings.
pub fn port(paths: &Paths, args: PortArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    let wanted = args.private_port.map(|p| {
        if p.contains('/') {
            p
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (container, ip, port) in published_ports(&record.network_settings) {
        match &wanted {
            Some(w) if *w != container => continue,
            Some(_) => println!("{ip}:{port}"),
            None => println!("{container} -> {ip}:{port}"),
        }
        found = true;
    }
    if let (Some(wanted), false) = (wanted, found) {
        bail!("No public port '{wanted}' published for {}", args.container);
    }
    Ok(0)
}

/// Lists containers.
pub fn ps(paths: &Paths, args: PsArgs) -> Result<i32> {
    let store = ContainerStore::open(&paths.root)?;
    let mut records = store.list()?;
    for record in records.iter_mut() {
        reconcile(&store, record);
    }
    let filters = args
        .filter
        .iter()
        .map(|f| PsFilter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    // A status or exited filter looks at every container, as in Docker.
    let all = args.all
        || args.latest
        || args.last.is_some()
        || filters
            .iter()
            .any(|f| f.key == "status" || f.key == "exited");
    records.retain(|r| {
        all || matches!(
            r.state.status,
            Status::Running | Status::Restarting | Status::Paused
        )
    });
    records.retain(|r| passes(&filters, r));
    // Newest first already; -l is -n 1.
    if let Some(last) = args.last.or(args.latest.then_some(1)) {
        records.truncate(last);
    }
    if args.quiet {
        for record in &records {
            println!(
                "{}",
                if args.no_trunc {
                    record.id.as_str()
                } else {
                    &record.id[..12]
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Value> = records.iter().map(|r| ps_row(r, args.no_trunc)).collect();
    print_listing(args.format.as_deref(), &PS_COLUMNS, &rows)?;
    Ok(0)
}

/// `hull logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// The container
    container: String,
}

/// `--since`: an RFC 3339 time, Unix seconds, or a duration ago (`10s`, `42m`, `2h`).
fn parse_since(text: &str) -> Result<SystemTime> {
    if let Some(time) = timefmt::parse(text) {
        return Ok(time);
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow!("invalid value for \"since\": {text}"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("invalid value for \"since\": {text}"),
    };
    Ok(SystemTime::now() - Duration::from_secs_f64(seconds))
}

/// Prints a container's log: its rotated files, oldest first, then the
/// current one; with `-f`, what is written next, until the container is done.
pub async fn logs(paths: &Paths, args: LogsArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    if record.host_config.log_config.driver == LogDriver::None {
        bail!("configured logging driver does not support reading");
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow!("invalid value for --tail: {n}"))?,
        ),
    };
    let wanted = |entry: &LogEntry| {
        since.is_none_or(|since| timefmt::parse(&entry.time).is_some_and(|t| t >= since))
    };
    let path = std::path::PathBuf::from(&record.log_path);
    let mut reader =
        LogReader::open(&path).with_context(|| format!("reading {}", path.display()))?;
    // The last `--tail` entries; only these are held, however long the log.
    let mut last: VecDeque<LogEntry> = VecDeque::with_capacity(tail.unwrap_or(0).min(4096));
    reader.read_new(|entry| {
        if !wanted(&entry) {
            return;
        }
        match tail {
            Some(0) => {}
            Some(n) => {
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(entry);
            }
            None => print_entry(&entry, args.timestamps),
        }
    })?;
    last.iter()
        .for_each(|entry| print_entry(entry, args.timestamps));
    flush_output();
    if !args.follow {
        return Ok(0);
    }
    loop {
        let mut current = store.load(&record.id).unwrap_or_else(|_| record.clone());
        reconcile(&store, &mut current);
        let done = !matches!(
            current.state.status,
            Status::Running | Status::Restarting | Status::Paused | Status::Created
        ) && !monitor_alive(current.hull_sandbox.monitor_pid);
        if !done {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // When done: one last read, for lines written just before the exit.
        reader.read_new(|entry| {
            if wanted(&entry) {
                print_entry(&entry, args.timestamps)
            }
        })?;
        flush_output();
        if done {
            return Ok(0);
        }
    }
}

/// Prints a log entry to stdout or stderr, as its stream was.
fn print_entry(entry: &LogEntry, timestamps: bool) {
    use std::io::Write;
    let text = if timestamps {
        format!("{} {}", entry.time, entry.log)
    } else {
        entry.log.clone()
    };
    let _ = if entry.stream == "stderr" {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())
    };
}

/// Flushes what `print_entry` printed.
fn flush_output() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `hull start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<super::run::DetachKeys>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Starts containers.
pub async fn start(paths: &Paths, args: StartArgs) -> Result<i32> {
    if args.attach || args.interactive {
        let [name] = args.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let record = load(paths, name)?.1;
        let (id, tty) = (record.id, record.config.tty);
        super::terminal::check_input_is_terminal(args.interactive, tty)?;
        let monitor = match engine(paths).prepare_start(name).await? {
            Some(monitor) => monitor,
            None => client::connect(paths, &id).await?,
        };
        let how = Session {
            interactive: args.interactive,
            tty,
            proxy_signals: true,
            output: true,
            detach_keys: args.detach_keys.clone().unwrap_or_default(),
        };
        return attach_and_wait(&monitor, how, Some((paths, &id))).await;
    }
    for_each(&args.containers, |name| async move {
        engine(paths).start_detached(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull stop` and `hull restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10)
    #[arg(short, long, value_name = "int")]
    time: Option<u64>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Stops containers.
pub async fn stop(paths: &Paths, args: StopArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).stop(&name, args.time).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// Restarts containers.
pub async fn restart(paths: &Paths, args: StopArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).restart(&name, args.time).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string", default_value = "KILL")]
    signal: String,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Sends a signal to containers.
pub async fn kill(paths: &Paths, args: KillArgs) -> Result<i32> {
    let signal = crate::signal::parse_signal(&args.signal)?;
    for_each(&args.containers, |name| async move {
        engine(paths).kill(&name, signal).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Removes containers.
pub async fn rm(paths: &Paths, args: RmArgs) -> Result<i32> {
    let (force, volumes) = (args.force, args.volumes);
    for_each(&args.containers, |name| async move {
        engine(paths)
            .remove_container(&name, force, volumes)
            .await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Blocks until containers stop, then prints their exit codes.
pub async fn wait(paths: &Paths, args: WaitArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        let (store, record) = load(paths, &name)?;
        let code = match client::connect(paths, &record.id).await {
            Ok(monitor)
                if matches!(
                    record.state.status,
                    Status::Running | Status::Restarting | Status::Paused | Status::Created
                ) =>
            {
                match monitor.request(MonitorRequest::Wait).await {
                    Ok(MonitorResponse::Exited { exit_code, .. }) => exit_code,
                    _ => {
                        crate::engine::wait_for_monitor(&store, &record.id).await;
                        store
                            .load(&record.id)
                            .map(|r| r.state.exit_code)
                            .unwrap_or(record.state.exit_code)
                    }
                }
            }
            _ => record.state.exit_code,
        };
        println!("{code}");
        Ok(())
    })
    .await
}

/// `hull attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<super::run::DetachKeys>,
    /// The container
    container: String,
}

/// Attaches the terminal to a running container.
pub async fn attach(paths: &Paths, args: AttachArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    if record.state.status == Status::Paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if record.state.status != Status::Running {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let attach_stdin = record.config.open_stdin && !args.no_stdin;
    super::terminal::check_input_is_terminal(attach_stdin, record.config.tty)?;
    let monitor = client::connect(paths, &record.id).await?;
    let how = Session {
        interactive: attach_stdin,
        tty: record.config.tty,
        proxy_signals: true,
        output: true,
        detach_keys: args.detach_keys.unwrap_or_default(),
    };
    attach_and_wait(&monitor, how, None).await
}

/// `hull top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The container
    container: String,
}

/// Lists a running container's processes, as its guest sees them.
pub async fn top(paths: &Paths, args: TopArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    if record.state.status == Status::Paused {
        bail!(
            "Container {} is paused, unpause the container before top",
            record.id
        );
    }
    if record.state.status != Status::Running {
        bail!("Container {} is not running", record.id);
    }
    let monitor = client::connect(paths, &record.id).await?;
    let MonitorResponse::Processes { processes } = monitor.request(MonitorRequest::Top).await?
    else {
        bail!("unexpected answer from the monitor");
    };
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            vec![
                if p.uid == 0 {
                    "root".into()
                } else {
                    p.uid.to_string()
                },
                p.pid.to_string(),
                p.ppid.to_string(),
                p.command.clone(),
            ]
        })
        .collect();
    print_table(&["UID", "PID", "PPID", "CMD"], &rows);
    Ok(0)
}

/// `hull export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<std::path::PathBuf>,
    /// The container
    container: String,
}

/// Writes a container's file system (running or not) as a tar archive.
pub async fn export(paths: &Paths, args: ExportArgs) -> Result<i32> {
    use std::io::{IsTerminal, Write};
    let (store, record) = load(paths, &args.container)?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None if std::io::stdout().is_terminal() => {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let rootfs = SandboxPlan::load(&store.dir_of(&record.id))?.rootfs(&store.dir_of(&record.id));
    let scratch = paths.views_dir();
    // (Walked by descriptors: a running guest's changes meanwhile lead it nowhere.)
    tokio::task::spawn_blocking(move || {
        rootfs.with_view(&scratch, move |root| {
            archive_tree(root, TreeKind::Merged, Default::default(), out)
        })
    })
    .await
    .context("exporting")???;
    Ok(0)
}

/// `hull inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Only this kind of object: container or image
    #[arg(long = "type", value_name = "string")]
    kind: Option<String>,
    /// Containers or images
    #[arg(required = true)]
    names: Vec<String>,
}

impl InspectArgs {
    /// The same, for one kind of object only (`container inspect`, `image inspect`).
    pub fn of_kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_string());
        self
    }
}

/// An image as `docker image inspect` shows it.
fn image_json(paths: &Paths, name: &str) -> Result<Value> {
    let store = open_store(paths)?;
    let image = store.resolve(name)?;
    let summary = store.list()?.into_iter().find(|s| s.id == image.id);
    Ok(json!({
        "Id": image.id.to_string(),
        "RepoTags": image.reference.iter().map(|r| r.familiar_string()).collect::<Vec<_>>(),
        "RepoDigests": [],
        "Created": summary.as_ref().and_then(|s| s.created.clone()).unwrap_or_default(),
        "Config": serde_json::to_value(image.config.config()).unwrap_or(Value::Null),
        "Architecture": image.config.architecture().to_string(),
        "Os": image.config.os().to_string(),
        "Size": summary.map_or(0, |s| s.size),
        "RootFS": { "Type": "layers", "Layers": image.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
    }))
}

/// Prints containers' or images' details.
pub fn inspect(paths: &Paths, args: InspectArgs) -> Result<i32> {
    // A bad template fails before anything is looked up, as in Docker.
    inspect_text(args.format.as_deref(), &[])?;
    let mut objects = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let container = match args.kind.as_deref() {
            Some("image") => None,
            _ => load(paths, name)
                .ok()
                .map(|(_, record)| serde_json::to_value(record)),
        };
        let object = match container {
            Some(value) => Some(value.context("serialising the record")?),
            None if args.kind.as_deref() != Some("container") => image_json(paths, name).ok(),
            None => None,
        };
        match object {
            Some(object) => objects.push(object),
            None => {
                eprintln!("hull: Error: No such object: {name}");
                failed = true;
            }
        }
    }
    print!("{}", inspect_text(args.format.as_deref(), &objects)?);
    Ok(if failed { 1 } else { 0 })
}

/// `hull commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE)
    #[arg(short, long, value_name = "list")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container
    container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
}

/// Makes a new image of a container's changes (its writable layer, with
/// overlayfs' whiteouts turned into OCI ones) on top of its image.
pub async fn commit(paths: &Paths, args: CommitArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    let mut config = serde_json::Map::new();
    config.insert("Cmd".into(), json!(record.config.cmd));
    config.insert("Entrypoint".into(), json!(record.config.entrypoint));
    config.insert("Env".into(), json!(record.config.env));
    config.insert("WorkingDir".into(), json!(record.config.working_dir));
    config.insert("User".into(), json!(record.config.user));
    for change in &args.change {
        apply_change(&mut config, change)?;
    }
    let request = crate::engine::CommitRequest {
        options: crate::image::CommitOptions {
            author: args.author.clone(),
            message: args.message.clone(),
            created_by: std::iter::once(record.path.clone())
                .chain(record.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            config,
        },
        pause: args.pause,
        reference: args.repository.clone(),
    };
    let id = engine(paths).commit(&record.id, &request).await?;
    println!("{id}");
    Ok(0)
}

/// One `--change` instruction, applied to an image config's `config`.
fn apply_change(config: &mut serde_json::Map<String, Value>, change: &str) -> Result<()> {
    let (instruction, value) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let value = value.trim();
    // Exec form (a JSON array) or shell form, as in a Dockerfile.
    let command = || -> Value {
        serde_json::from_str::<Vec<String>>(value)
            .map_or_else(|_| json!(["/bin/sh", "-c", value]), |list| json!(list))
    };
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command());
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command());
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(value));
        }
        "USER" => {
            config.insert("User".into(), json!(value));
        }
        "ENV" => {
            let (key, val) = value
                .split_once('=')
                .or_else(|| value.split_once(' '))
                .ok_or_else(|| anyhow!("ENV needs KEY=VALUE: {change}"))?;
            let env = config.entry("Env").or_insert_with(|| json!([]));
            if let Some(list) = env.as_array_mut() {
                list.retain(|e| {
                    e.as_str()
                        .and_then(|e| e.split_once('='))
                        .is_none_or(|(k, _)| k != key)
                });
                list.push(json!(format!("{key}={}", val.trim())));
            }
        }
        "LABEL" => {
            let (key, val) = value
                .split_once('=')
                .ok_or_else(|| anyhow!("LABEL needs KEY=VALUE: {change}"))?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if let Some(map) = labels.as_object_mut() {
                map.insert(key.to_string(), json!(val.trim_matches('"')));
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for port in value.split_whitespace() {
                let key = if port.contains('/') {
                    port.to_string()
                } else {
                    format!("{port}/tcp")
                };
                if let Some(map) = ports.as_object_mut() {
                    map.insert(key, json!({}));
                }
            }
        }
        other => bail!("{other} is not a valid change command"),
    }
    Ok(())
}

/// `hull diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container
    container: String,
}

/// Lists the changes to a container's files: `A` added, `C` changed, `D` deleted.
pub async fn diff(paths: &Paths, args: DiffArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    let rootfs = SandboxPlan::load(&store.dir_of(&record.id))?.rootfs(&store.dir_of(&record.id));
    for change in rootfs.changes(&mount_points(&store.dir_of(&record.id))?)? {
        println!("{} {}", change.kind, change.path);
    }
    Ok(0)
}

/// `hull pause` / `hull unpause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Freezes containers: their VMs' vCPUs stop where they are (the VMM
/// pauses them; its process runs on); nothing in the guest notices but the time.
pub async fn pause(paths: &Paths, args: PauseArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).pause(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// Lets paused containers' VMs run again.
pub async fn unpause(paths: &Paths, args: PauseArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).unpause(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a Go template (`table` prefix keeps the header)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Containers (default: all running)
    containers: Vec<String>,
}

/// One container's row: its record and, if it runs, two samples a moment apart.
struct StatsRow {
    record: ContainerRecord,
    samples: Option<(
        hull_protocol::ContainerStats,
        hull_protocol::ContainerStats,
        Duration,
    )>,
}

/// Resource use of containers, as `docker stats`: CPU from two samples a
/// second apart, memory against the cgroup's limit (or the VM's memory),
/// network and block I/O, processes; every second unless `--no-stream`.
pub async fn stats(paths: &Paths, args: StatsArgs) -> Result<i32> {
    let store = ContainerStore::open(&paths.root)?;
    let ids: Vec<String> = if args.containers.is_empty() {
        store
            .list()?
            .into_iter()
            .filter(|r| args.all || r.state.status == Status::Running)
            .map(|r| r.id)
            .collect()
    } else {
        args.containers
            .iter()
            .map(|name| store.resolve(name))
            .collect::<Result<_, _>>()?
    };
    let format = Format::listing(args.format.as_deref(), STATS_COLUMNS.default)?;
    let sample = |record: ContainerRecord| async move {
        // A paused VM would not answer; a stopped container has nothing to say.
        if record.state.status != Status::Running {
            return None;
        }
        let monitor = client::connect(paths, &record.id).await.ok()?;
        match monitor.request(MonitorRequest::Stats).await {
            Ok(MonitorResponse::Stats { stats }) => Some((std::time::Instant::now(), stats)),
            _ => None,
        }
    };
    let mut previous: Vec<Option<(std::time::Instant, hull_protocol::ContainerStats)>> = Vec::new();
    for id in &ids {
        previous.push(sample(store.load(id)?).await);
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rows = Vec::new();
        let mut current = Vec::new();
        for (id, before) in ids.iter().zip(&previous) {
            let record = store.load(id)?;
            let now = sample(record.clone()).await;
            let samples = match (before, &now) {
                (Some((t0, s0)), Some((t1, s1))) => Some((*s0, *s1, t1.duration_since(*t0))),
                _ => None,
            };
            rows.push(StatsRow { record, samples });
            current.push(now);
        }
        if !args.no_stream {
            // Docker redraws in place.
            print!("\x1b[2J\x1b[H");
        }
        let values: Vec<Value> = rows
            .iter()
            .map(|row| stats_values(row, args.no_trunc))
            .collect();
        print!("{}", format.render(&STATS_COLUMNS, &values)?);
        if args.no_stream {
            return Ok(0);
        }
        previous = current;
    }
}

/// `stats`'s fields and Docker's names of their columns.
const STATS_COLUMNS: Columns = Columns {
    names: &[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ],
    default: "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}",
};

/// A row's fields under Docker's `--format` names.
fn stats_values(row: &StatsRow, no_trunc: bool) -> Value {
    let id = if no_trunc {
        row.record.id.clone()
    } else {
        row.record.id[..12].to_string()
    };
    let name = row.record.short_name().to_string();
    let Some((before, now, elapsed)) = row.samples else {
        return json!({"Container": name, "ID": id, "Name": name, "CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--", "BlockIO": "--", "PIDs": "--"});
    };
    let cpu = now.cpu_usage_usec.saturating_sub(before.cpu_usage_usec) as f64
        / elapsed.as_micros().max(1) as f64
        * 100.0;
    let mem = now.memory_usage as f64 / now.memory_limit.max(1) as f64 * 100.0;
    json!({
        "Container": name,
        "ID": id,
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(now.memory_usage), binary_size(now.memory_limit)),
        "MemPerc": format!("{mem:.2}%"),
        "NetIO": format!("{} / {}", human_size(now.net_rx_bytes), human_size(now.net_tx_bytes)),
        "BlockIO": format!("{} / {}", human_size(now.block_read_bytes), human_size(now.block_write_bytes)),
        "PIDs": now.pids.to_string(),
    })
}

/// `hull rename`.
#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The container
    container: String,
    /// Its new name
    new_name: String,
}

/// Renames a container, running or not (peers on its network keep knowing
/// it by the old name until it restarts).
pub async fn rename(paths: &Paths, args: RenameArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    let new_name = args.new_name.trim_start_matches('/');
    if record.short_name() == new_name {
        bail!("Renaming a container with the same name as its current name");
    }
    store.rename(&record.id, new_name)?;
    Ok(0)
}
