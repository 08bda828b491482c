//! Throwaway Redis deployments for tests, made of real `redis-server` processes: a Redis Cluster
//! (masters, optionally with replicas that take over when a master dies) and a Sentinel set (one
//! master, one replica, Sentinels that promote the replica). Free ports, nothing on disk but the
//! cluster's node files in a temporary directory, every process killed on drop (also when the
//! test panics). A missing `redis-server` or `redis-cli` fails the test.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process (a data node or a Sentinel).
pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
    password: Option<String>,
    log: PathBuf,
}

impl RedisProcess {
    fn spawn(port: u16, args: &[String], password: Option<&str>, dir: &Path) -> RedisProcess {
        let log = dir.join(format!("redis-{port}.log"));
        let child = Command::new("redis-server")
            .args(args)
            .args(["--logfile", &log.to_string_lossy()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the Redis tests (.ci/run installs it)");
        let process = RedisProcess {
            port,
            child: Some(child),
            password: password.map(str::to_string),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.cli(&["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}; log:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// Runs one `redis-cli` command against this process and returns its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed for the Redis tests");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Kills the process at once (SIGKILL: no goodbye to its replicas or the cluster).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of `field` in `INFO <section>`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        field_of(&self.cli(&["INFO", section]), field)
    }

    /// `cluster_state` from `CLUSTER INFO` (`ok` when every slot is served).
    pub fn cluster_state(&self) -> Option<String> {
        field_of(&self.cli(&["CLUSTER", "INFO"]), "cluster_state")
    }
}

/// The value of `field` in `field:value` lines.
fn field_of(text: &str, field: &str) -> Option<String> {
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_string))
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Free ports for `count` processes; with `bus`, each port plus 10000 (the cluster bus) is free
/// too. Not reserved: another process may take one meanwhile, which fails the start loudly.
fn free_ports(count: usize, bus: bool) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut seen = HashSet::new();
    let mut listeners = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a local address").port();
        listeners.push(listener);
        if !seen.insert(port) {
            continue;
        }
        if bus && (port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err()) {
            continue;
        }
        ports.push(port);
    }
    ports
}

fn base_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn auth_args(password: Option<&str>) -> Vec<String> {
    match password {
        Some(pw) => vec![
            "--requirepass".into(),
            pw.into(),
            "--masterauth".into(),
            pw.into(),
        ],
        None => Vec::new(),
    }
}

/// Polls `probe` every 100 ms until it gives a value, panicking with `what` after `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A master of the cluster as `CLUSTER NODES` shows it.
#[derive(Debug, Clone)]
pub struct ClusterMaster {
    pub port: u16,
    pub slots: Vec<(u16, u16)>,
}

pub struct RedisCluster {
    pub nodes: Vec<RedisProcess>,
    password: Option<String>,
    replicas: usize,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits until the cluster is up
    /// and every replica is in sync.
    pub fn start(masters: usize, replicas: usize, password: Option<&str>) -> RedisCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let count = masters * (1 + replicas);
        let mut nodes = Vec::new();
        for port in free_ports(count, true) {
            let mut args = base_args(port);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    // Short, so a dead master is replaced within a few seconds.
                    "--cluster-node-timeout",
                    "1000",
                    "--dir",
                    &dir.path().to_string_lossy(),
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            args.extend(auth_args(password));
            nodes.push(RedisProcess::spawn(port, &args, password, dir.path()));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        if let Some(pw) = password {
            create.args(["-a", pw, "--no-auth-warning"]);
        }
        let output = create
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed for the Redis tests");
        let cluster = RedisCluster {
            nodes,
            password: password.map(str::to_string),
            replicas,
            dir,
        };
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_healthy(Duration::from_secs(20));
        cluster
    }

