//! [`TestDatabase`]: a uniquely named Postgres database, migrated, dropped when the test ends.

use std::time::Duration;

use diesel::QueryDsl;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mailtrail_store::schema::{email_events, sent_emails};

use crate::{admin_database_url, unique_name};

/// A fresh, migrated database, dropped on drop.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates and migrates a new database.
    pub async fn create() -> Self {
        let database = Self::create_unmigrated().await;
        let connection = database.connect().await;
        mailtrail_store::migrate(connection)
            .await
            .expect("migrate test database");
        database
    }

    /// Creates a new, empty database (no migrations run), for tests of a migration itself.
    pub async fn create_unmigrated() -> Self {
        let admin_url = admin_database_url();
        let name = unique_name("db");
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot reach test Postgres at {admin_url}: {error}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = database_url_for(&admin_url, &name);
        Self { name, url }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to it.
    pub async fn connect(&self) -> mailtrail_store::StoreConnection {
        mailtrail_store::connect(&self.url, Duration::from_secs(30))
            .await
            .expect("connect to test database")
    }

    /// How many events `email_events` holds.
    pub async fn stored_events(&self) -> i64 {
        email_events::table
            .count()
            .get_result(&mut self.connect().await)
            .await
            .expect("count email_events")
    }

    /// How many rows `sent_emails` holds.
    pub async fn stored_rows(&self) -> i64 {
        sent_emails::table
            .count()
            .get_result(&mut self.connect().await)
            .await
            .expect("count sent_emails")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a plain thread with its own runtime can block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut admin = AsyncPgConnection::establish(&admin_database_url())
                    .await
                    .ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Replaces the database name in a Postgres URL.
fn database_url_for(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_credentials_and_options() {
        assert_eq!(
            database_url_for("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url_for("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(database_url_for("postgres://h", "x"), "postgres://h/x");
    }
}
