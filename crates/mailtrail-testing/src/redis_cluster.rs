//! A Redis Cluster of the test's own: three masters on free loopback ports, removed on drop.
//!
//! Each node is a `redis-server --cluster-enabled yes` in a temporary directory (no snapshot, no
//! append-only file: nothing here outlives the test); `redis-cli --cluster create` assigns the
//! slots evenly (node `i` of three gets the `i`-th third) and the start waits until every node
//! reports `cluster_state:ok`. The cluster bus of each node gets a free port of its own
//! (`--cluster-port`), since a free port plus 10000 may not exist.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How many masters the cluster has.
pub const CLUSTER_MASTERS: usize = 3;

/// A local three-master Redis Cluster, stopped and removed on drop.
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts three `redis-server`s in cluster mode and makes them one cluster.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing, or the cluster does not form in 30 s.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(crate::unique_name("redis_cluster"));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let mut cluster = Self {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..CLUSTER_MASTERS {
            cluster.start_node();
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create (is redis-tools installed?)");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster
    }

    /// The seed list the services take as `REDIS_URL` with `MAILTRAIL_REDIS_CLUSTER=true`.
    pub fn url(&self) -> String {
        self.node_urls().join(",")
    }

    /// Each node's `redis://` URL.
    pub fn node_urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    fn start_node(&mut self) {
        let port = free_port();
        let bus_port = free_port();
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("create a node's directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "5000"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.ports.push(port);
        self.children.push(child);
        let url = format!("redis://127.0.0.1:{port}/");
        wait_for(Duration::from_secs(10), "a cluster node to answer", || {
            query(&url, &["PING"]).is_some()
        });
    }

    fn wait_until_ok(&self) {
        wait_for(Duration::from_secs(30), "cluster_state:ok", || {
            self.node_urls().iter().all(|url| {
                query(url, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            })
        });
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command's reply as text, or `None` when the node did not answer it.
fn query(url: &str, args: &[&str]) -> Option<String> {
    let mut connection = redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
        .ok()?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query::<String>(&mut connection).ok()
}

fn wait_for(within: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
