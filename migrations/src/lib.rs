//! Tessera's database schema, as sea-orm migrations.
//!
//! The issuer applies these at start ([`Migrator::up`] is idempotent: applied
//! migrations are recorded and skipped), on SQLite and on PostgreSQL alike.
//! Times are stored as Unix seconds (`BIGINT`) so they compare and index the
//! same way on both databases, and match the JWT claims they mirror.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261128_000002_lifecycle;
mod m20261201_000003_generations;
mod m20261202_000004_usage;
mod m20261208_000005_log_identity;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261128_000002_lifecycle::Migration),
            Box::new(m20261201_000003_generations::Migration),
            Box::new(m20261202_000004_usage::Migration),
            Box::new(m20261208_000005_log_identity::Migration),
        ]
    }
}

/// Whether `schema` may name a PostgreSQL schema to create and use: letters,
/// digits and underscores, so it is safe inside a quoted identifier. The
/// issuer and `tessera-migration` both create schemas by this rule.
pub fn plain_schema_name(schema: &str) -> bool {
    !schema.is_empty()
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The grants a verifier's PostgreSQL role needs on a migrated `schema`:
/// reading every table, and writing token uses (the three last-used
/// columns of `tokens`, column by column, so it can change nothing else).
/// `tessera-migration` runs them for `TESSERA_VERIFIER_ROLE`; both names
/// must pass [`plain_schema_name`].
pub fn verifier_grants(schema: &str, role: &str) -> Vec<String> {
    vec![
        format!("GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\""),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{role}\""),
        format!(
            "GRANT UPDATE (last_used_time, use_count, last_caller) ON \"{schema}\".tokens TO \"{role}\""
        ),
    ]
}
