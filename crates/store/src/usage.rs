//! Token use reported by the verifiers: when each token was last answered
//! OK, how often, and by whom. Each verifier counts in memory and merges
//! its batch here every flush interval; several verifiers merging the same
//! token is the normal case, so a merge never overwrites: the later time
//! wins (with its caller) and counts add. Tokens deleted since they were
//! used are skipped.

use crate::{Backend, Store, StoreError};
use sea_orm::{ConnectionTrait, Statement, Value};

/// One token's use in one verifier's interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    pub token_id: String,
    /// The latest use, Unix seconds.
    pub last_used_time: i64,
    /// How many uses.
    pub count: u64,
    /// The caller behind the latest use, if known.
    pub caller: Option<String>,
}

/// The most uses one statement merges (about 100 KB of JSON), so a
/// statement stays short and one failure keeps a small part pending.
pub const CHUNK: usize = 1_000;

impl Store {
    /// Merges `uses` (at most [`CHUNK`]) into the token rows in one
    /// statement, and returns how many rows it changed. Give them in token
    /// id order: verifiers merging at once then lock rows in one order.
    pub async fn merge_usage(&self, uses: &[TokenUse]) -> Result<u64, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        if uses.len() > CHUNK {
            return Err(StoreError::Database(format!(
                "a usage merge takes at most {CHUNK} tokens, not {}",
                uses.len()
            )));
        }
        // One JSON parameter carries the chunk: the statement's text is the
        // same for every chunk (prepared once per connection), and the
        // database parses one value instead of 4,000 parameters.
        let rows: Vec<serde_json::Value> = uses
            .iter()
            .map(|u| {
                serde_json::json!({
                    "id": u.token_id,
                    "t": u.last_used_time,
                    "n": i64::try_from(u.count).unwrap_or(i64::MAX),
                    "c": u.caller,
                })
            })
            .collect();
        let batch = serde_json::Value::Array(rows).to_string();
        let rows_of_batch = match self.backend() {
            Backend::Postgres => {
                "SELECT id, t, n, c FROM json_to_recordset($1::json) \
                 AS x(id text, t bigint, n bigint, c text)"
            }
            Backend::Sqlite => {
                "SELECT json_extract(value, '$.id'), json_extract(value, '$.t'), \
                 json_extract(value, '$.n'), json_extract(value, '$.c') FROM json_each(?)"
            }
        };
        // Every right-hand side reads the row as it was before this update,
        // so the caller is chosen by the old time, like the time itself.
        let sql = format!(
            "WITH v(id, t, n, c) AS ({rows_of_batch}) \
             UPDATE tokens SET \
               last_caller = CASE WHEN tokens.last_used_time IS NULL OR v.t >= tokens.last_used_time \
                 THEN COALESCE(v.c, tokens.last_caller) ELSE tokens.last_caller END, \
               last_used_time = CASE WHEN tokens.last_used_time IS NULL OR v.t > tokens.last_used_time \
                 THEN v.t ELSE tokens.last_used_time END, \
               use_count = tokens.use_count + v.n \
             FROM v WHERE tokens.id = v.id"
        );
        let values = vec![Value::from(batch)];
        let result = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                values,
            ))
            .await?;
        Ok(result.rows_affected())
    }

    /// Enabled, unexpired API tokens that expire before `before`, leaving
    /// out those issued within [`crate::tokens::EXPIRING_GRACE_SECS`]: what
    /// an operator alerts on before jobs lose their credentials. A disabled
    /// token has no job to lose it.
    pub async fn count_api_tokens_expiring(
        &self,
        now: i64,
        before: i64,
    ) -> Result<u64, StoreError> {
        use crate::entity::token::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        Ok(Entity::find()
            .filter(Column::TokenType.eq("api"))
            .filter(Column::Enabled.eq(true))
            .filter(Column::ExpireTime.gt(now))
            .filter(crate::tokens::expiring_before(now, before))
            .count(&self.db)
            .await?)
    }

    /// Unexpired API tokens not used since `since` (never used and created
    /// before it counts as unused): candidates for clean-up.
    pub async fn count_api_tokens_unused(&self, now: i64, since: i64) -> Result<u64, StoreError> {
        use crate::entity::token::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        Ok(Entity::find()
            .filter(Column::TokenType.eq("api"))
            .filter(Column::ExpireTime.gt(now))
            .filter(unused_before(since))
            .count(&self.db)
            .await?)
    }
}

/// "Not used since `since`": last used before it, or never used and
/// created before it (a token made since has not had the chance).
pub(crate) fn unused_before(since: i64) -> sea_orm::Condition {
    use crate::entity::token::Column;
    use sea_orm::{ColumnTrait, Condition};
    Condition::any().add(Column::LastUsedTime.lt(since)).add(
        Condition::all()
            .add(Column::LastUsedTime.is_null())
            .add(Column::CreateTime.lt(since)),
    )
}
