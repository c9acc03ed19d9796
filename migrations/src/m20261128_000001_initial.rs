//! The first schema: users, tokens, signing keys, the revocation log and the
//! audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Admin,
    Enabled,
    Grants,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    OwnerId,
    Name,
    Description,
    TokenType,
    SessionKind,
    Enabled,
    AllPermissions,
    Grants,
    KeyId,
    CreateTime,
    UpdateTime,
    ExpireTime,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    PublicKey,
    SealedPrivateKey,
    CreateTime,
    ActivateTime,
    RetireTime,
    RemoveTime,
}

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    Seq,
    Kind,
    TokenId,
    UserId,
    IssuedBefore,
    Detail,
    CreateTime,
    PruneAfter,
}

#[derive(DeriveIden)]
enum Sequences {
    Table,
    Name,
    Value,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    Time,
    Actor,
    Action,
    Target,
    Outcome,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(string_len(Users::Id, 36).primary_key())
                    .col(string_len_uniq(Users::Username, 128))
                    .col(text(Users::PasswordHash))
                    .col(boolean(Users::Admin))
                    .col(boolean(Users::Enabled))
                    .col(text(Users::Grants))
                    .col(big_integer(Users::CreateTime))
                    .col(big_integer(Users::UpdateTime))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .if_not_exists()
                    .col(string_len(Tokens::Id, 36).primary_key())
                    .col(string_len(Tokens::OwnerId, 36))
                    .col(string_len(Tokens::Name, 128))
                    .col(text(Tokens::Description))
                    .col(string_len(Tokens::TokenType, 16))
                    .col(string_len_null(Tokens::SessionKind, 16))
                    .col(boolean(Tokens::Enabled))
                    .col(boolean(Tokens::AllPermissions))
                    .col(text(Tokens::Grants))
                    .col(string_len(Tokens::KeyId, 64))
                    .col(big_integer(Tokens::CreateTime))
                    .col(big_integer(Tokens::UpdateTime))
                    .col(big_integer(Tokens::ExpireTime))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tokens_owner")
                            .from(Tokens::Table, Tokens::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Names are unique per owner: enforced here so that two racing
        // creates cannot both succeed.
        manager
            .create_index(
                Index::create()
                    .name("ux_tokens_owner_name")
                    .table(Tokens::Table)
                    .col(Tokens::OwnerId)
                    .col(Tokens::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tokens_expire_time")
                    .table(Tokens::Table)
                    .col(Tokens::ExpireTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    .col(text(SigningKeys::PublicKey))
                    .col(blob(SigningKeys::SealedPrivateKey))
                    .col(big_integer(SigningKeys::CreateTime))
                    .col(big_integer(SigningKeys::ActivateTime))
                    .col(big_integer_null(SigningKeys::RetireTime))
                    .col(big_integer_null(SigningKeys::RemoveTime))
                    .to_owned(),
            )
            .await?;

        // Sequence numbers are handed out from `sequences` inside the
        // appending transaction, not by an auto-increment column: the row
        // lock makes appends commit in sequence order, so a reader following
        // `seq > last_seen` can never skip an event committed late.
        manager
            .create_table(
                Table::create()
                    .table(RevocationEvents::Table)
                    .if_not_exists()
                    .col(big_integer(RevocationEvents::Seq).primary_key())
                    .col(string_len(RevocationEvents::Kind, 32))
                    .col(string_len_null(RevocationEvents::TokenId, 36))
                    .col(string_len_null(RevocationEvents::UserId, 36))
                    .col(big_integer_null(RevocationEvents::IssuedBefore))
                    .col(text(RevocationEvents::Detail))
                    .col(big_integer(RevocationEvents::CreateTime))
                    .col(big_integer(RevocationEvents::PruneAfter))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_revocation_events_prune_after")
                    .table(RevocationEvents::Table)
                    .col(RevocationEvents::PruneAfter)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sequences::Table)
                    .if_not_exists()
                    .col(string_len(Sequences::Name, 32).primary_key())
                    .col(big_integer(Sequences::Value))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Sequences::Table)
                    .columns([Sequences::Name, Sequences::Value])
                    .values_panic(["revocation".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer(AuditEvents::Time))
                    .col(string_len(AuditEvents::Actor, 128))
                    .col(string_len(AuditEvents::Action, 64))
                    .col(string_len(AuditEvents::Target, 256))
                    .col(string_len(AuditEvents::Outcome, 32))
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Time)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            Sequences::Table.into_iden(),
            RevocationEvents::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            Tokens::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
