//! The connection under the queue: one Redis server or a Redis Cluster, behind one type.
//!
//! [`RedisConnection`] implements redis-rs' `aio::ConnectionLike`, so every command and script
//! of the queue is written once and runs on either. On a single node it is a
//! `ConnectionManager`; on a cluster (`MAILTRAIL_REDIS_CLUSTER=true`, `REDIS_URL` a
//! comma-separated list of seed nodes) it is redis-rs' cluster connection, which follows the
//! slot map and its `MOVED` / `ASK` redirections by itself. The scripts run unchanged on a
//! cluster because every key one of them touches is in its `KEYS` and shares one hash tag (see
//! [`crate::keys`]); redis-rs routes a script to the node of its first key.
//!
//! Both are made on first use, like [`crate::Queue::connect`] promises: the single-node manager
//! is lazy by itself, and the cluster connection (whose making needs the cluster to answer) is
//! made by the first command and kept; a command while the cluster is unreachable fails within
//! the response timeout and the next one tries again.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::error::QueueError;

/// One Redis server or a Redis Cluster. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub(crate) enum RedisConnection {
    /// A single server, through a self-reconnecting multiplexed connection.
    Node(ConnectionManager),
    /// A Redis Cluster, connected on first use.
    Cluster(LazyCluster),
}

/// A cluster connection made by the first command that needs it.
#[derive(Clone)]
pub(crate) struct LazyCluster {
    client: Arc<ClusterClient>,
    connection: Arc<OnceCell<ClusterConnection>>,
}

impl LazyCluster {
    async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl RedisConnection {
    /// A connection to `url` (a single server), or with `cluster` to the cluster whose seed
    /// nodes `url` lists (comma-separated), whose commands fail after `response_timeout`.
    pub(crate) fn open(
        url: &str,
        cluster: bool,
        response_timeout: Duration,
    ) -> Result<Self, QueueError> {
        if !cluster {
            return Ok(Self::Node(connect_manager(url, response_timeout)?));
        }
        let seeds: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|seed| !seed.is_empty())
            .collect();
        let client = ClusterClient::builder(seeds)
            .response_timeout(response_timeout)
            .connection_timeout(response_timeout)
            // Like the single node's: few, quick retries, so a webhook waiting on Redis gets
            // its 503 within a known bound (redirections after a failover still get through).
            .retries(2)
            .max_retry_wait(200)
            .build()?;
        Ok(Self::Cluster(LazyCluster {
            client: Arc::new(client),
            connection: Arc::new(OnceCell::new()),
        }))
    }

    /// True on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut connection = cluster.connection().await?;
                connection.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => Box::pin(async move {
                let mut connection = cluster.connection().await?;
                connection
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            // A cluster has only database 0.
            Self::Cluster(_) => 0,
        }
    }
}

/// A lazy, self-reconnecting connection whose commands fail after `response_timeout`.
fn connect_manager(url: &str, response_timeout: Duration) -> Result<ConnectionManager, QueueError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(response_timeout))
        // Few, quick reconnection attempts per failure: a request waiting on Redis must fail
        // within its bound so the receiver can answer 503; the next request tries again.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    // Lazy: a service that starts while Redis is down comes up anyway and answers 503 (or
    // waits) until Redis is back, instead of crash-looping.
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
