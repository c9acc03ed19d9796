//! The issuer's own gRPC services, called in-process by the HTTP face.
//!
//! The calls go through the same input screen as calls from the network,
//! then the same service implementations (authentication, sign-in
//! throttle, every rule, audit), encoded and decoded as protobuf but never
//! leaving the process. A concurrency limit of the same size as the gRPC
//! server's sheds excess HTTP calls the same way (RESOURCE_EXHAUSTED).
//! Each call carries the HTTP caller's credentials as `authorization`
//! metadata and its peer address (and `X-Forwarded-For`, read only from
//! `--trusted-proxy` peers), so throttling and audit see the real caller.

use crate::IssuerError;
use crate::screen::{Screen, ScreenLayer};
use crate::service::{session::Sessions, tokens::Tokens, users::Users};
use crate::state::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_proto::v1::session_service_client::SessionServiceClient;
use tessera_proto::v1::session_service_server::SessionServiceServer;
use tessera_proto::v1::token_service_client::TokenServiceClient;
use tessera_proto::v1::token_service_server::TokenServiceServer;
use tessera_proto::v1::user_service_client::UserServiceClient;
use tessera_proto::v1::user_service_server::UserServiceServer;
use tessera_serve::shed::{Shed, ShedLayer};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Routes;
use tonic::transport::server::TcpConnectInfo;
use tower::Layer;

/// The service stack the in-process clients call.
pub(crate) type Stack = Shed<Screen<Routes>>;

/// Clients of the issuer's services, in-process.
pub(crate) struct InProcess {
    stack: Stack,
}

impl InProcess {
    pub fn new(shared: Arc<Shared>) -> Result<Self, IssuerError> {
        let screen = ScreenLayer::new(tessera_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| IssuerError::Internal(format!("request screen: {e}")))?;
        let routes = Routes::new(TokenServiceServer::new(Tokens(shared.clone())))
            .add_service(SessionServiceServer::new(Sessions(shared.clone())))
            .add_service(UserServiceServer::new(Users(shared.clone())));
        let stack =
            ShedLayer::new(shared.config.max_concurrent_requests).layer(screen.layer(routes));
        Ok(Self { stack })
    }

    pub fn tokens(&self) -> TokenServiceClient<Stack> {
        TokenServiceClient::new(self.stack.clone())
    }

    pub fn sessions(&self) -> SessionServiceClient<Stack> {
        SessionServiceClient::new(self.stack.clone())
    }

    pub fn users(&self) -> UserServiceClient<Stack> {
        UserServiceClient::new(self.stack.clone())
    }
}

/// Who an HTTP request comes from, as the gRPC services are told.
#[derive(Clone, Default)]
pub(crate) struct Origin {
    /// The `authorization` metadata: the request's credentials.
    pub authorization: Option<MetadataValue<Ascii>>,
    /// The connection's peer.
    pub peer: Option<SocketAddr>,
    /// The request's `X-Forwarded-For` values, in order.
    pub forwarded: Vec<MetadataValue<Ascii>>,
}

/// Never shows the credentials.
impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// `message` as a gRPC request from this caller.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(value) = &self.authorization {
            metadata.insert("authorization", value.clone());
        }
        for value in &self.forwarded {
            metadata.append("x-forwarded-for", value.clone());
        }
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: self.peer,
        });
        request
    }
}
