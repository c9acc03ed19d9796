//! User generations: every user-wide change raises the user's generation and
//! binds exactly the secrets issued below it, so changes and issues in the
//! same second are told apart. Also records which issuer name signs with
//! each key (what verifiers trust by default), and indexes the revocation
//! log by token and user so the issuer can judge one token from it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Generation,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Generation,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Issuer,
}

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    TokenId,
    UserId,
}

const INDEXES: [(&str, RevocationEvents); 2] = [
    ("ix_revocation_events_token_id", RevocationEvents::TokenId),
    ("ix_revocation_events_user_id", RevocationEvents::UserId),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Existing users start at generation 1; existing tokens carry none
        // (0), so the first user-wide change after the upgrade binds them,
        // and the time-based events already in the log still do.
        let columns = [
            (
                Users::Table.into_iden(),
                big_integer(Users::Generation).default(1).take(),
            ),
            (
                Tokens::Table.into_iden(),
                big_integer(Tokens::Generation).default(0).take(),
            ),
            (
                SigningKeys::Table.into_iden(),
                string_len_null(SigningKeys::Issuer, 128),
            ),
        ];
        // SQLite alters one column per statement.
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
        for (name, column) in INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RevocationEvents::Table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(RevocationEvents::Table)
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        for (table, column) in [
            (Users::Table.into_iden(), Users::Generation.into_iden()),
            (Tokens::Table.into_iden(), Tokens::Generation.into_iden()),
            (
                SigningKeys::Table.into_iden(),
                SigningKeys::Issuer.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