    /// The hash slot of `key`, as a running node computes it (`CLUSTER KEYSLOT`): the cluster
    /// itself is the oracle, not a copy of the gateway's slot function.
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let answer = node.cli(&["CLUSTER", "KEYSLOT", key]);
        answer
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key} answered {answer:?}"))
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...` of every node started.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `REDIS_URL` naming the cluster by its first three nodes (the client finds the rest).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        match &self.password {
            Some(pw) => format!("redis+cluster://:{pw}@{}", seeds.join(",")),
            None => format!("redis+cluster://{}", seeds.join(",")),
        }
    }

    pub fn node(&self, port: u16) -> &RedisProcess {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn any_running(&self) -> &RedisProcess {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running cluster node")
    }

    /// The masters with slots, as a running node sees them (failed ones left out).
    pub fn masters(&self) -> Vec<ClusterMaster> {
        let nodes = self.any_running().cli(&["CLUSTER", "NODES"]);
        nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let port = fields
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                let slots: Vec<(u16, u16)> = fields
                    .iter()
                    .skip(8)
                    .filter(|f| !f.starts_with('['))
                    .filter_map(|range| match range.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => range.parse().ok().map(|s| (s, s)),
                    })
                    .collect();
                (!slots.is_empty()).then_some(ClusterMaster { port, slots })
            })
            .collect()
    }

    /// The port of the master serving `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.masters()
            .into_iter()
            .find(|m| m.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|m| m.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot} of {key}"))
    }

    /// Waits until every running node says the cluster is ok, all 16384 slots are served, and
    /// each master has its replicas connected and caught up.
    pub fn wait_until_healthy(&self, within: Duration) {
        wait_for(within, "the cluster to be healthy", || {
            let all_ok = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.cluster_state().as_deref() == Some("ok"));
            let masters = self.masters();
            let covered: u32 = masters
                .iter()
                .flat_map(|m| m.slots.iter())
                .map(|(a, b)| u32::from(b - a) + 1)
                .sum();
            (all_ok && covered == 16384 && masters.iter().all(|m| self.in_sync(m.port)))
                .then_some(())
        });
    }

    /// Whether the master on `port` has its replicas online and at its replication offset.
    fn in_sync(&self, port: u16) -> bool {
        let master = self.node(port);
        let connected: usize = master
            .info("replication", "connected_slaves")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if connected < self.replicas {
            return false;
        }
        let offset = master.info("replication", "master_repl_offset");
        (0..connected).all(|i| {
            master
                .info("replication", &format!("slave{i}"))
                .is_some_and(|line| {
                    line.contains("state=online")
                        && offset
                            .as_deref()
                            .is_some_and(|o| line.contains(&format!("offset={o},")))
                })
        })
    }

    /// Waits until the master on `port` has passed everything written so far to its replicas.
    pub fn wait_replicated(&self, port: u16, within: Duration) {
        wait_for(within, "the replicas to catch up", || {
            self.in_sync(port).then_some(())
        });
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
            .kill();
    }

    /// Waits until a running node serves `key`'s slot again as master, and returns its port.
    pub fn wait_for_new_master(&self, key: &str, dead: u16, within: Duration) -> u16 {
        let slot = self.slot_of(key);
        wait_for(
            within,
            "a replica to take over the dead master's slots",
            || {
                let ok = self
                    .nodes
                    .iter()
                    .filter(|n| n.is_running())
                    .all(|n| n.cluster_state().as_deref() == Some("ok"));
                let port = self
                    .masters()
                    .into_iter()
                    .find(|m| m.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))?
                    .port;
                (ok && port != dead && self.node(port).is_running()).then_some(port)
            },
        )
    }

    /// The tail of every node's log, for a failing test's output.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = n.log_text();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- node {} ---\n{}",
                    n.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
            + &format!("\n(dir {})", self.dir.path().display())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // The nodes are killed when the fields drop, right after.
        if std::thread::panicking() {
            eprintln!("---- redis cluster logs ----\n{}\n----", self.logs());
        }
    }
}

