//! `tessera user …`.

use super::{authorized, connect, grants};
use crate::args::{Global, UserCommand};
use crate::error::CliError;
use crate::output::Printer;
use tessera_proto::v1::{self, user_service_client::UserServiceClient};

pub(crate) async fn run(
    global: &Global,
    command: UserCommand,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut client = UserServiceClient::new(connect(global, &global.issuer).await?);
    match command {
        UserCommand::Create {
            username,
            new_password,
            admin,
            grants: wanted,
        } => {
            let request = v1::CreateUserRequest {
                user: Some(v1::User {
                    username,
                    admin,
                    enabled: true,
                    grants: grants(&wanted),
                    ..Default::default()
                }),
                password: new_password,
            };
            let user = client
                .create_user(authorized(global, request)?)
                .await?
                .into_inner();
            Ok(printer.user(&user)?)
        }
        UserCommand::List => {
            let mut page_token = String::new();
            let mut users = Vec::new();
            loop {
                let request = v1::ListUsersRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                };
                let reply = client
                    .list_users(authorized(global, request)?)
                    .await?
                    .into_inner();
                users.extend(reply.users);
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
            Ok(printer.users(&users)?)
        }
        UserCommand::Get { name } => {
            let user = client
                .get_user(authorized(global, v1::GetUserRequest { user: name })?)
                .await?
                .into_inner();
            Ok(printer.user(&user)?)
        }
        UserCommand::Update {
            name,
            enable,
            disable,
            admin,
            grants: wanted,
            no_grants,
        } => {
            let mut paths = Vec::new();
            let mut change = v1::User {
                username: name,
                ..Default::default()
            };
            if enable || disable {
                change.enabled = enable;
                paths.push("enabled".to_owned());
            }
            if let Some(admin) = admin {
                change.admin = admin;
                paths.push("admin".to_owned());
            }
            if !wanted.is_empty() || no_grants {
                change.grants = grants(&wanted);
                paths.push("grants".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to update: give --enable, --disable, --admin, --grant or --no-grants"
                        .into(),
                ));
            }
            let request = v1::UpdateUserRequest {
                user: Some(change),
                update_mask: Some(prost_types::FieldMask { paths }),
            };
            let user = client
                .update_user(authorized(global, request)?)
                .await?
                .into_inner();
            Ok(printer.user(&user)?)
        }
        UserCommand::Delete { name } => {
            client
                .delete_user(authorized(global, v1::DeleteUserRequest { user: name })?)
                .await?;
            Ok(printer.done("deleted", serde_json::json!({}))?)
        }
        UserCommand::SetPassword { name, new, current } => {
            let request = v1::SetPasswordRequest {
                user: name,
                current_password: current.unwrap_or_default(),
                new_password: new,
            };
            client.set_password(authorized(global, request)?).await?;
            Ok(printer.done("password changed", serde_json::json!({}))?)
        }
    }
}
