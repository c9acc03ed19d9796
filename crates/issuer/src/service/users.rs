//! `UserService`: declared in the contract; built with the user lifecycle.

use crate::error::IssuerError;
use crate::state::Shared;
use std::sync::Arc;
use tessera_proto::v1::{self, user_service_server::UserService};
use tonic::{Request, Response, Status};

pub(crate) struct Users(#[allow(dead_code)] pub Arc<Shared>);

#[tonic::async_trait]
impl UserService for Users {
    async fn create_user(
        &self,
        _request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        Err(IssuerError::Unimplemented("CreateUser").into())
    }

    async fn get_user(
        &self,
        _request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        Err(IssuerError::Unimplemented("GetUser").into())
    }

    async fn list_users(
        &self,
        _request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(IssuerError::Unimplemented("ListUsers").into())
    }

    async fn update_user(
        &self,
        _request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        Err(IssuerError::Unimplemented("UpdateUser").into())
    }

    async fn delete_user(
        &self,
        _request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(IssuerError::Unimplemented("DeleteUser").into())
    }

    async fn set_password(
        &self,
        _request: Request<v1::SetPasswordRequest>,
    ) -> Result<Response<v1::SetPasswordResponse>, Status> {
        Err(IssuerError::Unimplemented("SetPassword").into())
    }
}
