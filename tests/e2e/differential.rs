//! Revocation truth, proven by a differential, model-based test: random
//! histories of token and user changes run against a real issuer and a real
//! verifier, in-process over gRPC, on a manual clock that often does not
//! move between steps (so many changes land in one second).
//!
//! After every step, and once the verifier has applied every event, each
//! secret ever issued is judged three ways, which must agree:
//!
//! - the verifier's `Verify` answer (valid, reason, grants, expiry);
//! - the issuer authenticating a call made with the secret;
//! - for a token's current secret, the issuer's own record (`GetToken`
//!   status, permissions and expiry, and the `ListTokens` status filters).
//!
//! and a small model of the contract holds: a secret refused as REVOKED is
//! never accepted again, a secret's grants never widen, and no secret
//! issued before its owner was disabled, deleted or given a new password
//! is ever accepted. Histories also extend API tokens' expiries in place,
//! the one widening the log carries: both services must follow it past the
//! signed expiry, and agree when a narrowing or a rotation comes after it.
//!
//! `TESSERA_DIFF_SEED`, `TESSERA_DIFF_HISTORIES` and `TESSERA_DIFF_STEPS`
//! choose the histories (CI runs the fixed default). A failing history is
//! shrunk to a short list of steps and printed so it can be replayed with
//! [`replay`].

use crate::on_both_backends;
use crate::support::lifecycle::{mask, secs, users};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, Harness, TestDb, admin, basic, bearer, by_id, grant, issuer_config};
use chrono::Duration;
use prost_types::Timestamp;
use std::collections::{BTreeSet, HashMap};
use tessera_core::{Clock, Grant, grants};
use tessera_proto::v1::{self, VerifyReason};
use tessera_store::Store;
use tonic::{Code, Status};

const DEFAULT_SEED: u64 = 0x7e55_e7a0_2026_1201;
const DEFAULT_HISTORIES: usize = 3;
const DEFAULT_STEPS: usize = 36;

/// Where grants are probed: every (resource, action) a history can touch.
const RESOURCES: [&str; 4] = ["repositories", "repositories/Samples", "jobs", "jobs/J1"];
const ACTIONS: [&str; 4] = ["read", "write", "download", "run"];

/// How far the clock moves in an `Advance` step.
#[derive(Debug, Clone, Copy)]
pub enum Jump {
    None,
    Millisecond,
    Second,
    Minutes,
}

/// One step of a history. Indices pick among the users, sessions and
/// tokens made so far (modulo their count), so any sub-list of a history
/// is a history too: that is what shrinking relies on.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    CreateUser,
    DisableUser(usize),
    EnableUser(usize),
    SetPassword(usize),
    DeleteUser(usize),
    TakeGrants(usize, usize),
    GiveGrants(usize),
    Promote(usize),
    Demote(usize),
    Login(usize, usize),
    Logout(usize),
    Extend(usize),
    Create {
        user: usize,
        all: bool,
        deps: bool,
    },
    Duplicate(usize),
    Narrow {
        token: usize,
        grants: bool,
        expiry: bool,
    },
    /// A later expiry of an API token, in place (the one widening pushed
    /// through the log).
    Lengthen(usize),
    Rotate {
        token: usize,
        overlap: bool,
        wider: bool,
    },
    Disable(usize),
    Enable(usize),
    Delete(usize),
    RotateKey,
    Advance(Jump),
}

/// What every user starts with, and what "giving grants back" restores.
fn full_grants() -> Vec<v1::Grant> {
    vec![
        grant("repositories", &["read", "write", "download"]),
        grant("jobs", &["read"]),
    ]
}

/// The smaller grant sets "taking grants away" picks from.
fn fewer_grants(choice: usize) -> Vec<v1::Grant> {
    match choice % 3 {
        0 => vec![grant("repositories", &["read"]), grant("jobs", &["read"])],
        1 => vec![grant("repositories/Samples", &["read", "write"])],
        _ => Vec::new(),
    }
}

