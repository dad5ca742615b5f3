//! A real single-machine Slurm cluster for integration tests: munged, slurmctld and slurmd
//! started as child processes of the test, on loopback, with everything (config, munge key
//! and socket, state, spool, pid and log files) in a fresh temporary folder and ports picked
//! free at start, so several test binaries can run clusters at the same time. Include it
//! with `#[path = "support/slurm.rs"] mod slurm;`. See docs/slurm-testing.md.
//!
//! - [`SlurmCluster::start`] returns `None` (after saying which binaries are missing) only
//!   when Slurm or munge is not installed; any other failure panics with the tails of the
//!   daemons' logs. The daemons run as root (`SlurmUser=root`), so the tests must too.
//! - [`SlurmCluster::command`] builds a `Command` that talks to this cluster (it sets
//!   [`SlurmCluster::env`], i.e. `SLURM_CONF`, and drops `SLURM_*`/`SBATCH_*`/... variables
//!   inherited from the caller's shell); the job processes inherit that environment.
//! - Dropping the cluster cancels the jobs left, stops slurmd, slurmctld and munged (SIGTERM,
//!   SIGKILL after a few seconds) and removes the folder. Daemons left running by a test
//!   process that died without dropping its cluster are killed by the next `start` (they
//!   carry the owner's pid and start time in their environment; nothing else is touched).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The only partition (the default one).
pub const PARTITION: &str = "debug";

/// Job states after which a job never runs again (what `scontrol show job` prints as
/// `JobState=`). `PENDING` with `Reason=DependencyNeverSatisfied` is not among them.
pub const TERMINAL_STATES: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
];

pub fn is_terminal(state: &str) -> bool {
    TERMINAL_STATES.contains(&state)
}

/// Set on the daemons (and so on the slurmstepd processes slurmd starts): the cluster's folder.
const DIR_MARK: &str = "STEERBENCH_SLURM_TEST_DIR";
/// Set on the daemons: `<pid>:<start time>` of the test process that owns them.
const OWNER_MARK: &str = "STEERBENCH_SLURM_TEST_OWNER";
/// Prefix of the clusters' temporary folders.
const DIR_PREFIX: &str = "steerbench-slurm-";

/// Binaries start() needs; None when any is missing.
const REQUIRED: &[&str] = &[
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sinfo",
    "squeue",
    "scontrol",
    "scancel",
];

/// Environment variables read by Slurm's client commands; not passed on from the caller.
const SLURM_ENV_PREFIXES: &[&str] = &[
    "SLURM_",
    "SBATCH_",
    "SQUEUE_",
    "SINFO_",
    "SCONTROL_",
    "SCANCEL_",
    "SALLOC_",
    "SRUN_",
];

const START_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SlurmCluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    bins: BTreeMap<&'static str, PathBuf>,
    node: String,
    cpus: usize,
    ports: (u16, u16),
    munged: Option<Child>,
    slurmctld: Option<Child>,
    slurmd: Option<Child>,
    startup: Duration,
}

/// Why one start attempt failed; `retry` when a port was taken between picking and binding.
struct StartError {
    message: String,
    retry: bool,
}

