//! The token lifecycle: secret versions for rotation, the time the current
//! secret was issued, a per-user revocation cut-off, and lock rows that
//! serialize user and key changes across issuer replicas.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    TokensValidAfter,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    CreateTime,
    Version,
    IssueTime,
    PreviousSecretExpireTime,
    TokenType,
    ExpireTime,
}

#[derive(DeriveIden)]
enum Sequences {
    Table,
    Name,
    Value,
}

/// Rows of `sequences` used only as locks: a transaction that updates one
/// first holds it until it ends, so such transactions run one at a time on
/// PostgreSQL as they do on SQLite.
const LOCK_ROWS: [&str; 2] = ["users", "keys"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            (
                Tokens::Table.into_iden(),
                integer(Tokens::Version).default(0).take(),
            ),
            (
                Tokens::Table.into_iden(),
                big_integer(Tokens::IssueTime).default(0).take(),
            ),
            (
                Tokens::Table.into_iden(),
                big_integer_null(Tokens::PreviousSecretExpireTime),
            ),
            (
                Users::Table.into_iden(),
                big_integer(Users::TokensValidAfter).default(0).take(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Tokens made before this migration had one secret, issued at creation.
        manager
            .exec_stmt(
                Query::update()
                    .table(Tokens::Table)
                    .value(Tokens::IssueTime, Expr::col(Tokens::CreateTime))
                    .to_owned(),
            )
            .await?;
        // The clean-up task deletes old sessions by type and expiry.
        manager
            .create_index(
                Index::create()
                    .name("ix_tokens_type_expire_time")
                    .table(Tokens::Table)
                    .col(Tokens::TokenType)
                    .col(Tokens::ExpireTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for name in LOCK_ROWS {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(Sequences::Table)
                        .columns([Sequences::Name, Sequences::Value])
                        .values_panic([name.into(), 0i64.into()])
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(Sequences::Table)
                    .and_where(Expr::col(Sequences::Name).is_in(LOCK_ROWS))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_tokens_type_expire_time")
                    .table(Tokens::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Tokens::Table.into_iden(), Tokens::Version.into_iden()),
            (Tokens::Table.into_iden(), Tokens::IssueTime.into_iden()),
            (
                Tokens::Table.into_iden(),
                Tokens::PreviousSecretExpireTime.into_iden(),
            ),
            (
                Users::Table.into_iden(),
                Users::TokensValidAfter.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
