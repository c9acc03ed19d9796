//! End-to-end tests: real servers in-process on `127.0.0.1:0`, called with
//! the generated gRPC clients, on SQLite and (when
//! `TESSERA_TEST_POSTGRES_URL` is set) on PostgreSQL.

mod support;

mod abuse;
mod cli;
mod differential;
mod feed_only;
mod feed_truth;
mod first_hour;
mod fme_http;
mod gateways;
mod health;
mod key_rotation;
mod keys;
mod login;
mod operations;
mod permission_access;
mod permissions;
mod proxies;
mod reflection;
mod rest_fit;
mod revocation_contract;
mod revocation_feed;
mod revocation_truth;
mod rotation;
mod sessions;
mod store;
mod token_callers;
mod token_changes;
mod token_hygiene;
mod token_races;
mod tokens;
mod upgrade;
mod users;
mod verifier;