impl SlurmCluster {
    /// Starts a fresh cluster and waits until its node is `idle`. None when a binary is
    /// missing (the test should return: it is skipped); panics on any other failure.
    pub fn start() -> Option<SlurmCluster> {
        let mut bins = BTreeMap::new();
        let mut missing = Vec::new();
        for name in REQUIRED {
            match find_binary(name) {
                Some(path) => {
                    bins.insert(*name, path);
                }
                None => missing.push(*name),
            }
        }
        if !missing.is_empty() && std::env::var_os("STEERBENCH_REQUIRE_SLURM").is_some() {
            panic!(
                "STEERBENCH_REQUIRE_SLURM is set but {} missing (install with `apt-get install -y \
                 slurmctld slurmd slurm-client munge`)",
                missing.join(", ")
            );
        }
        if !missing.is_empty() {
            eprintln!(
                "SKIPPED: no Slurm test cluster: missing {} (install with `apt-get install -y \
                 slurmctld slurmd slurm-client munge`)",
                missing.join(", ")
            );
            return None;
        }
        if !is_root() {
            panic!(
                "the Slurm test cluster runs its daemons as root (SlurmUser=root) and must be \
                 started by root; Slurm is installed but this process is not root"
            );
        }
        reap_orphans();
        let started = Instant::now();
        for attempt in 1..=3 {
            match try_start(&bins) {
                Ok(mut cluster) => {
                    cluster.startup = started.elapsed();
                    return Some(cluster);
                }
                Err(e) if e.retry && attempt < 3 => {
                    eprintln!(
                        "Slurm test cluster: a port was taken, retrying:\n{}",
                        e.message
                    )
                }
                Err(e) => panic!("{}", e.message),
            }
        }
        unreachable!()
    }

