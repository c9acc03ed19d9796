//! A database with a signing key, tokens minted with it, and as many
//! revocation events as a figure needs.

use anyhow::{Context, Result};
use std::path::PathBuf;
use tessera_core::keys::{self, Kek, Signer};
use tessera_core::{Claims, Grant, TokenType, jwt};
use tessera_store::{Backend, ConnectConfig, Store};

/// A benchmark database.
pub struct Fixture {
    pub url: String,
    pub schema: Option<String>,
    pub store: Store,
    pub signer: Signer,
    pub kek: Kek,
    dir: Option<PathBuf>,
}

impl Fixture {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("tessera-bench-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
        Self::open(url, None, Some(dir)).await
    }

    /// A fresh schema on the PostgreSQL server at `url`.
    pub async fn postgres(url: &str) -> Result<Self> {
        let schema = format!("tessera_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = Store::connect(url).await?;
        admin
            .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
            .await?;
        admin.close().await?;
        Self::open(url.to_owned(), Some(schema), None).await
    }

    async fn open(url: String, schema: Option<String>, dir: Option<PathBuf>) -> Result<Self> {
        let mut config = ConnectConfig::new(url.clone());
        config.schema = schema.clone();
        let store = Store::connect_with(config).await?;
        store.migrate().await?;
        let kek = Kek::generate()?;
        let pair = keys::generate(&kek)?;
        let (kid, sealed) = (pair.kid.clone(), pair.sealed_private_key.clone());
        let now = chrono::Utc::now().timestamp();
        store
            .insert_key(now - 60, pair, now - 60, "tessera")
            .await?;
        let signer = Signer::unseal(&kek, &kid, &sealed)?;
        Ok(Self {
            url,
            schema,
            store,
            signer,
            kek,
            dir,
        })
    }

    /// A token valid for an hour, with a fresh id.
    pub fn mint(&self) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: "tessera".into(),
            sub: uuid::Uuid::now_v7().to_string(),
            jti: uuid::Uuid::now_v7().to_string(),
            iat: now,
            nbf: now,
            exp: now + 3_600,
            typ: TokenType::Api,
            grants: vec![Grant {
                resource: "repositories/Samples".into(),
                actions: vec!["read".into(), "run".into()],
            }],
            ver: 0,
            generation: 1,
        };
        Ok(jwt::sign(&claims, &self.signer)?)
    }

    /// Records a user and one token row; returns the token's id (what the
    /// stateful comparator looks up).
    /// A user to own bench tokens.
    async fn user(&self, username: &str) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let user = self
            .store
            .create_user(
                now,
                tessera_store::users::NewUser {
                    id: uuid::Uuid::now_v7().to_string(),
                    username: username.into(),
                    password_hash: "not-a-hash".into(),
                    admin: false,
                    enabled: true,
                    grants: Vec::new(),
                },
                None,
            )
            .await?;
        Ok(user.id)
    }

    pub async fn token_row(&self) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let owner_id = self.user("bench").await?;
        let id = uuid::Uuid::now_v7().to_string();
        self.store
            .create_token(
                tessera_store::tokens::NewToken {
                    id: id.clone(),
                    owner_id,
                    name: "bench".into(),
                    description: String::new(),
                    token_type: TokenType::Api,
                    session_kind: None,
                    enabled: true,
                    all_permissions: false,
                    grants: Vec::new(),
                    key_id: "bench".into(),
                    create_time: now,
                    expire_time: now + 3_600,
                    generation: 1,
                },
                tessera_store::audit::NewAudit::ok("bench", "token.create", "bench"),
            )
            .await?;
        Ok(id)
    }

    /// Appends `n` live revoke-token events for made-up tokens, in bulk SQL.
    /// `n` token rows of one new owner, with ids `01900000-0000-7000-8000-…`
    /// (canonical UUIDs, as the issuer makes them); returns the ids.
    pub async fn bulk_tokens(&self, n: u64) -> Result<Vec<String>> {
        let now = chrono::Utc::now().timestamp();
        let owner = self.user("bench-bulk").await?;
        let exp = now + 86_400;
        let columns = "id, owner_id, name, description, token_type, session_kind, enabled, \
             all_permissions, grants, key_id, create_time, update_time, expire_time, version, \
             issue_time, previous_secret_expire_time, generation, last_used_time, use_count, last_caller";
        let sql = match self.store.backend() {
            Backend::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
                 INSERT INTO tokens ({columns}) \
                 SELECT printf('01900000-0000-7000-8000-%012x', i), '{owner}', 'bulk-' || i, '', 'api', NULL, 1, 0, '[]', 'bench', \
                 {now}, {now}, {exp}, 0, {now}, NULL, 1, NULL, 0, NULL FROM n"
            ),
            Backend::Postgres => format!(
                "INSERT INTO tokens ({columns}) \
                 SELECT '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), '{owner}', 'bulk-' || i, '', 'api', NULL, true, false, '[]', 'bench', \
                 {now}, {now}, {exp}, 0, {now}, NULL, 1, NULL, 0, NULL FROM generate_series(1, {n}) AS i"
            ),
        };
        self.store
            .execute_unprepared(&sql)
            .await
            .context("bulk insert of tokens")?;
        Ok((1..=n)
            .map(|i| format!("01900000-0000-7000-8000-{i:012x}"))
            .collect())
    }

    /// How many token rows show a use.
    pub async fn used_tokens(&self) -> Result<u64> {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        use tessera_store::entity::token;
        Ok(token::Entity::find()
            .filter(token::Column::UseCount.gt(0))
            .count(self.store.connection())
            .await?)
    }

    pub async fn bulk_revocations(&self, n: u64) -> Result<()> {
        let now = chrono::Utc::now().timestamp();
        let prune = now + 86_400;
        let sql = match self.store.backend() {
            Backend::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
                 INSERT INTO revocation_events (seq, kind, token_id, user_id, issued_before, detail, create_time, prune_after) \
                 SELECT i, 'revoke_token', printf('01900000-0000-7000-8000-%012x', i), NULL, NULL, 'null', {now}, {prune} FROM n"
            ),
            Backend::Postgres => format!(
                "INSERT INTO revocation_events (seq, kind, token_id, user_id, issued_before, detail, create_time, prune_after) \
                 SELECT i, 'revoke_token', '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), NULL, NULL, 'null', {now}, {prune} \
                 FROM generate_series(1, {n}) AS i"
            ),
        };
        self.store
            .execute_unprepared(&sql)
            .await
            .context("bulk insert")?;
        self.store
            .execute_unprepared(&format!(
                "UPDATE sequences SET value = {n} WHERE name = 'revocation'"
            ))
            .await?;
        Ok(())
    }

    /// Removes the database.
    pub async fn remove(self) -> Result<()> {
        if let Some(schema) = &self.schema {
            self.store
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await?;
        }
        self.store.close().await?;
        if let Some(dir) = self.dir {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}
