//! The revocation log's identity: a random id made once with the schema.
//! A feed carries it in every message, so a verifier that also reads a
//! store can tell whether the feed it follows is that store's log, and
//! refuse to serve when it is not.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LogIdentity {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LogIdentity::Table)
                    .if_not_exists()
                    .col(string_len(LogIdentity::Id, 64).primary_key())
                    .to_owned(),
            )
            .await?;
        // Made here, once: every replica and verifier of this database reads
        // the same row, and a database restored elsewhere keeps its id.
        let id = uuid::Uuid::now_v7().to_string();
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(LogIdentity::Table)
                    .columns([LogIdentity::Id])
                    .values_panic([id.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LogIdentity::Table).to_owned())
            .await
    }
}