    /// Environment a child process needs to talk to this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".to_string(), self.conf.display().to_string())]
    }

    /// `program` (Slurm's commands resolved to their full path) with [`Self::env`] set and
    /// Slurm variables inherited from the caller removed.
    pub fn command(&self, program: &str) -> Command {
        let path = match self.bins.get(program) {
            Some(p) => p.clone(),
            None => PathBuf::from(program),
        };
        let mut cmd = Command::new(path);
        strip_slurm_env(&mut cmd);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The cluster's folder (config, munge socket, state, spool, logs); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The one node's name (the short host name).
    pub fn node_name(&self) -> &str {
        &self.node
    }

    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// (SlurmctldPort, SlurmdPort).
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// Time from `start()` to the node reported `idle`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Pids of munged, slurmctld and slurmd (those still held).
    pub fn daemon_pids(&self) -> Vec<u32> {
        [&self.munged, &self.slurmctld, &self.slurmd]
            .iter()
            .filter_map(|c| c.as_ref().map(|c| c.id()))
            .collect()
    }

    /// `sbatch --parsable <args>`: the job id, or sbatch's stderr when it fails.
    pub fn sbatch(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.command("sbatch");
        cmd.arg("--parsable").args(args);
        let out = run_timeout(cmd, CLIENT_TIMEOUT).map_err(|e| format!("sbatch {args:?}: {e}"))?;
        if out.status.success() {
            // `<id>` or `<id>;<cluster>` (the latter only with -M/--clusters).
            Ok(out
                .stdout
                .trim()
                .split(';')
                .next()
                .unwrap_or("")
                .to_string())
        } else {
            Err(out.stderr)
        }
    }

    /// `scancel <id>`; Err with stderr when it fails. Note: scancel exits 0 and prints
    /// nothing for an unknown job id unless run with -v.
    pub fn scancel(&self, id: &str) -> Result<(), String> {
        let mut cmd = self.command("scancel");
        cmd.arg(id);
        let out = run_timeout(cmd, CLIENT_TIMEOUT).map_err(|e| format!("scancel {id}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    }

    /// `scontrol show job -o <id>` parsed: one map of `Key=Value` per record (an array job's
    /// id gives one record per task), None when Slurm does not know the id.
    pub fn show_job(&self, id: &str) -> Option<Vec<BTreeMap<String, String>>> {
        let mut cmd = self.command("scontrol");
        cmd.args(["show", "job", "-o", id]);
        let out = run_timeout(cmd, CLIENT_TIMEOUT).ok()?;
        if !out.status.success() {
            return None;
        }
        let records: Vec<_> = out
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_record)
            .collect();
        if records.is_empty() {
            None
        } else {
            Some(records)
        }
    }

    /// Each record's (`JobId` or `<ArrayJobId>_<ArrayTaskId>`, `JobState`).
    pub fn job_states(&self, id: &str) -> Option<Vec<(String, String)>> {
        let records = self.show_job(id)?;
        Some(
            records
                .iter()
                .map(|r| {
                    let label = match (r.get("ArrayJobId"), r.get("ArrayTaskId")) {
                        (Some(a), Some(t)) => format!("{a}_{t}"),
                        _ => r.get("JobId").cloned().unwrap_or_default(),
                    };
                    (label, r.get("JobState").cloned().unwrap_or_default())
                })
                .collect(),
        )
    }

    /// The job's state; for an array, the first task state that is not terminal, else the
    /// first that is not COMPLETED, else COMPLETED. None when Slurm does not know the id.
    pub fn job_state(&self, id: &str) -> Option<String> {
        let states: Vec<String> = self.job_states(id)?.into_iter().map(|(_, s)| s).collect();
        aggregate_state(&states)
    }

    /// Waits until every record of the job (every task of an array) is in a terminal state
    /// and returns the aggregate state ([`Self::job_state`]); panics after `timeout`.
    pub fn wait_job_done(&self, job_id: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.job_states(job_id);
            if let Some(states) = &states {
                if states.iter().all(|(_, s)| is_terminal(s)) {
                    let only: Vec<String> = states.iter().map(|(_, s)| s.clone()).collect();
                    return aggregate_state(&only).unwrap_or_default();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "Slurm job {job_id} not finished after {timeout:?}: states {states:?}\n\
                     scontrol show job:\n{}\n{}",
                    self.scontrol_text(job_id),
                    self.log_tails()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the job reaches `state` (e.g. RUNNING); panics after `timeout` or when the
    /// job ends in another state first.
    pub fn wait_job_state(&self, job_id: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.job_state(job_id);
            match now.as_deref() {
                Some(s) if s == state => return,
                Some(s) if is_terminal(s) => panic!(
                    "Slurm job {job_id} ended {s} while waiting for {state}:\n{}",
                    self.scontrol_text(job_id)
                ),
                _ => {}
            }
            if Instant::now() >= deadline {
                panic!(
                    "Slurm job {job_id} not {state} after {timeout:?} (now {now:?}):\n{}\n{}",
                    self.scontrol_text(job_id),
                    self.log_tails()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the daemons' logs, for failure messages.
    pub fn log_tails(&self) -> String {
        log_tails(self.dir.path())
    }

    fn scontrol_text(&self, id: &str) -> String {
        let mut cmd = self.command("scontrol");
        cmd.args(["show", "job", "-o", id]);
        match run_timeout(cmd, CLIENT_TIMEOUT) {
            Ok(o) => format!("{}{}", o.stdout, o.stderr),
            Err(e) => e,
        }
    }

    fn fail(&self, what: &str) -> StartError {
        let tails = self.log_tails();
        let retry = tails.to_lowercase().contains("address already in use");
        StartError {
            message: format!(
                "Slurm test cluster in {} failed to start: {what}\n{tails}",
                self.dir.path().display()
            ),
            retry,
        }
    }

    fn spawn_daemon(&self, name: &str, args: &[String]) -> Result<Child, String> {
        let dir = self.dir.path();
        let out = fs::File::create(dir.join(format!("{name}.stderr")))
            .map_err(|e| format!("create {name}.stderr: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bins[name]);
        strip_slurm_env(&mut cmd);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("SLURM_CONF", &self.conf)
            .env(DIR_MARK, dir)
            .env(OWNER_MARK, owner_token());
        cmd.spawn().map_err(|e| format!("spawn {name}: {e}"))
    }

    /// Fails when a daemon has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        for (name, child) in [
            ("munged", &mut self.munged),
            ("slurmctld", &mut self.slurmctld),
            ("slurmd", &mut self.slurmd),
        ] {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    let message = format!("{name} exited ({status})");
                    *child = None;
                    return Err(message);
                }
            }
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        if self.slurmctld.is_some() && self.check_alive().is_ok() {
            self.cancel_all_jobs();
        }
        let mut daemons: Vec<Child> = [self.slurmd.take(), self.slurmctld.take()]
            .into_iter()
            .flatten()
            .collect();
        stop(&mut daemons, Duration::from_secs(5));
        let mut munged: Vec<Child> = self.munged.take().into_iter().collect();
        stop(&mut munged, Duration::from_secs(3));
        // slurmstepd processes that outlived slurmd (they carry DIR_MARK from slurmd).
        let dir = self.dir.path().display().to_string();
        for p in marked_processes() {
            if p.dir.as_deref() == Some(dir.as_str()) {
                signal(p.pid, "KILL");
            }
        }
    }

    fn cancel_all_jobs(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut cancelled = false;
        while Instant::now() < deadline {
            let mut cmd = self.command("squeue");
            cmd.args(["-h", "-o", "%A"]);
            let ids: Vec<String> = match run_timeout(cmd, Duration::from_secs(15)) {
                Ok(o) if o.status.success() => {
                    o.stdout.split_whitespace().map(str::to_string).collect()
                }
                _ => return,
            };
            if ids.is_empty() {
                return;
            }
            if !cancelled {
                let mut cmd = self.command("scancel");
                cmd.args(&ids);
                let _ = run_timeout(cmd, Duration::from_secs(15));
                cancelled = true;
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn try_start(bins: &BTreeMap<&'static str, PathBuf>) -> Result<SlurmCluster, StartError> {
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir()
        .unwrap_or_else(|e| panic!("Slurm test cluster: temporary folder: {e}"));
    let root = dir.path().to_path_buf();
    let io = |what: &str, e: std::io::Error| StartError {
        message: format!("Slurm test cluster in {}: {what}: {e}", root.display()),
        retry: false,
    };
    // Reachable by job users other than root (munge socket); munged wants no group/other write.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", e))?;
    for sub in ["state", "spool"] {
        fs::create_dir(root.join(sub)).map_err(|e| io(sub, e))?;
    }
    let node = short_hostname();
    let cpus = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = real_memory_mib();
    let ports = free_ports();
    let conf = root.join("slurm.conf");
    fs::write(&conf, slurm_conf(&root, &node, cpus, mem, ports))
        .map_err(|e| io("slurm.conf", e))?;
    // An empty plugstack: no SPANK plugins from the host's /etc/slurm.
    fs::write(root.join("plugstack.conf"), "").map_err(|e| io("plugstack.conf", e))?;
    write_munge_key(&root.join("munge.key")).map_err(|e| io("munge.key", e))?;

    let mut cluster = SlurmCluster {
        dir,
        conf,
        bins: bins.clone(),
        node,
        cpus,
        ports,
        munged: None,
        slurmctld: None,
        slurmd: None,
        startup: Duration::ZERO,
    };
    let p = |name: &str| root.join(name).display().to_string();
    let socket = root.join("munge.sock");
    let munged = cluster
        .spawn_daemon(
            "munged",
            &[
                "--foreground".into(),
                "--force".into(),
                format!("--socket={}", socket.display()),
                format!("--key-file={}", p("munge.key")),
                format!("--pid-file={}", p("munged.pid")),
                format!("--log-file={}", p("munged.log")),
                format!("--seed-file={}", p("munged.seed")),
            ],
        )
        .map_err(|e| cluster.fail(&e))?;
    cluster.munged = Some(munged);
    let deadline = Instant::now() + START_TIMEOUT;
    while !socket.exists() {
        cluster.check_alive().map_err(|e| cluster.fail(&e))?;
        if Instant::now() >= deadline {
            return Err(cluster.fail("munged did not create its socket"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    let conf_arg = cluster.conf.display().to_string();
    let ctld = cluster
        .spawn_daemon("slurmctld", &["-D".into(), "-f".into(), conf_arg.clone()])
        .map_err(|e| cluster.fail(&e))?;
    cluster.slurmctld = Some(ctld);
    let slurmd = cluster
        .spawn_daemon(
            "slurmd",
            &[
                "-D".into(),
                "-f".into(),
                conf_arg,
                "-N".into(),
                cluster.node.clone(),
            ],
        )
        .map_err(|e| cluster.fail(&e))?;
    cluster.slurmd = Some(slurmd);

    let mut last = String::new();
    loop {
        cluster.check_alive().map_err(|e| cluster.fail(&e))?;
        let mut cmd = cluster.command("sinfo");
        cmd.args(["-h", "-o", "%T"]);
        if let Ok(out) = run_timeout(cmd, Duration::from_secs(15)) {
            if out.status.success() && out.stdout.trim() == "idle" {
                return Ok(cluster);
            }
            last = format!("{}{}", out.stdout, out.stderr).trim().to_string();
        }
        if Instant::now() >= deadline {
            return Err(cluster.fail(&format!(
                "node not idle after {START_TIMEOUT:?}; last `sinfo -h -o %T`: {last:?}"
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn slurm_conf(dir: &Path, node: &str, cpus: usize, mem: u64, ports: (u16, u16)) -> String {
    let d = dir.display();
    format!(
        "\
# Written by tests/support/slurm.rs: a one-node loopback cluster for tests.
ClusterName=steerbench-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={d}/plugstack.conf
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
# Cores and memory are consumable; a job without --mem gets DefMemPerCPU (not the whole
# node), so 1-CPU jobs run side by side.
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=5
ReturnToService=2
# No accounting: finished jobs stay visible to `scontrol show job`/`squeue -t all` for an hour.
MinJobAge=3600
KillWait=5
InactiveLimit=0
MessageTimeout=10
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
",
        ctld_port = ports.0,
        slurmd_port = ports.1,
    )
}

/// Two distinct TCP ports free right now (both listeners held until both are picked).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    let b = TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn short_hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            Command::new("hostname")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "localhost".to_string());
    name.split('.').next().unwrap_or("localhost").to_string()
}

/// MemTotal in MiB less a margin (slurmd drains a node that has less than RealMemory).
fn real_memory_mib() -> u64 {
    let total_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(1024 * 1024);
    let mib = total_kib / 1024;
    let margin = (mib / 20).max(512).min(mib / 2);
    (mib - margin).max(1)
}

fn write_munge_key(path: &Path) -> std::io::Result<()> {
    let mut key = vec![0u8; 1024];
    fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    f.write_all(&key)
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in [
        "/usr/local/sbin",
        "/usr/sbin",
        "/sbin",
        "/usr/local/bin",
        "/usr/bin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn strip_slurm_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if SLURM_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
}

/// `Key=Value Key=Value ...` (one `scontrol -o` line); a word without `=` continues the
/// previous value (paths with spaces).
fn parse_record(line: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if is_key(k) => {
                map.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            _ => {
                if let Some(k) = &last {
                    let v: &mut String = map.get_mut(k).unwrap();
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    map
}

/// `JobState`, `AllocNode:Sid`, `CPUs/Task`: not a path or a value's continuation.
fn is_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_'))
}

fn aggregate_state(states: &[String]) -> Option<String> {
    if states.is_empty() {
        return None;
    }
    states
        .iter()
        .find(|s| !is_terminal(s))
        .or_else(|| states.iter().find(|s| s.as_str() != "COMPLETED"))
        .or_else(|| states.first())
        .cloned()
}

pub struct TextOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_timeout(mut cmd: Command, timeout: Duration) -> Result<TextOutput, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} did not finish in {timeout:?}"));
            }
        }
    };
    Ok(TextOutput {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// SIGTERM, then SIGKILL whatever still runs after `grace`; reaps them all.
fn stop(children: &mut [Child], grace: Duration) {
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            signal(c.id(), "TERM");
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        thread::sleep(Duration::from_millis(50));
    }
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Each daemon's log tail; its stdout/stderr instead when the log is empty (with -D the
/// daemons write everything to both, and to stderr only before they open the log).
fn log_tails(dir: &Path) -> String {
    let mut s = String::new();
    for daemon in ["slurmctld", "slurmd", "munged"] {
        let mut name = format!("{daemon}.log");
        let mut text = fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if text.trim().is_empty() {
            name = format!("{daemon}.stderr");
            text = fs::read_to_string(dir.join(&name)).unwrap_or_default();
        }
        let lines: Vec<&str> = text.lines().collect();
        s.push_str(&format!("--- tail of {} ---\n", dir.join(&name).display()));
        for l in &lines[lines.len().saturating_sub(25)..] {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// `<pid>:<start time>` of this process (start time: field 22 of /proc/self/stat).
fn owner_token() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// The owner still runs: same pid and start time, and not a zombie (a test process killed
/// with SIGKILL can stay a zombie for long in a container whose init does not reap).
fn owner_alive(token: &str) -> bool {
    let Some((pid, start)) = token.split_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("");
    let started = fields.nth(18).unwrap_or("");
    !matches!(state, "Z" | "X" | "x") && started == start
}

struct Marked {
    pid: u32,
    dir: Option<String>,
    owner: Option<String>,
    slurm_conf: Option<String>,
}

/// Processes whose environment has our marks or a SLURM_CONF (excluding this process).
fn marked_processes() -> Vec<Marked> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        let mut m = Marked {
            pid,
            dir: None,
            owner: None,
            slurm_conf: None,
        };
        for var in env.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(v) = var.strip_prefix(&format!("{DIR_MARK}=")) {
                m.dir = Some(v.to_string());
            } else if let Some(v) = var.strip_prefix(&format!("{OWNER_MARK}=")) {
                m.owner = Some(v.to_string());
            } else if let Some(v) = var.strip_prefix("SLURM_CONF=") {
                m.slurm_conf = Some(v.to_string());
            }
        }
        if m.dir.is_some() || m.slurm_conf.is_some() {
            found.push(m);
        }
    }
    found
}

/// Pids of the processes (other than this one) whose environment names `conf` as SLURM_CONF
/// or carry the daemons' mark for the folder `conf` is in: daemons, slurmstepd, jobs.
pub fn processes_of(conf: &Path) -> Vec<u32> {
    let conf_s = conf.display().to_string();
    let dir_s = conf.parent().map(|d| d.display().to_string());
    marked_processes()
        .into_iter()
        .filter(|m| m.slurm_conf.as_deref() == Some(conf_s.as_str()) || m.dir == dir_s)
        .map(|m| m.pid)
        .collect()
}

/// Kills the daemons (and their slurmstepd and jobs) of clusters whose owning test process
/// is gone, and removes their folders.
fn reap_orphans() {
    let marked = marked_processes();
    let dead: BTreeSet<String> = marked
        .iter()
        .filter_map(|m| match (&m.dir, &m.owner) {
            (Some(dir), Some(owner)) if !owner_alive(owner) => Some(dir.clone()),
            _ => None,
        })
        .collect();
    if dead.is_empty() {
        return;
    }
    for m in &marked {
        let conf_dir = m
            .slurm_conf
            .as_deref()
            .and_then(|c| Path::new(c).parent())
            .map(|d| d.display().to_string());
        let hit = m.dir.as_ref().is_some_and(|d| dead.contains(d))
            || conf_dir.is_some_and(|d| dead.contains(&d));
        if hit {
            eprintln!(
                "Slurm test cluster: killing pid {} left by a dead test process",
                m.pid
            );
            signal(m.pid, "KILL");
        }
    }
    for dir in &dead {
        let path = Path::new(dir);
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if ours && path.parent() == Some(std::env::temp_dir().as_path()) {
            let _ = fs::remove_dir_all(path);
        }
    }
}
