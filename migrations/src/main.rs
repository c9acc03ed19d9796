//! `tessera-migration`: applies Tessera's migrations and exits, for
//! operators who run migrations once per release instead of at issuer start.
//! It reads the same settings as the issuer: `DATABASE_URL` and, on
//! PostgreSQL, `TESSERA_DB_SCHEMA` (created if missing).

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use std::process::ExitCode;
use tessera_migration::Migrator;

const HELP: &str = "\
tessera-migration: applies Tessera's database migrations and exits

Usage: tessera-migration [up | status]

  up       apply every pending migration (the default)
  status   list the migrations, applied or pending; exits 1 if any is pending

Environment:
  DATABASE_URL        the database (sqlite://path or postgres://...), required
  TESSERA_DB_SCHEMA   PostgreSQL only: the schema to use instead of public;
                      `up` creates it if it does not exist
  TESSERA_VERIFIER_ROLE
                      PostgreSQL only: after `up`, grant this (existing) role
                      what verifiers need: SELECT on every table, and UPDATE
                      of the last-used columns of `tokens` (nothing else)

The issuer applies the same migrations at start; running this first lets a
release's schema change happen once, before any new issuer starts.";

#[derive(Debug, PartialEq)]
enum Command {
    Up,
    Status,
    Help,
}

fn command(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::Up),
        [one] => match one.as_str() {
            "up" => Ok(Command::Up),
            "status" => Ok(Command::Status),
            "-h" | "--help" | "help" => Ok(Command::Help),
            other => Err(format!("unknown command {other:?}")),
        },
        _ => Err("give at most one command".into()),
    }
}

async fn connect(
    url: &str,
    schema: Option<&str>,
    create: bool,
) -> Result<DatabaseConnection, String> {
    let postgres = url.starts_with("postgres");
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    if let (true, Some(schema)) = (postgres, schema) {
        if !tessera_migration::plain_schema_name(schema) {
            return Err(format!(
                "TESSERA_DB_SCHEMA {schema:?} must be letters, digits and underscores"
            ));
        }
        if create {
            let db = Database::connect(url)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(|e| format!("cannot create schema {schema}: {e}"))?;
            let _ = db.close().await;
        }
        options.set_schema_search_path(schema.to_owned());
    }
    Database::connect(options)
        .await
        .map_err(|e| format!("cannot connect: {e}"))
}

async fn schema_exists(db: &DatabaseConnection, schema: &str) -> Result<bool, String> {
    let found = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            [schema.into()],
        ))
        .await
        .map_err(|e| format!("cannot read the schemas: {e}"))?;
    Ok(found.is_some())
}

async fn grant_verifier(
    db: &DatabaseConnection,
    url: &str,
    schema: Option<&str>,
    role: &str,
) -> Result<(), String> {
    if !url.starts_with("postgres") {
        return Err("TESSERA_VERIFIER_ROLE is for PostgreSQL: SQLite has no roles".into());
    }
    // Same rule as schema names: safe inside a quoted identifier.
    if !tessera_migration::plain_schema_name(role) {
        return Err(format!(
            "TESSERA_VERIFIER_ROLE {role:?} must be letters, digits and underscores"
        ));
    }
    let schema = schema.unwrap_or("public");
    for sql in tessera_migration::verifier_grants(schema, role) {
        db.execute_unprepared(&sql)
            .await
            .map_err(|e| format!("cannot grant the verifier role {role} its rights: {e}"))?;
    }
    eprintln!("granted {role} what verifiers need on schema {schema}");
    Ok(())
}

async fn run(command: Command) -> Result<ExitCode, String> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL to the database to migrate (see --help)".to_owned())?;
    let schema = std::env::var("TESSERA_DB_SCHEMA")
        .ok()
        .filter(|s| !s.is_empty());
    let db = connect(&url, schema.as_deref(), command == Command::Up).await?;
    match command {
        Command::Up => {
            let pending = Migrator::get_pending_migrations(&db)
                .await
                .map_err(|e| format!("cannot read the applied migrations: {e}"))?;
            Migrator::up(&db, None)
                .await
                .map_err(|e| format!("migration failed: {e}"))?;
            eprintln!(
                "applied {} migration(s); the schema is current",
                pending.len()
            );
            if let Some(role) = std::env::var("TESSERA_VERIFIER_ROLE")
                .ok()
                .filter(|r| !r.is_empty())
            {
                grant_verifier(&db, &url, schema.as_deref(), &role).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            if let (true, Some(schema)) = (url.starts_with("postgres"), schema.as_deref())
                && !schema_exists(&db, schema).await?
            {
                println!("schema {schema} does not exist: nothing is applied (`up` creates it)");
                return Ok(ExitCode::FAILURE);
            }
            let applied = Migrator::get_applied_migrations(&db)
                .await
                .map_err(|e| format!("cannot read the applied migrations: {e}"))?;
            let pending = Migrator::get_pending_migrations(&db)
                .await
                .map_err(|e| format!("cannot read the applied migrations: {e}"))?;
            for m in &applied {
                println!("applied  {}", m.name());
            }
            for m in &pending {
                println!("pending  {}", m.name());
            }
            Ok(if pending.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Help => Ok(ExitCode::SUCCESS),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match command(&args) {
        Ok(Command::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_help_are_read() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(command(&args(&[])), Ok(Command::Up));
        assert_eq!(command(&args(&["status"])), Ok(Command::Status));
        assert_eq!(command(&args(&["--help"])), Ok(Command::Help));
        assert!(command(&args(&["down"])).is_err());
        assert!(tessera_migration::plain_schema_name("tenant_1"));
        assert!(!tessera_migration::plain_schema_name("x\"; drop"));
    }

    #[test]
    fn a_verifier_role_may_write_only_the_usage_columns() {
        let grants = tessera_migration::verifier_grants("public", "tessera_verifier");
        let updates: Vec<&String> = grants.iter().filter(|g| g.contains("UPDATE")).collect();
        assert_eq!(updates.len(), 1);
        assert!(updates[0].contains("(last_used_time, use_count, last_caller)"));
        assert!(
            grants
                .iter()
                .all(|g| !g.contains("INSERT") && !g.contains("DELETE"))
        );
    }
}
