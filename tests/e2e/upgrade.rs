//! Upgrading a database made by the first schema: the lifecycle migration
//! fills its new columns for existing rows.

use crate::on_both_backends;
use crate::support::{Backend, TestDb};
use tessera_migration::{Migrator, MigratorTrait};

async fn the_lifecycle_migration_upgrades_existing_rows(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store_on_one_connection().await;
    Migrator::up(store.connection(), Some(1))
        .await
        .expect("the first migration only");
    store
        .execute_unprepared(
            "INSERT INTO users (id, username, password_hash, admin, enabled, grants, create_time, update_time) \
             VALUES ('u1', 'old', 'x', false, true, '[]', 100, 100)",
        )
        .await
        .expect("user");
    store
        .execute_unprepared(
            "INSERT INTO tokens (id, owner_id, name, description, token_type, session_kind, enabled, \
             all_permissions, grants, key_id, create_time, update_time, expire_time) \
             VALUES ('t1', 'u1', 'n', '', 'api', NULL, true, false, '[]', 'k', 100, 150, 900)",
        )
        .await
        .expect("token");
    store.migrate().await.expect("the rest");
    let token = store.token_by_id("t1").await.expect("read").expect("token");
    assert_eq!(token.version, 0);
    assert_eq!(
        token.issue_time, 100,
        "its one secret was issued at creation"
    );
    assert_eq!(token.previous_secret_expire_time, None);
    let user = store.user_by_id("u1").await.expect("read").expect("user");
    assert_eq!(user.tokens_valid_after, 0);
    assert_eq!(user.generation, 1, "existing users start at generation 1");
    assert_eq!(
        token.generation, 0,
        "existing tokens carry no generation: every later user-wide change binds them"
    );
    Migrator::down(store.connection(), Some(1))
        .await
        .expect("the lifecycle migration rolls back");
    store.migrate().await.expect("and applies again");
}

on_both_backends!(the_lifecycle_migration_upgrades_existing_rows);