/// One master, one replica and Sentinels watching them under [`SENTINEL_MASTER`].
pub struct RedisSentinel {
    pub master: RedisProcess,
    pub replica: RedisProcess,
    pub sentinels: Vec<RedisProcess>,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

pub const SENTINEL_MASTER: &str = "apx-master";

impl RedisSentinel {
    /// Starts the servers and `sentinels` Sentinels (quorum 1, a master is down after 1 s
    /// without answer) and waits until the Sentinels know the master and the replica.
    pub fn start(sentinels: usize, password: Option<&str>) -> RedisSentinel {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports = free_ports(2 + sentinels, false);
        let mut master_args = base_args(ports[0]);
        master_args.extend(auth_args(password));
        let master = RedisProcess::spawn(ports[0], &master_args, password, dir.path());
        let mut replica_args = base_args(ports[1]);
        replica_args.extend(auth_args(password));
        replica_args.extend([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            ports[0].to_string(),
        ]);
        let replica = RedisProcess::spawn(ports[1], &replica_args, password, dir.path());
        let mut watchers = Vec::new();
        for port in &ports[2..] {
            let config = dir.path().join(format!("sentinel-{port}.conf"));
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 3000\n\
                 sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                dir.path().display(),
                ports[0]
            );
            if let Some(pw) = password {
                text.push_str(&format!("sentinel auth-pass {SENTINEL_MASTER} {pw}\n"));
            }
            std::fs::write(&config, text).expect("write a sentinel config");
            let args = vec![
                config.to_string_lossy().to_string(),
                "--sentinel".to_string(),
            ];
            watchers.push(RedisProcess::spawn(*port, &args, None, dir.path()));
        }
        let set = RedisSentinel {
            master,
            replica,
            sentinels: watchers,
            password: password.map(str::to_string),
            _dir: dir,
        };
        wait_for(Duration::from_secs(20), "the replica to sync", || {
            (set.replica
                .info("replication", "master_link_status")
                .as_deref()
                == Some("up"))
            .then_some(())
        });
        let replica_port = set.replica.port.to_string();
        wait_for(
            Duration::from_secs(20),
            "the Sentinels to know the replica",
            || {
                set.sentinels
                    .iter()
                    .all(|s| {
                        s.cli(&["SENTINEL", "REPLICAS", SENTINEL_MASTER])
                            .contains(&replica_port)
                    })
                    .then_some(())
            },
        );
        // A Sentinel that does not know the others yet cannot win the election (a majority of
        // all Sentinels), and a failed election waits twice the fail-over timeout to try again.
        wait_for(
            Duration::from_secs(20),
            "the Sentinels to know each other",
            || {
                let others = set.sentinels.len() - 1;
                set.sentinels
                    .iter()
                    .all(|s| {
                        s.cli(&["SENTINEL", "SENTINELS", SENTINEL_MASTER])
                            .lines()
                            .filter(|l| l.trim() == "name")
                            .count()
                            >= others
                    })
                    .then_some(())
            },
        );
        set
    }

    /// `REDIS_URL` for the set: `redis+sentinel://[:pw@]s1,s2/<master>`.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let auth = self
            .password
            .as_ref()
            .map(|pw| format!(":{pw}@"))
            .unwrap_or_default();
        format!(
            "redis+sentinel://{auth}{}/{SENTINEL_MASTER}",
            sentinels.join(",")
        )
    }

    /// The master's port as the first Sentinel reports it.
    pub fn reported_master(&self) -> Option<u16> {
        let answer =
            self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
        answer.lines().nth(1)?.trim().parse().ok()
    }

    /// Waits until the replica's offset has reached the master's.
    pub fn wait_replicated(&self, within: Duration) {
        wait_for(within, "the replica to catch up", || {
            let offset = self.master.info("replication", "master_repl_offset")?;
            let line = self.master.info("replication", "slave0")?;
            line.contains(&format!("offset={offset},")).then_some(())
        });
    }

    /// Waits until the Sentinels name the replica as master and it acts as one.
    pub fn wait_for_promotion(&self, within: Duration) {
        wait_for(within, "the Sentinels to promote the replica", || {
            (self.reported_master() == Some(self.replica.port)
                && self.replica.info("replication", "role").as_deref() == Some("master"))
            .then_some(())
        });
    }

    /// The tail of every process's log, for a failing test's output.
    pub fn logs(&self) -> String {
        std::iter::once(&self.master)
            .chain(std::iter::once(&self.replica))
            .chain(self.sentinels.iter())
            .map(|n| {
                let text = n.log_text();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    n.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- redis sentinel logs ----\n{}\n----", self.logs());
        }
    }
}
