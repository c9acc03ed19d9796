//! Token use, as the verifiers report it: when each token was last answered
//! OK, how many times, and from which address. Verifiers merge their
//! batches into these columns (the later time wins, counts add); nothing
//! else writes them, so the issuer's own changes never touch them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tokens {
    Table,
    LastUsedTime,
    UseCount,
    LastCaller,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            big_integer_null(Tokens::LastUsedTime),
            big_integer(Tokens::UseCount).default(0).take(),
            string_len_null(Tokens::LastCaller, 64),
        ];
        // SQLite alters one column per statement.
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tokens::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Tokens::LastUsedTime, Tokens::UseCount, Tokens::LastCaller] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
