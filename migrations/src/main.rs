//! `tessera-migration`: applies Tessera's migrations to `DATABASE_URL` and
//! exits, for operators who run migrations once per release instead of at
//! issuer start.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::Database;
use tessera_migration::Migrator;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("error: set DATABASE_URL to the database to migrate");
        return std::process::ExitCode::from(2);
    };
    let result = async {
        let db = Database::connect(&url).await?;
        Migrator::up(&db, None).await
    }
    .await;
    match result {
        Ok(()) => {
            eprintln!("migrations applied");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: migration failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