/// A small deterministic generator (splitmix64): no dependency, and a seed
/// replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap_or(0)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn random_step(rng: &mut Rng) -> Step {
    let i = rng.below(64);
    match rng.below(100) {
        0..=3 => Step::CreateUser,
        4..=7 => Step::DisableUser(i),
        8..=11 => Step::EnableUser(i),
        12..=15 => Step::SetPassword(i),
        16..=17 => Step::DeleteUser(i),
        18..=21 => Step::TakeGrants(i, rng.below(3)),
        22..=24 => Step::GiveGrants(i),
        25..=26 => Step::Promote(i),
        27..=28 => Step::Demote(i),
        29..=36 => Step::Login(i, rng.below(3)),
        37..=39 => Step::Logout(i),
        40..=42 => Step::Extend(i),
        43..=52 => Step::Create {
            user: i,
            all: rng.coin(),
            deps: rng.coin(),
        },
        53..=55 => Step::Duplicate(i),
        56..=60 => Step::Narrow {
            token: i,
            grants: rng.coin(),
            expiry: rng.coin(),
        },
        61..=66 => Step::Rotate {
            token: i,
            overlap: rng.coin(),
            wider: rng.coin(),
        },
        67..=71 => Step::Disable(i),
        72..=75 => Step::Enable(i),
        76..=78 => Step::Delete(i),
        79..=80 => Step::RotateKey,
        81..=83 => Step::Lengthen(i),
        84..=88 => Step::Advance(Jump::None),
        89..=92 => Step::Advance(Jump::Millisecond),
        93..=96 => Step::Advance(Jump::Second),
        _ => Step::Advance(Jump::Minutes),
    }
}

fn history(rng: &mut Rng, steps: usize) -> Vec<Step> {
    // Every history starts with two users who hold tokens and sessions, so
    // user-wide changes have something to bite on from the start.
    let mut out = vec![
        Step::CreateUser,
        Step::CreateUser,
        Step::Login(0, 2),
        Step::Create {
            user: 1,
            all: false,
            deps: true,
        },
    ];
    out.extend((0..steps).map(|_| random_step(rng)));
    out
}

struct User {
    name: String,
    id: String,
    password: String,
    alive: bool,
    /// The step of the last change that revoked every earlier secret.
    revoked_at_step: usize,
}

struct Secret {
    secret: String,
    token_id: String,
    owner: usize,
    /// The step that issued it.
    issued_at_step: usize,
    /// Refused as REVOKED once: never to be accepted again.
    revoked: bool,
    /// The probes it was last allowed, when it was last accepted.
    allowed: Option<BTreeSet<(usize, usize)>>,
}

struct Token {
    id: String,
    owner: usize,
    session: bool,
    /// Index of its current secret in `secrets`.
    current: usize,
}

/// One history's world: the servers and what the test has made.
struct World {
    issuer: Harness,
    verifier: VerifierHarness,
    /// A verifier with no store: keys, events and its log all come over
    /// the feed. It must answer exactly as `verifier` does.
    fed: VerifierHarness,
    store: Store,
    admin: String,
    users: Vec<User>,
    secrets: Vec<Secret>,
    tokens: Vec<Token>,
    step: usize,
    made: usize,
}

/// A refusal the contract allows for a random step (the step asked for
/// something the current state does not permit); anything else is a defect.
///
/// A user whose sign-ins keep failing (disabled, say) meets the growing
/// delays after a few attempts, since the manual clock rarely moves: that
/// throttle is a refusal too.
fn tolerated(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
    ) || (status.code() == Code::ResourceExhausted
        && status.message().starts_with("too many failed sign-ins"))
}

fn probes(grants: &[v1::Grant]) -> BTreeSet<(usize, usize)> {
    let grants: Vec<Grant> = grants
        .iter()
        .map(|g| Grant {
            resource: g.resource.clone(),
            actions: g.actions.clone(),
        })
        .collect();
    let mut allowed = BTreeSet::new();
    for (r, resource) in RESOURCES.iter().enumerate() {
        for (a, action) in ACTIONS.iter().enumerate() {
            if grants::allows(&grants, resource, action) {
                allowed.insert((r, a));
            }
        }
    }
    allowed
}

fn pick<T>(items: &[T], i: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[i % items.len()])
}

