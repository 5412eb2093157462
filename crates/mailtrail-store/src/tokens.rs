//! Tokens of the read API: created once (the secret is shown to the operator and never stored),
//! kept as their SHA-256, scoped to a project or to everything, revocable by name.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use sha2::{Digest, Sha256};

use crate::{StoreConnection, StoreError};

/// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "mt_";

/// What a token may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything.
    All,
    /// One project: its statistics, messages and timelines.
    Project(i64),
}

impl TokenScope {
    fn from_column(project_id: Option<i64>) -> Self {
        project_id.map_or(Self::All, Self::Project)
    }
}

/// A token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct TokenInfo {
    /// The operator's name for it.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The project it is limited to, if any.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub project_id: Option<i64>,
    /// When it was created.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A live token already has this name.
    #[error("a live token is already named `{0}`; revoke it first or choose another name")]
    NameTaken(String),
    /// The operating system gave no randomness.
    #[error("no randomness for a new token: {0}")]
    Randomness(String),
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token named `name` with `scope` and returns its secret, which exists nowhere else.
pub async fn create_token(
    connection: &mut StoreConnection,
    name: &str,
    scope: TokenScope,
) -> Result<String, TokenError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| TokenError::Randomness(error.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let project_id = match scope {
        TokenScope::All => None,
        TokenScope::Project(id) => Some(id),
    };
    let inserted = diesel::sql_query(
        "INSERT INTO api_tokens (name, token_sha256, project_id) VALUES ($1, $2, $3)
         ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Bytea, _>(digest(&token))
    .bind::<Nullable<BigInt>, _>(project_id)
    .execute(connection)
    .await
    .map_err(StoreError::from)?;
    if inserted == 0 {
        return Err(TokenError::NameTaken(name.to_owned()));
    }
    Ok(token)
}

/// Every token, live and revoked, by name.
pub async fn list_tokens(connection: &mut StoreConnection) -> Result<Vec<TokenInfo>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT name, project_id, created_at, last_used_at, revoked_at
         FROM api_tokens ORDER BY name, created_at",
    )
    .load(connection)
    .await?)
}

/// Revokes the live token named `name`; false when there is none.
pub async fn revoke_token(
    connection: &mut StoreConnection,
    name: &str,
) -> Result<bool, StoreError> {
    let revoked = diesel::sql_query(
        "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind::<Text, _>(name)
    .execute(connection)
    .await?;
    Ok(revoked > 0)
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Nullable<BigInt>)]
    project_id: Option<i64>,
}

/// The scope of a live token, or `None` for an unknown or revoked one. Records the use, at
/// most once a minute per token, so reads do not turn into a write each.
pub async fn authenticate(
    connection: &mut StoreConnection,
    token: &str,
) -> Result<Option<TokenScope>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let found: Option<Found> = diesel::sql_query(
        "WITH token AS (
           SELECT id, project_id, last_used_at FROM api_tokens
           WHERE token_sha256 = $1 AND revoked_at IS NULL
         ),
         used AS (
           UPDATE api_tokens SET last_used_at = now() FROM token
           WHERE api_tokens.id = token.id
             AND (token.last_used_at IS NULL OR token.last_used_at < now() - interval '1 minute')
         )
         SELECT project_id FROM token",
    )
    .bind::<Bytea, _>(digest(token))
    .get_result(connection)
    .await
    .map(Some)
    .or_else(|error| match error {
        diesel::result::Error::NotFound => Ok(None),
        error => Err(error),
    })?;
    Ok(found.map(|found| TokenScope::from_column(found.project_id)))
}
