//! The connection pool: concurrent checkouts get connections of their own, and every pooled
//! connection carries the statement timeout, also after a trip back to the pool.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::RunQueryDsl;
use mailtrail_store::{PooledConnection, StoreError, connect_pool};
use mailtrail_testing::TestDatabase;
use tokio::sync::Barrier;

#[derive(QueryableByName)]
struct StatementTimeout {
    #[diesel(sql_type = Text)]
    statement_timeout: String,
}

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The statement timeout of a pooled connection's session, as Postgres shows it.
async fn statement_timeout(connection: &mut PooledConnection) -> String {
    diesel::sql_query("SHOW statement_timeout")
        .get_result::<StatementTimeout>(&mut **connection)
        .await
        .unwrap()
        .statement_timeout
}

/// The process id of the Postgres backend serving a pooled connection.
async fn backend_pid(connection: &mut PooledConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Backend>(&mut **connection)
        .await
        .unwrap()
        .pid
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_checkouts_each_get_a_connection_with_the_statement_timeout() {
    let database = TestDatabase::create().await;
    let pool = connect_pool(database.url(), 3, Duration::from_millis(250))
        .await
        .unwrap();
    // Three checkouts held at the same time: each must be a connection of its own.
    let barrier = Arc::new(Barrier::new(3));
    let checkouts: Vec<_> = (0..3)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let mut connection = pool.get().await.unwrap();
                barrier.wait().await;
                let pid = backend_pid(&mut connection).await;
                let timeout = statement_timeout(&mut connection).await;
                barrier.wait().await;
                (pid, timeout)
            })
        })
        .collect();
    let mut pids = BTreeSet::new();
    for checkout in checkouts {
        let (pid, timeout) = checkout.await.unwrap();
        assert_eq!(timeout, "250ms");
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 3, "{pids:?}");
    let status = pool.status();
    assert_eq!((status.size, status.max_size), (3, 3));

    // Back from the pool, a connection is one of the same three and still has its timeout,
    // which Postgres enforces.
    let mut connection = pool.get().await.unwrap();
    assert!(pids.contains(&backend_pid(&mut connection).await));
    assert_eq!(statement_timeout(&mut connection).await, "250ms");
    let slow = diesel::sql_query("SELECT pg_sleep(5)")
        .execute(&mut *connection)
        .await
        .unwrap_err();
    assert!(slow.to_string().contains("statement timeout"), "{slow}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_for_an_unreachable_server_fails_at_start_as_a_transient_error() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let Err(error) = connect_pool(
        "postgres://postgres@127.0.0.1:1/mailtrail",
        2,
        Duration::from_secs(1),
    )
    .await
    else {
        panic!("a pool was built for a server that is not there");
    };
    assert!(matches!(error, StoreError::Pool(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("pool"), "{error}");
}