impl World {
    async fn start(backend: Backend) -> Result<Self, String> {
        let db = TestDb::new(backend).await;
        let mut config = issuer_config(&db);
        // No leeway anywhere, so a status (judged without one) and an
        // answer must agree to the second.
        config.clock_leeway = std::time::Duration::ZERO;
        // Heartbeats often: the fed verifier is current by the manual
        // clock only once it hears from the feed after each move.
        config.feed_heartbeat = std::time::Duration::from_millis(20);
        let issuer = Harness::start_with(db, config).await;
        let mut vconfig = verifier_config(issuer.db());
        vconfig.clock_leeway = std::time::Duration::ZERO;
        vconfig.sync_interval = std::time::Duration::from_millis(5);
        vconfig.key_refresh_min_interval = std::time::Duration::ZERO;
        let mut fconfig = vconfig.clone();
        fconfig.database_url = String::new();
        fconfig.revocation_feed = format!("http://{}", issuer.addr);
        let verifier = VerifierHarness::spawn(vconfig, issuer.clock.clone()).await;
        let fed = VerifierHarness::spawn(fconfig, issuer.clock.clone()).await;
        for v in [&verifier, &fed] {
            v.wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
                .await;
        }
        let store = issuer.db().store().await;
        let admin_token = issuer
            .tokens()
            .create_token(admin(v1::CreateTokenRequest {
                name: "differential-admin".into(),
                expiration: Some(v1::create_token_request::Expiration::ExpiresIn(
                    prost_types::Duration {
                        seconds: 30 * 86_400,
                        nanos: 0,
                    },
                )),
                all_permissions: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| format!("admin token: {e}"))?
            .into_inner()
            .secret;
        Ok(Self {
            issuer,
            verifier,
            fed,
            store,
            admin: admin_token,
            users: Vec::new(),
            secrets: Vec::new(),
            tokens: Vec::new(),
            step: 0,
            made: 0,
        })
    }

    fn user(&self, i: usize) -> Option<usize> {
        let alive: Vec<usize> = (0..self.users.len())
            .filter(|u| self.users[*u].alive)
            .collect();
        pick(&alive, i).copied()
    }

    fn token(&self, i: usize, session: Option<bool>) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.tokens.len())
            .filter(|t| session.is_none_or(|s| self.tokens[*t].session == s))
            .collect();
        pick(&candidates, i).copied()
    }

    fn remember(&mut self, token: &v1::Token, secret: String, owner: usize) {
        self.secrets.push(Secret {
            secret,
            token_id: token.id.clone(),
            owner,
            issued_at_step: self.step,
            revoked: false,
            allowed: None,
        });
        let current = self.secrets.len() - 1;
        match self.tokens.iter_mut().find(|t| t.id == token.id) {
            Some(t) => t.current = current,
            None => self.tokens.push(Token {
                id: token.id.clone(),
                owner,
                session: token.r#type == v1::TokenType::Session as i32,
                current,
            }),
        }
    }

    fn owner_of(&self, token_id: &str) -> Option<usize> {
        self.tokens
            .iter()
            .find(|t| t.id == token_id)
            .map(|t| t.owner)
    }

    async fn update_user(&self, user: usize, u: v1::User, paths: &[&str]) -> Result<(), Status> {
        let user = &self.users[user];
        users(&self.issuer)
            .update_user(bearer(
                v1::UpdateUserRequest {
                    user: Some(v1::User {
                        id: user.id.clone(),
                        ..u
                    }),
                    update_mask: mask(paths),
                },
                &self.admin,
            ))
            .await
            .map(|_| ())
    }

    /// Runs one step; refusals the contract allows are not failures.
    async fn run(&mut self, step: Step) -> Result<(), String> {
        self.step += 1;
        let result = self.act(step).await;
        match result {
            Err(status) if !tolerated(&status) => Err(format!("{step:?} failed: {status:?}")),
            _ => Ok(()),
        }
    }

    async fn act(&mut self, step: Step) -> Result<(), Status> {
        let nothing = Ok(());
        match step {
            Step::CreateUser => {
                self.made += 1;
                let name = format!("user{}", self.made);
                let password = format!("password-{}-for-{name}", self.made);
                let created = users(&self.issuer)
                    .create_user(bearer(
                        v1::CreateUserRequest {
                            user: Some(v1::User {
                                username: name.clone(),
                                grants: full_grants(),
                                ..Default::default()
                            }),
                            password: password.clone(),
                        },
                        &self.admin,
                    ))
                    .await?
                    .into_inner();
                self.users.push(User {
                    name,
                    id: created.id,
                    password,
                    alive: true,
                    revoked_at_step: 0,
                });
            }
            Step::DisableUser(i) | Step::EnableUser(i) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                let enabled = matches!(step, Step::EnableUser(_));
                let was_enabled = users(&self.issuer)
                    .get_user(bearer(
                        v1::GetUserRequest {
                            user: self.users[u].id.clone(),
                        },
                        &self.admin,
                    ))
                    .await?
                    .into_inner()
                    .enabled;
                self.update_user(
                    u,
                    v1::User {
                        enabled,
                        ..Default::default()
                    },
                    &["enabled"],
                )
                .await?;
                if was_enabled && !enabled {
                    self.users[u].revoked_at_step = self.step;
                }
            }
            Step::SetPassword(i) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                self.made += 1;
                let password = format!("password-{}-again", self.made);
                users(&self.issuer)
                    .set_password(bearer(
                        v1::SetPasswordRequest {
                            user: self.users[u].id.clone(),
                            current_password: String::new(),
                            new_password: password.clone(),
                        },
                        &self.admin,
                    ))
                    .await?;
                self.users[u].password = password;
                self.users[u].revoked_at_step = self.step;
            }
            Step::DeleteUser(i) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                users(&self.issuer)
                    .delete_user(bearer(
                        v1::DeleteUserRequest {
                            user: self.users[u].id.clone(),
                        },
                        &self.admin,
                    ))
                    .await?;
                self.users[u].alive = false;
                self.users[u].revoked_at_step = self.step;
            }
            Step::TakeGrants(i, _) | Step::GiveGrants(i) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                let grants = match step {
                    Step::TakeGrants(_, choice) => fewer_grants(choice),
                    _ => full_grants(),
                };
                self.update_user(
                    u,
                    v1::User {
                        grants,
                        ..Default::default()
                    },
                    &["grants"],
                )
                .await?;
            }
            Step::Promote(i) | Step::Demote(i) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                self.update_user(
                    u,
                    v1::User {
                        admin: matches!(step, Step::Promote(_)),
                        ..Default::default()
                    },
                    &["admin"],
                )
                .await?;
            }
            Step::Login(i, kind) => {
                let Some(u) = self.user(i) else {
                    return nothing;
                };
                let (kind, expires_in) = match kind % 3 {
                    0 => (v1::SessionKind::Web, None),
                    1 => (v1::SessionKind::TokenService, secs(120)),
                    _ => (v1::SessionKind::Api, None),
                };
                let user = &self.users[u];
                let reply = self
                    .issuer
                    .sessions()
                    .login(basic(
                        v1::LoginRequest {
                            kind: kind as i32,
                            expires_in,
                        },
                        &user.name,
                        &user.password,
                    ))
                    .await?
                    .into_inner();
                let token = reply.token.unwrap_or_default();
                self.remember(&token, reply.secret, u);
            }
            Step::Logout(i) | Step::Extend(i) => {
                let Some(t) = self.token(i, Some(true)) else {
                    return nothing;
                };
                let secret = self.secrets[self.tokens[t].current].secret.clone();
                if matches!(step, Step::Logout(_)) {
                    self.issuer
                        .sessions()
                        .logout(bearer(v1::LogoutRequest {}, &secret))
                        .await?;
                } else {
                    let reply = self
                        .issuer
                        .sessions()
                        .extend_session(bearer(v1::ExtendSessionRequest::default(), &secret))
                        .await?
                        .into_inner();
                    let token = reply.token.unwrap_or_default();
                    let owner = self.tokens[t].owner;
                    self.remember(&token, reply.secret, owner);
                }
            }
            Step::Create { user, all, deps } => {
                let Some(u) = self.user(user) else {
                    return nothing;
                };
                self.made += 1;
                let life = [300, 1_800, 7 * 86_400][self.made % 3];
                let permissions = if all {
                    Vec::new()
                } else if deps {
                    vec![grant("repositories/Samples", &["download"])]
                } else {
                    vec![
                        grant("repositories", &["read"]),
                        grant("jobs/J1", &["read"]),
                    ]
                };
                let user = &self.users[u];
                let reply = self
                    .issuer
                    .tokens()
                    .create_token(basic(
                        v1::CreateTokenRequest {
                            name: format!("token{}", self.made),
                            expiration: Some(v1::create_token_request::Expiration::ExpiresIn(
                                prost_types::Duration {
                                    seconds: life,
                                    nanos: 0,
                                },
                            )),
                            all_permissions: all,
                            permissions,
                            grant_dependencies: deps,
                            ..Default::default()
                        },
                        &user.name,
                        &user.password,
                    ))
                    .await?
                    .into_inner();
                let token = reply.token.unwrap_or_default();
                self.remember(&token, reply.secret, u);
            }
            Step::Duplicate(i) => {
                let Some(t) = self.token(i, Some(false)) else {
                    return nothing;
                };
                self.made += 1;
                let reply = self
                    .issuer
                    .tokens()
                    .duplicate_token(bearer(
                        v1::DuplicateTokenRequest {
                            source: by_id(&self.tokens[t].id),
                            name: format!("copy{}", self.made),
                            description: String::new(),
                        },
                        &self.admin,
                    ))
                    .await?
                    .into_inner();
                let token = reply.token.unwrap_or_default();
                let owner = self.owner_of(&self.tokens[t].id).unwrap_or(0);
                self.remember(&token, reply.secret, owner);
            }
            Step::Narrow {
                token,
                grants,
                expiry,
            } => {
                let Some(t) = self.token(token, Some(false)) else {
                    return nothing;
                };
                let id = self.tokens[t].id.clone();
                let now = self.issuer.clock.now().timestamp();
                let current = self
                    .issuer
                    .tokens()
                    .get_token(bearer(
                        v1::GetTokenRequest { token: by_id(&id) },
                        &self.admin,
                    ))
                    .await?
                    .into_inner();
                let mut paths = Vec::new();
                let mut change = v1::Token::default();
                if grants {
                    let mut kept = current.permissions.clone();
                    kept.pop();
                    change.permissions = kept;
                    paths.push("permissions");
                }
                if expiry {
                    change.expire_time = Some(Timestamp {
                        seconds: now + 90,
                        nanos: 0,
                    });
                    paths.push("expire_time");
                }
                if paths.is_empty() {
                    return nothing;
                }
                self.issuer
                    .tokens()
                    .update_token(bearer(
                        v1::UpdateTokenRequest {
                            target: by_id(&id),
                            token: Some(change),
                            update_mask: mask(&paths),
                        },
                        &self.admin,
                    ))
                    .await?;
            }
            Step::Lengthen(i) => {
                let Some(t) = self.token(i, Some(false)) else {
                    return nothing;
                };
                let id = self.tokens[t].id.clone();
                let now = self.issuer.clock.now().timestamp();
                let later = now + [600, 7_200, 3 * 86_400][self.step % 3];
                self.issuer
                    .tokens()
                    .update_token(bearer(
                        v1::UpdateTokenRequest {
                            target: by_id(&id),
                            token: Some(v1::Token {
                                expire_time: Some(Timestamp {
                                    seconds: later,
                                    nanos: 0,
                                }),
                                ..Default::default()
                            }),
                            update_mask: mask(&["expire_time"]),
                        },
                        &self.admin,
                    ))
                    .await?;
            }
            Step::Rotate {
                token,
                overlap,
                wider,
            } => {
                let Some(t) = self.token(token, Some(false)) else {
                    return nothing;
                };
                let id = self.tokens[t].id.clone();
                let reply = self
                    .issuer
                    .tokens()
                    .rotate_token(bearer(
                        v1::RotateTokenRequest {
                            token: by_id(&id),
                            expiration: Some(v1::rotate_token_request::Expiration::ExpiresIn(
                                prost_types::Duration {
                                    seconds: 3_600,
                                    nanos: 0,
                                },
                            )),
                            permissions: if wider {
                                vec![grant("repositories", &["read", "write"])]
                            } else {
                                Vec::new()
                            },
                            overlap: if overlap { secs(60) } else { None },
                            grant_dependencies: true,
                            ..Default::default()
                        },
                        &self.admin,
                    ))
                    .await?
                    .into_inner();
                let token = reply.token.unwrap_or_default();
                let owner = self.tokens[t].owner;
                self.remember(&token, reply.secret, owner);
            }
            Step::Disable(i) | Step::Enable(i) | Step::Delete(i) => {
                let Some(t) = self.token(i, None) else {
                    return nothing;
                };
                let selector = by_id(&self.tokens[t].id);
                let mut tokens = self.issuer.tokens();
                match step {
                    Step::Disable(_) => {
                        tokens
                            .disable_token(bearer(
                                v1::DisableTokenRequest { token: selector },
                                &self.admin,
                            ))
                            .await?;
                    }
                    Step::Enable(_) => {
                        tokens
                            .enable_token(bearer(
                                v1::EnableTokenRequest { token: selector },
                                &self.admin,
                            ))
                            .await?;
                    }
                    _ => {
                        tokens
                            .delete_token(bearer(
                                v1::DeleteTokenRequest { token: selector },
                                &self.admin,
                            ))
                            .await?;
                    }
                }
            }
            Step::RotateKey => {
                self.issuer
                    .keys()
                    .rotate_key(bearer(
                        v1::RotateKeyRequest {
                            immediate: true,
                            ..Default::default()
                        },
                        &self.admin,
                    ))
                    .await?;
            }
            Step::Advance(jump) => {
                let by = match jump {
                    Jump::None => Duration::zero(),
                    Jump::Millisecond => Duration::milliseconds(1),
                    Jump::Second => Duration::seconds(1),
                    Jump::Minutes => Duration::minutes(4),
                };
                self.issuer.clock.advance(by);
            }
        }
        Ok(())
    }

    /// Judges every secret three ways and checks the model.
    async fn check(&mut self) -> Result<(), String> {
        for verifier in [&self.verifier, &self.fed] {
            verifier
                .wait_for_sync(&self.store, self.issuer.clock.as_ref())
                .await;
        }
        let mut statuses: HashMap<String, Option<v1::Token>> = HashMap::new();
        for t in &self.tokens {
            let got = self
                .issuer
                .tokens()
                .get_token(bearer(
                    v1::GetTokenRequest {
                        token: by_id(&t.id),
                    },
                    &self.admin,
                ))
                .await;
            let record = match got {
                Ok(token) => Some(token.into_inner()),
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => return Err(format!("GetToken {}: {status:?}", t.id)),
            };
            statuses.insert(t.id.clone(), record);
        }
        for index in 0..self.secrets.len() {
            self.check_secret(index, &statuses).await?;
        }
        self.check_filters(&statuses).await
    }

    async fn check_secret(
        &mut self,
        index: usize,
        statuses: &HashMap<String, Option<v1::Token>>,
    ) -> Result<(), String> {
        let s = &self.secrets[index];
        let label = format!("secret #{index} of token {}", s.token_id);
        let answer = self.verifier.verify(&s.secret, "", "").await;
        let reason = VerifyReason::try_from(answer.reason).unwrap_or(VerifyReason::Unspecified);
        let fed = self.fed.verify(&s.secret, "", "").await;
        if (fed.valid, fed.reason, &fed.token_id, &fed.grants)
            != (
                answer.valid,
                answer.reason,
                &answer.token_id,
                &answer.grants,
            )
        {
            return Err(format!(
                "{label}: the verifier fed only by the feed answers {fed:?}, the one reading \
                 the store {answer:?}"
            ));
        }
        let authenticated = match self
            .issuer
            .tokens()
            .list_tokens(bearer(
                v1::ListTokensRequest {
                    page_size: 1,
                    ..Default::default()
                },
                &s.secret,
            ))
            .await
        {
            Ok(_) => true,
            Err(status) if status.code() == Code::Unauthenticated => false,
            // Known, and held to its grants: an API token without
            // `tokens: read` may not list.
            Err(status) if status.code() == Code::PermissionDenied => true,
            Err(status) => return Err(format!("{label}: the issuer answered {status:?}")),
        };
        if answer.valid != authenticated {
            return Err(format!(
                "{label}: the verifier says {reason:?} ({}) but the issuer {} it",
                answer.message,
                if authenticated { "accepts" } else { "refuses" }
            ));
        }
        if answer.token_id != s.token_id {
            return Err(format!(
                "{label}: the verifier names token {:?} ({reason:?})",
                answer.token_id
            ));
        }
        let owner = &self.users[s.owner];
        if answer.valid && s.issued_at_step < owner.revoked_at_step {
            return Err(format!(
                "{label}: accepted although its owner was disabled, deleted or given a new \
                 password at step {} after it was issued at step {}",
                owner.revoked_at_step, s.issued_at_step
            ));
        }
        if answer.valid && s.revoked {
            return Err(format!("{label}: accepted again after it was REVOKED"));
        }
        let allowed = probes(&answer.grants);
        if answer.valid
            && let Some(before) = &s.allowed
            && !allowed.is_subset(before)
        {
            return Err(format!(
                "{label}: its grants widened from {before:?} to {allowed:?}"
            ));
        }
        let is_current = self
            .tokens
            .iter()
            .any(|t| t.id == s.token_id && t.current == index);
        if is_current {
            let record = statuses.get(&s.token_id).cloned().flatten();
            let expected = match &record {
                // Deleted (by itself or with its owner): gone for good, and
                // an expired token reads as expired first.
                None if reason == VerifyReason::Expired => VerifyReason::Expired,
                None => VerifyReason::Revoked,
                Some(token) => match v1::TokenStatus::try_from(token.status) {
                    Ok(v1::TokenStatus::Active) => VerifyReason::Ok,
                    Ok(v1::TokenStatus::Disabled) => VerifyReason::Disabled,
                    Ok(v1::TokenStatus::Expired) => VerifyReason::Expired,
                    Ok(v1::TokenStatus::Revoked) => VerifyReason::Revoked,
                    other => return Err(format!("{label}: GetToken status {other:?}")),
                },
            };
            if expected != reason {
                return Err(format!(
                    "{label}: GetToken says {:?} but the verifier says {reason:?} ({})",
                    record.map(|r| r.status),
                    answer.message
                ));
            }
            if let Some(token) = record.filter(|_| answer.valid) {
                if probes(&token.permissions) != allowed {
                    return Err(format!(
                        "{label}: GetToken grants {:?} but the verifier's {:?}",
                        token.permissions, answer.grants
                    ));
                }
                if token.expire_time != answer.expire_time {
                    return Err(format!(
                        "{label}: GetToken expires {:?}, the verifier says {:?}",
                        token.expire_time, answer.expire_time
                    ));
                }
            }
        }
        let s = &mut self.secrets[index];
        if reason == VerifyReason::Revoked {
            s.revoked = true;
        }
        if answer.valid {
            s.allowed = Some(allowed);
        }
        Ok(())
    }

    /// `ListTokens` with each status filter lists exactly the tokens whose
    /// record has that status.
    async fn check_filters(
        &self,
        statuses: &HashMap<String, Option<v1::Token>>,
    ) -> Result<(), String> {
        for status in [
            v1::TokenStatus::Active,
            v1::TokenStatus::Disabled,
            v1::TokenStatus::Expired,
            v1::TokenStatus::Revoked,
        ] {
            let listed: BTreeSet<String> = self
                .issuer
                .tokens()
                .list_tokens(bearer(
                    v1::ListTokensRequest {
                        owner: "-".into(),
                        status: status as i32,
                        page_size: 1_000,
                        ..Default::default()
                    },
                    &self.admin,
                ))
                .await
                .map_err(|e| format!("ListTokens {status:?}: {e:?}"))?
                .into_inner()
                .tokens
                .into_iter()
                .map(|t| t.id)
                .collect();
            for (id, record) in statuses {
                let has = record.as_ref().is_some_and(|r| r.status == status as i32);
                if has != listed.contains(id) {
                    return Err(format!(
                        "ListTokens with status {status:?} {} token {id}, whose GetToken status is {:?}",
                        if has { "leaves out" } else { "lists" },
                        record.as_ref().map(|r| r.status)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs one history on fresh servers; the first disagreement, if any.
pub async fn replay(backend: Backend, steps: &[Step]) -> Result<(), String> {
    let mut world = World::start(backend).await?;
    let mut outcome = Ok(());
    for (n, step) in steps.iter().enumerate() {
        if let Err(e) = world.run(*step).await {
            outcome = Err(format!("step {n}: {e}"));
            break;
        }
        if let Err(e) = world.check().await {
            outcome = Err(format!("after step {n} ({step:?}): {e}"));
            break;
        }
    }
    world.issuer.stop().await;
    outcome
}

/// Shrinks a failing history: drops ever smaller runs of steps while it
/// still fails, within a bounded number of replays.
async fn shrink(
    backend: Backend,
    mut steps: Vec<Step>,
    mut failure: String,
) -> (Vec<Step>, String) {
    let mut budget = 150;
    let mut chunk = steps.len() / 2;
    while chunk > 0 && budget > 0 {
        let mut at = 0;
        while at < steps.len() && budget > 0 {
            let mut candidate = steps.clone();
            candidate.drain(at..(at + chunk).min(candidate.len()));
            budget -= 1;
            match replay(backend, &candidate).await {
                Err(e) => {
                    steps = candidate;
                    failure = e;
                }
                Ok(()) => at += chunk,
            }
        }
        chunk /= 2;
    }
    (steps, failure)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

async fn random_histories_agree(backend: Backend) {
    let seed = match std::env::var("TESSERA_DIFF_SEED").as_deref() {
        Ok("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        _ => env_number("TESSERA_DIFF_SEED", DEFAULT_SEED),
    };
    let histories = env_number("TESSERA_DIFF_HISTORIES", DEFAULT_HISTORIES as u64);
    let steps = usize::try_from(env_number("TESSERA_DIFF_STEPS", DEFAULT_STEPS as u64))
        .unwrap_or(DEFAULT_STEPS);
    let mut rng = Rng(seed);
    for n in 0..histories {
        let steps = history(&mut rng, steps);
        if let Err(failure) = replay(backend, &steps).await {
            // Said before shrinking, which replays many worlds and can
            // itself fail (a database out of connections, say).
            eprintln!(
                "history {n} of seed {seed:#x} on {backend:?} failed: {failure}\n\
                 unshrunk: let steps = vec!{steps:?};"
            );
            let (shrunk, failure) = shrink(backend, steps, failure).await;
            panic!(
                "history {n} of seed {seed:#x} on {backend:?} failed: {failure}\n\
                 shrunk to {} steps; replay with `replay(backend, &steps)` where\n\
                 let steps = vec!{shrunk:?};",
                shrunk.len()
            );
        }
    }
    println!(
        "differential: {histories} histories of {} steps each on {backend:?}, seed {seed:#x}",
        steps + 4
    );
}

on_both_backends!(random_histories_agree);

/// Found by a 40-history run: a disabled user's repeated Basic sign-ins
/// meet the growing delays (RESOURCE_EXHAUSTED), a refusal like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_sign_in_is_a_refusal() {
    let steps = [
        Step::CreateUser,
        Step::DisableUser(42),
        Step::Create {
            user: 18,
            all: false,
            deps: false,
        },
        Step::Create {
            user: 0,
            all: false,
            deps: true,
        },
        Step::Login(12, 0),
        Step::Create {
            user: 42,
            all: false,
            deps: true,
        },
        Step::Create {
            user: 52,
            all: false,
            deps: true,
        },
    ];
    replay(Backend::Sqlite, &steps)
        .await
        .expect("the history replays");
}

/// An extension in place, followed past the signed expiry and then
/// through what may come after it: a narrowing, a second extension, a
/// disable, a rotation, and an owner who loses grants.
async fn extensions_agree_with_what_follows_them(backend: Backend) {
    let minutes = Step::Advance(Jump::Minutes);
    let steps = [
        Step::CreateUser,
        Step::CreateUser,
        // A token of 5 minutes and one of 30 minutes, of the first user.
        Step::Create {
            user: 0,
            all: false,
            deps: false,
        },
        Step::Create {
            user: 0,
            all: true,
            deps: false,
        },
        Step::Lengthen(0),
        minutes,
        minutes,
        Step::Narrow {
            token: 0,
            grants: true,
            expiry: false,
        },
        Step::Lengthen(1),
        minutes,
        Step::Disable(0),
        Step::Lengthen(0),
        minutes,
        Step::Enable(0),
        Step::Rotate {
            token: 1,
            overlap: true,
            wider: false,
        },
        Step::Lengthen(1),
        Step::TakeGrants(0, 0),
        Step::Lengthen(0),
        minutes,
        minutes,
    ];
    if let Err(failure) = replay(backend, &steps).await {
        panic!("{failure}");
    }
}

on_both_backends!(extensions_agree_with_what_follows_them);
